// gofuncs prints the functions of a Go ELF binary, one per line: start address, end address and name, both
// addresses in hex. It reads Go's own function table (.gopclntab), which the runtime needs and which stays in
// binaries linked with -s, where objdump finds no symbols. dock32.toolchains.isa builds it with the build's Go.
package main

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gofuncs BINARY")
		os.Exit(2)
	}
	file, err := elf.Open(os.Args[1])
	if err != nil {
		fail(err)
	}
	pclntab := file.Section(".gopclntab")
	text := file.Section(".text")
	if pclntab == nil || text == nil {
		fail(fmt.Errorf("%s: no .gopclntab or .text section: not a Go program", os.Args[1]))
	}
	data, err := pclntab.Data()
	if err != nil {
		fail(err)
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		fail(err)
	}
	for _, fn := range table.Funcs {
		fmt.Printf("%x %x %s\n", fn.Entry, fn.End, fn.Name)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gofuncs:", err)
	os.Exit(1)
}
