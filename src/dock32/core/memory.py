"""How many tasks run at once, and Go's -p, GOGC and GOMEMLIMIT for the compiles, so that the build fits this
machine's memory: read once from /proc and the cgroup (read_machine), decided by a pure function (choose)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB

# What one task of each kind needs resident, in MiB, when a 32-bit go command and linker do the work (the i386 box
# itself): its anonymous memory and the part of the files it maps that it keeps using. Not its peak RSS: a Go link
# maps the package objects of the build cache, which count in its RSS but which the kernel drops and reads again
# when memory is short. Measured in memory cgroups without swap (README, "Memory"): linking dockerd for 386 with an
# amd64 go peaks at 1,296 MB RSS but 351 MiB anonymous, takes as long under a 448 MiB limit as under none and is
# OOM-killed under 384 MiB, so it needs about 450 MiB there, 450 / GO_64BIT_FACTOR here. buildx's link, the next
# largest: 853 MB RSS, 230 MiB anonymous, unslowed under 320 MiB. The largest compile process peaks near 300 MB RSS
# on i386; a cold `go build -p 1 ./cmd/dockerd` on amd64 peaked at 580 MiB anonymous, a compile and the go command.
# The whole `make build` in an i386 root under a 1 GiB limit (one task, go -p 1, GOGC=50) peaked at 432 MiB.
DOCKERD_LINK = 320
GO_COMMAND = 100  # the go command, which stays alive around the compiles and the link holding the package graph
COMPILE_PROCESS = 300  # one compile process; go build -p N runs up to N of them at once
GO_LINK = 230
# What `xz -vv` says the data member's filter chain needs (--x86 --lzma2=preset=1,dict=64MiB: 418 MiB), and dpkg-deb.
PACKAGE = 450
C_COMPILE = 150  # tini through cmake and gcc: small
OTHER = 200  # fetch (go mod download), source, manifest (go version -m), sbom, repository
# dock32 itself (Python, doit, the progress line) and the shell around it: it shares the memory it measures.
DOCK32_ITSELF = 100
# Estimates are estimates: a choice fits when the estimated peak plus this share of it fits.
MARGIN = 0.10
# A 64-bit go command and linker use more: linking the same dockerd for 386 on amd64 peaked at 1,296,948 kB RSS
# against 907,328 kB on i386 (the same Go 1.26.8, the same tree and build cache), so Go's figures are scaled.
GO_64BIT_FACTOR = 1.43
# GC settings when memory is tight. They cost GC time and never change the output: Go's -p, GOGC and GOMEMLIMIT
# only decide when the compiler and linker collect garbage and how many packages compile at once; the same dockerd
# linked byte-identical with each. They trim the link's anonymous peak a little (GOGC=50 with GOMEMLIMIT=824MiB:
# 291 MiB against 335 MiB on amd64), since most of what the linker holds is live: running fewer tasks and compiles
# at once is what saves memory.
TIGHT_GOGC = 50
MIN_GOMEMLIMIT = 256  # MiB: below it the GC would run without pause and save nothing
# How many tasks run at once when memory allows: independent ones (two Go builds, two packages) side by side.
MAX_JOBS = 2

# The kinds of task (tasks.py names each planned task's kind).
DOCKERD = "dockerd"  # compile:dockerd, the largest link
GO = "go"  # any other Go binary
C = "c"
PACKAGING = "package"
TOOLCHAIN = "toolchain"  # Go built from source: go's own make.bash, many compiles
SMALL = "small"
KINDS = (DOCKERD, GO, C, PACKAGING, TOOLCHAIN, SMALL)

_KIND_WORDS = {DOCKERD: "linking dockerd", GO: "a Go build", C: "a C build", PACKAGING: "packing a .deb", TOOLCHAIN: "building Go", SMALL: "a small task"}


def task_peak(kind: str, go_procs: int, bits: int) -> float:
    """Estimated peak MiB of one task of kind with go build -p go_procs, on a build machine of bits."""
    go_scale = GO_64BIT_FACTOR if bits == 64 else 1.0
    compiles = go_procs * COMPILE_PROCESS + GO_COMMAND
    if kind == DOCKERD:
        return max(DOCKERD_LINK + GO_COMMAND, compiles) * go_scale
    if kind == GO:
        return max(GO_LINK + GO_COMMAND, compiles) * go_scale
    if kind == TOOLCHAIN:  # make.bash compiles with Go's own -p (the CPUs), which dock32 leaves alone: two, as on the box
        return (2 * COMPILE_PROCESS + GO_COMMAND) * go_scale
    if kind == C:
        return C_COMPILE
    if kind == PACKAGING:
        return PACKAGE
    if kind == SMALL:
        return OTHER
    raise ValueError(f"unknown task kind {kind!r}: one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class MachineMemory:
    """What read_machine found: bytes, except cpus; cgroup_limit None when no cgroup limits this process."""

    available: int  # MemAvailable
    cgroup_limit: int | None
    swap_free: int
    cpus: int
    bits: int  # the word size of this machine's userland (its go command's)


@dataclass(frozen=True)
class MemoryChoice:
    jobs: int  # doit's -n
    go_procs: int  # go build -p
    gogc: int | None  # None: Go's default
    gomemlimit: int | None  # MiB; None: none
    usable: int  # MiB: MemAvailable or the cgroup limit, whichever is lower
    reason: str  # why, for the one line a build starts with
    shortfall: str | None  # a warning: the largest task may not fit even so

    def go_env(self, env: dict[str, str]) -> dict[str, str]:
        """A compile's env with these settings: the go command reads -p from GOFLAGS (after the flags env has), the
        compiler and linker it runs read GOGC and GOMEMLIMIT. Kept out of the go build command line, which the
        compile's up-to-date check hashes: none of them changes a byte of the output."""
        env = {**env, "GOFLAGS": " ".join([*env.get("GOFLAGS", "").split(), f"-p={self.go_procs}"])}
        if self.gogc is not None:
            env["GOGC"] = str(self.gogc)
        if self.gomemlimit is not None:
            env["GOMEMLIMIT"] = f"{self.gomemlimit}MiB"
        return env

    def line(self) -> str:
        settings = [f"{self.jobs} task{'s' if self.jobs != 1 else ''} at a time", f"go -p {self.go_procs}"]
        if self.gogc is not None:
            settings.append(f"GOGC={self.gogc}")
        if self.gomemlimit is not None:
            settings.append(f"GOMEMLIMIT={self.gomemlimit}MiB")
        return f"dock32: {', '.join(settings)}: {self.reason}"


