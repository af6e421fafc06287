"""Which functions of an i386 binary use SSE registers: the check that a GO386=softfloat build runs on CPUs
without SSE2 (Pentium III, Athlon XP, Geode, Vortex86), where such an instruction is a SIGILL.

Go's runtime keeps a few SSE code paths even in softfloat builds, each entered only after a CPUID check
(internal/cpu.X86.HasSSE2, HasAES): those are expected; any other function with an xmm register is not.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from pathlib import Path

from dock32.core.errors import CommandFailed
from dock32.core.run import capture

# runtime functions that test the CPU before they use SSE (checked in Go 1.24's runtime/*_386.s and
# internal/bytealg/*_386.s): hashing with AES-NI, and memory moves, clears and compares with SSE2.
CPU_DISPATCHED = frozenset({
    "aeshashbody", "runtime.memhash32", "runtime.memhash64", "runtime.memclrNoHeapPointers", "runtime.memmove",
    "memeqbody", "cmpbody", "runtime.aeshashbody", "indexbytebody", "countbody",
})

_FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")
_ADDRESS = re.compile(r"^\s*([0-9a-f]+):")
GOFUNCS_SOURCE = Path(__file__).parent / "tools" / "gofuncs.go"


def go_functions(binary: Path, go: str, tools_dir: Path) -> list[tuple[int, int, str]]:
    """(start, end, name) of every function in a Go binary, from Go's own function table (.gopclntab), which binaries
    linked with -s keep (the runtime needs it) while objdump then finds no symbols. Empty for a program that is not Go.
    The reader (tools/gofuncs.go) is built once per Go and source, with the build's Go, into tools_dir."""
    source = GOFUNCS_SOURCE.read_bytes()
    tool = tools_dir / f"gofuncs-{hashlib.sha256(source + go.encode()).hexdigest()[:16]}"
    if not tool.is_file():
        tools_dir.mkdir(parents=True, exist_ok=True)
        partial = tool.with_name(f"{tool.name}.{os.getpid()}.partial")
        env = {"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": ""}
        built = capture([go, "build", "-trimpath", "-o", partial, GOFUNCS_SOURCE], env=env, cwd=tools_dir)
        if built.returncode != 0:
            partial.unlink(missing_ok=True)
            raise CommandFailed(f"building {GOFUNCS_SOURCE.name}: {built.stderr.strip()[-300:]}")
        partial.replace(tool)
    result = capture([tool, binary])
    if result.returncode != 0:
        return []
    functions = []
    for line in result.stdout.splitlines():
        start, end, name = line.split(" ", 2)
        functions.append((int(start, 16), int(end, 16), name))
    return sorted(functions)


def functions_using_sse(binary: Path, go: str | None = None, tools_dir: Path | None = None) -> dict[str, int]:
    """Function name -> how many of its instructions name an xmm register, from objdump's disassembly. Functions are
    named by the binary's symbols or, where it has none (-s), with go and tools_dir given, by Go's function table."""
    result = capture(["objdump", "-d", "--no-show-raw-insn", binary])
    if result.returncode != 0:
        raise CommandFailed(f"objdump {binary.name}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    lines = result.stdout.splitlines()
    # Without symbols, objdump labels only sections (<.text>): there the addresses say which function it is.
    labels = {m.group(1) for m in map(_FUNCTION.match, lines) if m}
    table = go_functions(binary, go, tools_dir) if go and tools_dir and all(label.startswith(".") for label in labels) else []
    if table:
        starts = [start for start, _, _ in table]
        counts: dict[str, int] = {}
        for line in lines:
            address = _ADDRESS.match(line)
            if address and "%xmm" in line:
                at = int(address.group(1), 16)
                index = bisect.bisect_right(starts, at) - 1
                start, end, name = table[index] if index >= 0 else (0, 0, "")
                # Outside every Go function: C code of a cgo program, whose static libc picks SSE2 only where the CPU has it.
                name = name if start <= at < end else f"<C code at {at:#x}>"
                counts[name] = counts.get(name, 0) + 1
        return counts
    counts = {}
    current = ""
    for line in lines:
        match = _FUNCTION.match(line)
        if match:
            current = match.group(1)
        elif "%xmm" in line and current:
            counts[current] = counts.get(current, 0) + 1
    return counts


# Symbols GCC split or cloned from a C function (main.cold, f.part.0): C, not Go.
_GCC_CLONE = re.compile(r"\.(cold|part\.\d+|constprop\.\d+|isra\.\d+)$")


def is_go_symbol(name: str) -> bool:
    """Go's symbols are package-qualified (runtime.memmove, main.main, encoding/json.(*Number).Float64); C's are not."""
    return ("." in name and not _GCC_CLONE.search(name)) or name in CPU_DISPATCHED


def unexpected_go_sse(binary: Path, go: str | None = None, tools_dir: Path | None = None) -> list[str]:
    """Go functions that use SSE without the runtime's CPU check first: none in a GO386=softfloat build.
    (A cgo binary's static C library keeps its own SSE2 variants, which it picks only on CPUs that have SSE2.)
    go and tools_dir: for binaries linked with -s (see functions_using_sse)."""
    found = functions_using_sse(binary, go, tools_dir)
    return sorted(name for name in found if is_go_symbol(name) and not name.startswith("<") and name not in CPU_DISPATCHED)
