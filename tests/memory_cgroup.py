"""A memory cgroup for the tests: a child of this process's own, with a memory limit and no swap, that a command is
started in; and what the cgroup measured (the peak of its processes' anonymous memory, sampled, and OOM kills).

cgroup v1's memory hierarchy or a cgroup2 with memory in the parent's subtree_control; root only. The page cache of
the files a build reads and writes is charged to the cgroup too, and reclaimed under its limit, so the peak that says
what a build needs is its anonymous memory (v1 total_rss, v2 anon), which the kernel does not keep a maximum of:
a thread samples it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dock32.core.memory import memory_cgroups

SAMPLE_SECONDS = 0.2  # a link's peak lasts seconds


@dataclass(frozen=True)
class Controller:
    parent: Path
    v2: bool

    @property
    def limit_file(self) -> str:
        return "memory.max" if self.v2 else "memory.limit_in_bytes"

    @property
    def swap_limit_file(self) -> str:
        """v1 limits memory and swap together, v2 swap alone."""
        return "memory.swap.max" if self.v2 else "memory.memsw.limit_in_bytes"


def _controller() -> Controller | str:
    """Where a child memory cgroup can be made below this process's own; or why none can."""
    if os.geteuid() != 0:
        return "making a memory cgroup needs root"
    for root, path, v2 in memory_cgroups():
        folder = root / path.lstrip("/")
        if not v2 and (folder / "memory.limit_in_bytes").exists():
            return Controller(folder, v2=False)
        control = folder / "cgroup.subtree_control"
        if v2 and control.exists() and "memory" in control.read_text().split():
            return Controller(folder, v2=True)
    return "no memory cgroup controller: neither cgroup v1's memory hierarchy nor a cgroup2 with memory in subtree_control"


def _swap_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("SwapTotal:"):
            return int(line.split()[1])
    return 0


@dataclass
class MemoryCgroup:
    path: Path
    v2: bool
    peak_anon: int = 0  # bytes, sampled
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def procs(self) -> Path:
        """Write a PID here to move that process (and the children it starts after) into the cgroup."""
        return self.path / "cgroup.procs"

    def anon(self) -> int:
        wanted = "anon" if self.v2 else "total_rss"
        for line in (self.path / "memory.stat").read_text().splitlines():
            key, value = line.split()
            if key == wanted:
                return int(value)
        raise AssertionError(f"no {wanted} in {self.path / 'memory.stat'}")

    def oom_kills(self) -> int:
        """How many processes the kernel killed for this cgroup's limit (v1's oom_control has the count since 4.13)."""
        for line in (self.path / ("memory.events" if self.v2 else "memory.oom_control")).read_text().splitlines():
            key, value = line.split()
            if key == "oom_kill":
                return int(value)
        raise AssertionError(f"this kernel does not count OOM kills in {self.path}")

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            with contextlib.suppress(OSError):
                self.peak_anon = max(self.peak_anon, self.anon())


class NoMemoryCgroup(Exception):
    """Why no memory cgroup can be made here."""


@contextlib.contextmanager
def memory_cgroup(limit: int | None, *, swap: bool = True) -> Iterator[MemoryCgroup]:
    """In a test: measured_cgroup, skipping the test, naming why, where none can be made."""
    try:
        with measured_cgroup(limit, swap=swap) as cgroup:
            yield cgroup
    except NoMemoryCgroup as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def measured_cgroup(limit: int | None, *, swap: bool = True, name: str = "dock32-test") -> Iterator[MemoryCgroup]:
    """A fresh memory cgroup with limit bytes (None: no limit, only measured; with swap=False, no swap on top),
    sampled while it exists; NoMemoryCgroup, naming why, where none can be made."""
    found = _controller()
    if isinstance(found, str):
        raise NoMemoryCgroup(found)
    cgroup = MemoryCgroup(found.parent / f"{name}-{os.getpid()}", found.v2)
    try:
        cgroup.path.mkdir()
        if limit is not None:
            (cgroup.path / found.limit_file).write_text(str(limit))
        # v1 limits memory and swap together, so without a memory limit it cannot forbid swap alone.
        if not swap and (cgroup.path / found.swap_limit_file).exists() and (found.v2 or limit is not None):
            (cgroup.path / found.swap_limit_file).write_text("0" if found.v2 else str(limit))
        elif not swap and _swap_total() > 0:
            raise OSError(0, f"swap is on and {found.swap_limit_file} is missing (the kernel accounts no swap)")
    except OSError as exc:
        with contextlib.suppress(OSError):
            cgroup.path.rmdir()
        raise NoMemoryCgroup(f"cannot make a memory cgroup{' with a limit' if limit is not None else ''} in {found.parent}: {exc.strerror}") from exc
    sampler = threading.Thread(target=cgroup._sample, daemon=True)
    sampler.start()
    try:
        yield cgroup
    finally:
        cgroup._stop.set()
        sampler.join()
        for _ in range(50):  # the processes have exited; the kernel may take a moment to let the cgroup go
            try:
                cgroup.path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