def size(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


# Where the memory a build plans for came from: the lowest of these wins.
MEM_AVAILABLE = "MemAvailable"
CGROUP_LIMIT = "cgroup limit"
MEMORY_OPTION = "--memory"


def choose(
    available: int,
    cgroup_limit: int | None,
    swap_free: int,
    cpus: int,
    kinds: tuple[str, ...] | list[str],
    bits: int = 32,
    jobs: int | None = None,
    memory: int | None = None,
) -> MemoryChoice:
    """The parallelism and Go settings under which the build's estimated peak (the largest tasks that may run
    together, plus dock32 itself, plus MARGIN) fits the memory: byte figures in, a choice and its reason out.
    jobs: the user's --jobs/DOCK32_JOBS, which wins over the estimate (with a warning when it may not fit).
    memory: the user's --memory/DOCK32_MEMORY, what to plan for at most (memory kept for other work, or a box's)."""
    cpus = max(cpus, 1)
    offered = [(available, MEM_AVAILABLE), (cgroup_limit, CGROUP_LIMIT), (memory, MEMORY_OPTION)]
    usable_bytes, source = min((amount, name) for amount, name in offered if amount is not None)
    usable = usable_bytes // MiB
    where = f"{size(usable)} available ({source})"
    kinds = tuple(kinds) or (SMALL,)

    def need(n: int, go_procs: int, margin: float = MARGIN) -> float:
        peaks = sorted((task_peak(kind, go_procs, bits) for kind in kinds), reverse=True)
        return sum(peaks[:n]) * (1 + margin) + DOCK32_ITSELF

    def tight(n: int) -> tuple[int, int]:
        """GOGC and GOMEMLIMIT (MiB) for n tasks at once: each Go process may grow to its share, less the go command's."""
        return TIGHT_GOGC, max(int(usable / n - DOCK32_ITSELF - GO_COMMAND), MIN_GOMEMLIMIT)

    if jobs is not None:
        go_procs = max([p for p in range(cpus, 0, -1) if need(jobs, p) <= usable] or [1])
        fits = need(jobs, go_procs) <= usable
        gogc, limit = (None, None) if fits else tight(jobs)
        shortfall = None
        if need(jobs, go_procs, margin=0) > usable:
            shortfall = _shortfall(f"{jobs} task{'s' if jobs != 1 else ''} at once (--jobs {jobs})", need(jobs, go_procs, 0), usable, swap_free, source)
        return MemoryChoice(jobs, go_procs, gogc, limit, usable, f"{where}; --jobs {jobs} (estimated need {size(need(jobs, go_procs))})", shortfall)

    most = min(MAX_JOBS, cpus)
    for n in range(most, 0, -1):
        if need(n, cpus) <= usable:
            if n == most:
                reason = f"{where}, about {size(need(n, cpus))} needed"
            else:
                reason = f"{where}; {most} at once would need about {size(need(most, cpus))}"
            return MemoryChoice(n, cpus, None, None, usable, reason, None)
    # One task at a time with fewer compiles at once, at Go's GC defaults, if that fits.
    for go_procs in range(cpus - 1, 0, -1):
        if need(1, go_procs) <= usable:
            reason = f"{where}; {cpus} compiles at once would need about {size(need(1, cpus))}"
            return MemoryChoice(1, go_procs, None, None, usable, reason, None)
    # Not even the largest task alone with one compile at Go's defaults: one at a time, one compile, GC settings.
    gogc, limit = tight(1)
    worst = max(kinds, key=lambda kind: task_peak(kind, 1, bits))
    reason = f"{where}; {_KIND_WORDS.get(worst, worst)} alone needs about {size(need(1, 1, margin=0))}"
    shortfall = None
    if need(1, 1, margin=0) > usable:
        shortfall = _shortfall(_KIND_WORDS.get(worst, worst), need(1, 1, 0), usable, swap_free, source)
    return MemoryChoice(1, 1, gogc, limit, usable, reason, shortfall)


def _shortfall(what: str, needed: float, usable: int, swap_free: int, source: str) -> str:
    """The one-line warning before a build that may not fit. A warning, not an error: the figures are estimates,
    swap may carry the peak (a link's peak lasts seconds), and GOGC/GOMEMLIMIT still trim it."""
    head = f"{what} needs about {size(needed)} and {size(usable)} is available{f' ({source})' if source != MEM_AVAILABLE else ''}"
    swap = swap_free // MiB
    if source == MEM_AVAILABLE and usable + swap >= needed:
        return f"{head}: the peak will go to swap ({size(swap)} free), slower but it should finish"
    fixes = {
        CGROUP_LIMIT: "raise the container's memory limit",
        MEMORY_OPTION: "raise --memory (DOCK32_MEMORY) if the machine has more",
    }.get(source, "add memory or swap (fallocate -l 2G /swapfile, mkswap, swapon)")
    return f"{head}, so the build may be killed for memory: {fixes}, or build on a larger machine and install the .debs here"


# --- reading this machine -------------------------------------------------------------------------------------

# A limit this large is no limit: cgroup v1 writes 2**63 rounded down to the page size for "none".
NO_LIMIT = 1 << 60


def read_machine(proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")) -> MachineMemory:
    """MemAvailable and SwapFree from /proc/meminfo; the lowest memory limit of this process's cgroup and the
    cgroups above it (v2 memory.max, v1 memory.limit_in_bytes), None if there is none; the CPUs it may use."""
    meminfo: dict[str, int] = {}
    for line in (proc / "meminfo").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            meminfo[name] = int(fields[0]) * 1024 if fields[1:] == ["kB"] else int(fields[0])
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    limits = []
    for root, path, v2 in memory_cgroups(proc, cgroups):
        limits += _limits_up(root, path, "memory.max" if v2 else "memory.limit_in_bytes")
    limit = min(limits) if limits else None
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return MachineMemory(available, limit, meminfo.get("SwapFree", 0), cpus, struct.calcsize("P") * 8)


def memory_cgroups(proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")) -> list[tuple[Path, str, bool]]:
    """Where this process's memory may be limited, from /proc/self/cgroup: (the hierarchy's mount, the process's
    cgroup path in it, whether it is cgroup v2), v1's memory hierarchy first; none if that file cannot be read."""
    try:
        memberships = (proc / "self" / "cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found: list[tuple[Path, str, bool]] = []
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            found.insert(0, (cgroups / "memory", path, False))
        elif controllers == "":  # v2: its own mount, or "unified" beside v1's
            found += [(cgroups, path, True), (cgroups / "unified", path, True)]
    return found


def _limits_up(root: Path, path: str, name: str) -> list[int]:
    """The limits set in name of the cgroup at path below root and of each cgroup above it."""
    found = []
    folder = root / path.lstrip("/")
    while True:
        try:
            text = (folder / name).read_text(encoding="ascii").strip()
        except OSError:
            text = ""
        if text.isdigit() and int(text) < NO_LIMIT:
            found.append(int(text))
        if folder == root or root not in folder.parents:
            return found
        folder = folder.parent
