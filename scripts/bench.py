#!/usr/bin/env python3
"""Side by side, in one run:

- build: plain `go build` (and cmake for tini) of the same sources with the same flags, against `dock32 build`,
  both with a cold Go build cache and the same warm module cache, in alternating rounds (DOCK32_BENCH_ROUNDS,
  default 2); the minimum of each side is compared and the spread shown; then a no-op rerun. dock32's time is
  broken down per task kind (toolchain, fetch, source, compile, manifest) from its --json task times, per round
  and as the fastest round's split, and the cache's size per kind is shown: the last round's own cache (its Go
  build cache is one target's cold build) and the shared one.
  Targets: dock32 / plain <= 1.05, no-op rerun <= 1 s.
  Memory: each side runs in a memory cgroup of its own (root; no limit, only measured) whose anonymous memory is
  sampled, for its peak; and the first round adds a dock32 build planned for a 1 GiB box (--memory 1GiB: here,
  one task and one compile at a time), whose peak and time are set against the default settings'.
  The 1 GiB i386 build of `make test-all` (tests/e2e/test_native_i386.py), if one ran here, is shown too.
- packaging: dock32's packing of all .debs against plain `dpkg-deb -Zxz` (xz -6) of the same trees, and zstd.
  Targets: all packages <= 40 s, total size <= 1.05 x that of xz -6.

- parallelism (only when asked for): dock32's cold build at its default settings against `--jobs 1`, in
  alternating rounds: the measurement behind MAX_JOBS in dock32.core.memory.

`scripts/bench.py build` or `scripts/bench.py packaging` runs one part; no argument runs both.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests.memory_cgroup

from tests.memory_cgroup import MemoryCgroup, NoMemoryCgroup, measured_cgroup  # noqa: E402

from dock32.build.steps import go_build_argv, go_build_env  # noqa: E402
from dock32.core import memory  # noqa: E402
from dock32.model.config import CMakeBinary, GoBinary  # noqa: E402
from dock32.model.project import load_project  # noqa: E402
from dock32.model.settings import Settings, parse_memory  # noqa: E402
from dock32.pipeline import breakdown, cachedir  # noqa: E402
from dock32.pipeline.plan import memory_kinds  # noqa: E402
from dock32.toolchains.toolchain import ResolvedToolchain  # noqa: E402

T = TypeVar("T")
MiB = 1024 * 1024
# What `--memory` gives the low-memory round: the box of issue 16.
SMALL_BOX = "1GiB"


def dock32(*args: str, env: dict[str, str]) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "dock32.cli", *args, "--project", str(ROOT)], env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def dock32_json(*args: str, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """dock32 with --json: its wall time and its report (the task times)."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dock32.cli", *args, "--json", "--project", str(ROOT)], env={**os.environ, **env},
                            check=True, stdout=subprocess.PIPE, text=True)
    return time.monotonic() - start, json.loads(result.stdout)


@dataclasses.dataclass
class Measured:
    seconds: float
    peak_mib: int | None  # None: no memory cgroup here
    result: Any


def measured(work: Callable[[], T], seconds: Callable[[T], float]) -> Measured:
    """work() with this process (and so every command it starts) in a memory cgroup of its own, only measured: its
    result, its seconds (read from the result) and the peak of the cgroup's anonymous memory."""
    try:
        with measured_cgroup(None, name="dock32-bench") as cgroup, moved_into(cgroup):
            result = work()
        return Measured(seconds(result), cgroup.peak_anon // MiB, result)
    except NoMemoryCgroup as exc:
        print(f"  (no peak memory: {exc})", flush=True)
        result = work()
        return Measured(seconds(result), None, result)


@contextmanager
def moved_into(cgroup: MemoryCgroup) -> Iterator[None]:
    home = cgroup.path.parent / "cgroup.procs"
    cgroup.procs.write_text(str(os.getpid()))
    try:
        yield
    finally:
        home.write_text(str(os.getpid()))


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,} MiB"


def cache_listing(settings: Settings) -> list[str]:
    return cachedir.listing(settings, cachedir.entries(settings))


PARTS = ("build", "packaging", "parallelism")


