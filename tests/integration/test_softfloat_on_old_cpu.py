"""GO386=softfloat on a CPU without SSE2: Debian's i386 686 kernel booted in qemu as a Pentium III (`-cpu pentium3`:
SSE, no SSE2), always emulated. A float-using Go program built with GO386=softfloat runs there and prints the right
result, and so does a static C program compiled with the softfloat target's C flags; the same Go program built with
GO386=sse2 is the control that must fail, and does: Go's 386 runtime does not check for SSE2 at start, it is killed
by SIGILL at its first SSE2 instruction.

What this run shows and what it does not: QEMU's emulation (7.2, Debian 12's) refuses some SSE2 instructions on a
CPU model without SSE2 (MFENCE, which the sse2 runtime's cputicks executes before main) but executes SSE2 arithmetic
(MULSD, ADDSD, MOVSD) as if the CPU had it. So a C program compiled for SSE2 math runs here, and is no control; that
no SSE2 instruction is left in a softfloat binary is shown by disassembly (dock32.toolchains.isa, tests/integration/
test_softfloat.py). This run shows the rest: the programs start and compute on a CPU whose CPUID says no SSE2, taking
the code paths that Go's runtime and glibc choose for such a CPU."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from dock32.model.flavour import NO_SSE_CFLAGS

from ..qemu_guest import Boot, Guest, go_instruction_at, may_need_sse2, run_and_report

pytestmark = pytest.mark.integration

CPU = "pentium3"
FLOATS_GO = """\
package main

import (
\t"fmt"
\t"math"
\t"os"
)

//go:noinline
func hypot(a, b float64) float64 { return math.Sqrt(a*a + b*b) }

func main() {
\tx := float64(len(os.Args)) // 1, which the compiler cannot fold
\tfmt.Printf("floats: %.6f %.6f\\n", hypot(3*x, 4*x), 1/(7*x))
}
"""
FLOATS_C = """\
#include <math.h>
#include <stdio.h>

static double hypotenuse(double a, double b) { return sqrt(a * a + b * b); }

int main(int argc, char **argv) {
    (void)argv;
    double x = argc; /* 1, which the compiler cannot fold */
    printf("floats: %.6f %.6f\\n", hypotenuse(3 * x, 4 * x), 1 / (7 * x));
    return 0;
}
"""
EXPECTED = "floats: 5.000000 0.142857"
SIGILL_EXIT = 128 + signal.SIGILL  # what the shell says of a program killed by SIGILL: 132


def c_compiler() -> str | None:
    """A C compiler for static i386 programs: the cross compiler the build uses, or gcc on an i386 machine."""
    if shutil.which("i686-linux-gnu-gcc"):
        return "i686-linux-gnu-gcc"
    if platform.machine() in ("i386", "i586", "i686") and shutil.which("gcc"):
        return "gcc"
    return None


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """floats-sse2 and floats-softfloat (Go), and floats-c (C, without SSE) where an i386 C compiler is installed."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    folder = tmp_path_factory.mktemp("floats")
    (folder / "main.go").write_text(FLOATS_GO)
    (folder / "go.mod").write_text("module example.com/floats\n\ngo 1.21\n")
    built = {}
    for go386 in ("sse2", "softfloat"):
        env = {**os.environ, "GOOS": "linux", "GOARCH": "386", "GO386": go386, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": ""}
        subprocess.run(["go", "build", "-trimpath", "-o", f"floats-{go386}", "."], cwd=folder, env=env, check=True)
        built[f"floats-{go386}"] = folder / f"floats-{go386}"
    cc = c_compiler()
    if cc is not None:
        (folder / "floats.c").write_text(FLOATS_C)
        compiled = subprocess.run(
            [cc, "-static", "-O2", *NO_SSE_CFLAGS, "-o", "floats-c", "floats.c", "-lm"], cwd=folder, capture_output=True, text=True, check=False
        )
        assert compiled.returncode == 0, f"{cc} could not build a static i386 program:\n{compiled.stderr}"
        built["floats-c"] = folder / "floats-c"
    return built


@pytest.fixture(scope="module")
def pentium3(programs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Boot:
    guest = Guest.fetch()
    init = "".join(run_and_report(name.upper(), f"/bin/{name}") for name in sorted(programs))
    files = {f"bin/{name}": path for name, path in programs.items()}
    initrd = guest.initramfs(tmp_path_factory.mktemp("pentium3") / "initrd.gz", init, files)
    return guest.boot(initrd, cpu=CPU)


def test_the_guest_cpu_has_sse_but_not_sse2(pentium3: Boot) -> None:
    assert pentium3.accelerator == "tcg"  # under KVM the guest would execute the host's instructions, SSE2 included
    assert pentium3.value("UNAME-M") == "i686", pentium3.console
    flags = pentium3.cpu_flags
    assert "sse" in flags, sorted(flags)
    assert "sse2" not in flags, f"qemu's {CPU} model has SSE2: the control below would prove nothing ({sorted(flags)})"
    assert "Pentium III" in (pentium3.cpu_model_name or ""), pentium3.block("CPUINFO")


def test_the_softfloat_go_program_runs_without_sse2(pentium3: Boot) -> None:
    assert pentium3.value("FLOATS-SOFTFLOAT-EXIT") == "0", pentium3.console[-6000:]
    assert pentium3.block("FLOATS-SOFTFLOAT-OUTPUT") == EXPECTED + "\n"


def test_the_c_program_built_without_sse_runs_without_sse2(pentium3: Boot, programs: dict[str, Path]) -> None:
    if "floats-c" not in programs:
        pytest.skip("no C compiler for static i386 programs (i686-linux-gnu-gcc; make setup installs it)")
    assert pentium3.value("FLOATS-C-EXIT") == "0", pentium3.console[-6000:]
    assert pentium3.block("FLOATS-C-OUTPUT") == EXPECTED + "\n"


def test_the_sse2_go_program_is_killed_by_sigill(pentium3: Boot, programs: dict[str, Path]) -> None:
    """The control: the kernel's SIGILL on an SSE2 instruction of Go's runtime, before the runtime has a signal
    handler (no message of Go's) and before main: with Go 1.26, the MFENCE in runtime.cputicks, which the sse2
    runtime executes without asking the CPU (the softfloat one leaves it out)."""
    assert pentium3.value("FLOATS-SSE2-EXIT") == str(SIGILL_EXIT), pentium3.console[-6000:]
    assert pentium3.block("FLOATS-SSE2-OUTPUT") == "Illegal instruction\n"  # the shell's word for it; main never ran
    (trap,) = pentium3.invalid_opcode_traps("floats-sse2")
    function, instruction = go_instruction_at(programs["floats-sse2"], trap)
    assert function.startswith("runtime."), (function, instruction)
    assert may_need_sse2(instruction), (function, instruction)
