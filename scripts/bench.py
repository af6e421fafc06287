#!/usr/bin/env python3
"""Side by side, in one run:

- build: plain `go build` (and cmake for tini) of the same sources with the same flags, against `dock32 build`,
  both with a cold Go build cache and the same warm module cache, in alternating rounds (DOCK32_BENCH_ROUNDS,
  default 2); the minimum of each side is compared and the spread shown; then a no-op rerun. dock32's time is
  broken down per task kind (toolchain, fetch, source, compile, manifest) from its --json task times, per round
  and as the fastest round's split, and the cache's size per kind is shown: the last round's own cache (its Go
  build cache is one target's cold build) and the shared one.
  Targets: dock32 / plain <= 1.05, no-op rerun <= 1 s.
- packaging: dock32's packing of all .debs against plain `dpkg-deb -Zxz` (xz -6) of the same trees, and zstd.
  Targets: all packages <= 40 s, total size <= 1.05 x that of xz -6.

`scripts/bench.py build` or `scripts/bench.py packaging` runs one part; no argument runs both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dock32.build.steps import go_build_argv, go_build_env  # noqa: E402
from dock32.model.config import CMakeBinary, GoBinary  # noqa: E402
from dock32.model.project import load_project  # noqa: E402
from dock32.model.settings import Settings  # noqa: E402
from dock32.pipeline import breakdown, cachedir  # noqa: E402
from dock32.toolchains.toolchain import ResolvedToolchain  # noqa: E402


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


def cache_listing(settings: Settings) -> list[str]:
    return cachedir.listing(settings, cachedir.entries(settings))


def main() -> int:
    parts = sys.argv[1:] or ["build", "packaging"]
    print("preparing: a normal `dock32 build` so that sources, modules and binaries are in place ...", flush=True)
    dock32("build", env={})
    if "build" in parts:
        bench_build()
    if "packaging" in parts:
        bench_packaging()
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


def dock32_build(scratch: Path) -> Dock32Round:
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
    cold, report = dock32_json("build", "manifest", env=env)
    dock32("build", env=env)
    noop = min(dock32("build", env=env) for _ in range(3))
    return Dock32Round(cold, noop, breakdown.seconds_by_kind(report), cache_listing(dataclasses.replace(settings, cache_dir=cache)))


def bench_build() -> None:
    """ROUNDS rounds (DOCK32_BENCH_ROUNDS, default 2), each a plain build then a dock32 build, both cold, so that a
    slow spell of a noisy machine falls on both sides; the minimum of each side is compared, the spread shown."""
    plain: list[float] = []
    ours: list[Dock32Round] = []
    for round_number in range(1, ROUNDS + 1):
        for side in ("plain", "dock32"):
            with tempfile.TemporaryDirectory(prefix="dock32-bench.") as scratch_name:
                print(f"round {round_number}/{ROUNDS}: {side} build, cold Go build cache ...", flush=True)
                if side == "plain":
                    plain.append(plain_build(Path(scratch_name)))
                else:
                    ours.append(dock32_build(Path(scratch_name)))
                    print("  " + "  ".join(f"{kind} {seconds:.1f} s" for kind, seconds in ours[-1].kinds.items()), flush=True)
    colds = [r.cold for r in ours]
    ratio = min(colds) / min(plain)
    print()
    print(f"{'what (' + str(ROUNDS) + ' alternating rounds)':<44} {'min s':>9} {'spread s':>9}  rounds")
    print(f"{'plain go build + cmake (cold GOCACHE)':<44} {min(plain):9.1f} {max(plain) - min(plain):9.1f}  {', '.join(f'{s:.1f}' for s in plain)}")
    print(f"{'dock32 build manifest (cold GOCACHE)':<44} {min(colds):9.1f} {max(colds) - min(colds):9.1f}  {', '.join(f'{s:.1f}' for s in colds)}")
    print(f"{'dock32 / plain (minimum over minimum)':<44} {ratio:9.3f}   target <= 1.05: {'met' if ratio <= 1.05 else 'MISSED'}")
    noop = min(r.noop for r in ours)
    print(f"{'dock32 build, nothing changed (best of 3)':<44} {noop:9.2f}   target <= 1 s: {'met' if noop <= 1 else 'MISSED'}")
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


if __name__ == "__main__":
    sys.exit(main())