def main() -> int:
    parts = sys.argv[1:] or ["build", "packaging"]
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        print(f"error: scripts/bench.py: no part named {', '.join(unknown)}: one of {', '.join(PARTS)}", file=sys.stderr)
        return 2
    print("preparing: a normal `dock32 build` so that sources, modules and binaries are in place ...", flush=True)
    dock32("build", env={})
    if "build" in parts:
        bench_build()
    if "packaging" in parts:
        bench_packaging()
    if "parallelism" in parts:
        bench_parallelism()
    return 0


def bench_packaging() -> None:
    config = load_project(ROOT).config
    with tempfile.TemporaryDirectory(prefix="dock32-bench.") as scratch_name:
        scratch = Path(scratch_name)
        ours = dock32("build", env={"DOCK32_DIST_DIR": str(scratch / "dist")})
        debs = sorted((scratch / "dist" / config.target).glob("*.deb"))
        our_size = sum(d.stat().st_size for d in debs)
        trees = []
        for deb in debs:
            tree = scratch / "trees" / deb.stem
            tree.parent.mkdir(exist_ok=True)
            subprocess.run(["dpkg-deb", "-R", deb, tree], check=True)
            trees.append(tree)
        results = {}
        for label, flags in (("plain dpkg-deb -Zxz (xz -6)", ["-Zxz", "-z6"]), ("plain dpkg-deb -Zzstd", ["-Zzstd"])):
            start = time.monotonic()
            size = 0
            for tree in trees:
                out = scratch / f"{tree.name}.{flags[0]}.deb"
                subprocess.run(["dpkg-deb", "--root-owner-group", *flags, "--build", tree, out], check=True, stdout=subprocess.DEVNULL)
                size += out.stat().st_size
            results[label] = (time.monotonic() - start, size)
    xz6_time, xz6_size = results["plain dpkg-deb -Zxz (xz -6)"]
    print()
    print(f"{'packing all ' + str(len(debs)) + ' .debs':<44} {'seconds':>9} {'MB':>9} {'x xz -6':>8}")
    print(f"{'dock32 (dpkg-deb + xz --x86, 2 at a time)':<44} {ours:9.1f} {our_size / 1e6:9.1f} {our_size / xz6_size:8.3f}")
    for label, (seconds, size) in results.items():
        print(f"{label:<44} {seconds:9.1f} {size / 1e6:9.1f} {size / xz6_size:8.3f}")
    print(f"targets: <= 40 s: {'met' if ours <= 40 else 'MISSED'}; size <= 1.05 x xz -6: {'met' if our_size <= 1.05 * xz6_size else 'MISSED'}")
    print("(dock32's time includes staging, the completions, the repository index and doit's own start-up)")


ROUNDS = int(os.environ.get("DOCK32_BENCH_ROUNDS", "2"))


def plain_build(scratch: Path) -> float:
    """The same go build commands (and cmake for tini), run by hand in the prepared trees, into an empty GOCACHE."""
    project = load_project(ROOT)
    config, settings, layout = project.config, project.settings, project.layout
    toolchain = ResolvedToolchain.from_file(layout.toolchain_record)
    raw_out = scratch / "raw"
    raw_out.mkdir()
    raw_cache = dataclasses.replace(settings, cache_dir=scratch / "raw-cache")
    (scratch / "raw-cache" / "go").mkdir(parents=True)
    (scratch / "raw-cache" / "go" / "mod").symlink_to(settings.gomodcache)
    start = time.monotonic()
    for component in config.components:
        tree = layout.source_tree(component.name)
        for binary in component.binaries:
            if isinstance(binary, GoBinary):
                argv = go_build_argv(component, binary, config.release.date, toolchain.go, raw_out / binary.name)
                env = go_build_env(component, config.flavour, config.release.date, toolchain, raw_cache)
                subprocess.run(argv, cwd=tree, env={**os.environ, **env}, check=True)
            elif isinstance(binary, CMakeBinary):
                work = scratch / "cmake"
                subprocess.run(["cmake", "-S", tree, "-B", work, f"-DCMAKE_C_COMPILER={toolchain.cc}", "-DCMAKE_BUILD_TYPE=Release", *binary.args],
                               check=True, stdout=subprocess.DEVNULL)
                subprocess.run(["cmake", "--build", work, "--target", binary.target], check=True, stdout=subprocess.DEVNULL)
                shutil.copyfile(work / binary.output, raw_out / binary.name)
    return time.monotonic() - start


