"""Which functions of an i386 binary use SSE registers: the check that a GO386=softfloat build runs on CPUs
without SSE2 (Pentium III, Athlon XP, Geode, Vortex86), where such an instruction is a SIGILL.

Go's runtime keeps a few SSE code paths even in softfloat builds, each entered only after a CPUID check
(internal/cpu.X86.HasSSE2, HasAES): those are expected; any other function with an xmm register is not.
"""

from __future__ import annotations

import re
from pathlib import Path

from dock32.errors import BuildError
from dock32.run import capture

# runtime functions that test the CPU before they use SSE (checked in Go 1.24's runtime/*_386.s and
# internal/bytealg/*_386.s): hashing with AES-NI, and memory moves, clears and compares with SSE2.
CPU_DISPATCHED = frozenset({
    "aeshashbody", "runtime.memhash32", "runtime.memhash64", "runtime.memclrNoHeapPointers", "runtime.memmove",
    "memeqbody", "cmpbody", "runtime.aeshashbody", "indexbytebody", "countbody",
})

_FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")


def functions_using_sse(binary: Path) -> dict[str, int]:
    """Function name -> how many of its instructions name an xmm register, from objdump's disassembly."""
    result = capture(["objdump", "-d", "--no-show-raw-insn", binary])
    if result.returncode != 0:
        raise BuildError(f"objdump {binary.name}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    counts: dict[str, int] = {}
    current = ""
    for line in result.stdout.splitlines():
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


def unexpected_go_sse(binary: Path) -> list[str]:
    """Go functions that use SSE without the runtime's CPU check first: none in a GO386=softfloat build.
    (A cgo binary's static C library keeps its own SSE2 variants, which it picks only on CPUs that have SSE2.)"""
    return sorted(name for name in functions_using_sse(binary) if is_go_symbol(name) and name not in CPU_DISPATCHED)