@dataclasses.dataclass
class Dock32Round:
    cold: float  # wall seconds of the cold build of the binaries
    noop: float  # the best of three no-op reruns of the whole build
    kinds: dict[str, float]  # the cold build's task seconds per kind
    cache: list[str]  # the round's cache per kind, before its folder goes


def cold_seconds(dock32_round: Dock32Round) -> float:
    return dock32_round.cold


def dock32_build(scratch: Path, *options: str, noop: bool = True) -> Dock32Round:
    """dock32 with a fresh build folder and Go build cache (module cache and downloaded trees shared): the cold build
    of the binaries, with its task times per kind, then the best of three no-op reruns of the whole build."""
    settings = load_project(ROOT).settings
    cache = scratch / "dock32-cache"
    (cache / "go").mkdir(parents=True)
    (cache / "go" / "mod").symlink_to(settings.gomodcache)
    for shared in ("trees", "downloads"):
        if (settings.cache_dir / shared).exists():
            (cache / shared).symlink_to(settings.cache_dir / shared)
    env = {"DOCK32_CACHE_DIR": str(cache), "DOCK32_BUILD_DIR": str(scratch / "build"), "DOCK32_DIST_DIR": str(scratch / "dist")}
    # The binaries only: the plain side packs nothing.
    cold, report = dock32_json("build", "manifest", *options, env=env)
    noop_seconds = float("nan")
    if noop:
        dock32("build", *options, env=env)
        noop_seconds = min(dock32("build", *options, env=env) for _ in range(3))
    return Dock32Round(cold, noop_seconds, breakdown.seconds_by_kind(report), cache_listing(dataclasses.replace(settings, cache_dir=cache)))


def bench_build() -> None:
    """ROUNDS rounds (DOCK32_BENCH_ROUNDS, default 2), each a plain build then a dock32 build, both cold, so that a
    slow spell of a noisy machine falls on both sides; the minimum of each side is compared, the spread shown. The
    first round also builds with a 1 GiB box's settings, for their peak memory and time."""
    plain: list[Measured] = []
    measured_ours: list[Measured] = []
    small_box: Measured | None = None
    for round_number in range(1, ROUNDS + 1):
        sides = ["plain", "dock32", "small box"] if round_number == 1 else ["plain", "dock32"]
        for side in sides:
            with tempfile.TemporaryDirectory(prefix="dock32-bench.") as scratch_name:
                scratch = Path(scratch_name)
                if side == "plain":
                    print(f"round {round_number}/{ROUNDS}: plain build, cold Go build cache ...", flush=True)
                    plain.append(measured(functools.partial(plain_build, scratch), float))
                elif side == "dock32":
                    print(f"round {round_number}/{ROUNDS}: dock32 build, cold Go build cache ...", flush=True)
                    measured_ours.append(measured(functools.partial(dock32_build, scratch), cold_seconds))
                    print("  " + "  ".join(f"{kind} {seconds:.1f} s" for kind, seconds in measured_ours[-1].result.kinds.items()), flush=True)
                else:
                    print(f"round {round_number}/{ROUNDS}: dock32 build --memory {SMALL_BOX} (a small box's settings), cold Go build cache ...", flush=True)
                    small_box = measured(functools.partial(dock32_build, scratch, "--memory", SMALL_BOX), cold_seconds)
    ours: list[Dock32Round] = [m.result for m in measured_ours]
    colds = [r.cold for r in ours]
    ratio = min(colds) / min(m.seconds for m in plain)
    print()
    print(f"{'what (' + str(ROUNDS) + ' alternating rounds)':<44} {'min s':>9} {'spread s':>9}  rounds")
    plain_seconds = [m.seconds for m in plain]
    spread = max(plain_seconds) - min(plain_seconds)
    print(f"{'plain go build + cmake (cold GOCACHE)':<44} {min(plain_seconds):9.1f} {spread:9.1f}  {', '.join(f'{s:.1f}' for s in plain_seconds)}")
    print(f"{'dock32 build manifest (cold GOCACHE)':<44} {min(colds):9.1f} {max(colds) - min(colds):9.1f}  {', '.join(f'{s:.1f}' for s in colds)}")
    print(f"{'dock32 / plain (minimum over minimum)':<44} {ratio:9.3f}   target <= 1.05: {'met' if ratio <= 1.05 else 'MISSED'}")
    noop = min(r.noop for r in ours)
    print(f"{'dock32 build, nothing changed (best of 3)':<44} {noop:9.2f}   target <= 1 s: {'met' if noop <= 1 else 'MISSED'}")
    print()
    memory_table(plain, measured_ours, small_box)
    print()
    for line in breakdown.kind_table([r.kinds for r in ours], colds):
        print(line)
    print("(each kind sums its tasks' times; tasks run at once, so the sum exceeds the wall time)")
    print()
    print("the last dock32 round's cache (its Go build cache: one target's cold build; modules, trees and downloads are the shared ones):")
    for line in ours[-1].cache:
        print(line)
    for line in cache_listing(load_project(ROOT).settings):
        print(line)


def bench_parallelism() -> None:
    """dock32's cold build at its default settings against one task at a time, in ROUNDS alternating rounds."""
    settings = {"default": (), "--jobs 1": ("--jobs", "1")}
    colds: dict[str, list[float]] = {label: [] for label in settings}
    for round_number in range(1, ROUNDS + 1):
        for label, options in settings.items():
            print(f"round {round_number}/{ROUNDS}: dock32 build {label}, cold Go build cache ...", flush=True)
            with tempfile.TemporaryDirectory(prefix="dock32-bench.") as scratch_name:
                colds[label].append(dock32_build(Path(scratch_name), *options, noop=False).cold)
    print()
    print(f"{'dock32 build manifest (' + str(ROUNDS) + ' alternating rounds)':<44} {'min s':>9} {'spread s':>9}  rounds")
    for label, seconds in colds.items():
        print(f"{label:<44} {min(seconds):9.1f} {max(seconds) - min(seconds):9.1f}  {', '.join(f'{s:.1f}' for s in seconds)}")


def small_box_settings() -> str:
    """What dock32 chose here for --memory SMALL_BOX (the line it prints, less its prefix)."""
    project = load_project(ROOT)
    machine = memory.read_machine()
    choice = memory.choose(machine.available, machine.cgroup_limit, machine.swap_free, machine.cpus, memory_kinds(project),
                           bits=machine.bits, memory=parse_memory(SMALL_BOX))
    return choice.line().removeprefix("dock32: ")


def memory_table(plain: list[Measured], ours: list[Measured], small_box: Measured | None) -> None:
    """Peak anonymous memory (each side's own cgroup) and time: plain, dock32 at its defaults, dock32 at a small
    box's settings, and the ratios; then the last 1 GiB i386 build of make test-all, if there is one."""
    def peak(sides: list[Measured]) -> int | None:
        peaks = [m.peak_mib for m in sides if m.peak_mib is not None]
        return max(peaks) if peaks else None

    print(f"{'peak memory and time':<44} {'peak':>12} {'min s':>9}")
    print(f"{'plain go build + cmake':<44} {mib(peak(plain)):>12} {min(m.seconds for m in plain):9.1f}")
    print(f"{'dock32, default settings here':<44} {mib(peak(ours)):>12} {min(m.seconds for m in ours):9.1f}")
    if small_box is not None:
        print(f"{'dock32 --memory ' + SMALL_BOX:<44} {mib(small_box.peak_mib):>12} {small_box.seconds:9.1f}  ({small_box_settings()})")
        default_peak = peak(ours)
        if small_box.peak_mib is not None and default_peak:
            print(f"{'small box / default: peak memory':<44} {small_box.peak_mib / default_peak:12.2f}")
        print(f"{'small box / default: time':<44} {small_box.seconds / min(m.seconds for m in ours):12.2f}")
    native = load_project(ROOT).settings.build_dir / "measurements" / "native-i386-1gib.json"
    if native.is_file():
        figures = json.loads(native.read_text())
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(native.stat().st_mtime))
        print(f"the 1 GiB i386 build of make test-all ({when}, in a {figures['memory_limit_mib']} MiB cgroup without swap, under setarch i686):"
              f" make build {figures['seconds']} s, peak anonymous memory {figures['peak_anon_mib']:,} MiB, OOM kills {figures['oom_kills']}")


if __name__ == "__main__":
    sys.exit(main())
