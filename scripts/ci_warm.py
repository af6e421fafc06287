#!/usr/bin/env python3
"""A cold and a warm CI run of the workflow's `build` job (its first matrix entry), timed step by step, and the
sizes of the caches it stores: what `make bench-ci` runs.

Both runs play GitHub's runner with tests/workflow_runner.py and a real cache store, a folder of `<key>.tar.zst`
archives made as actions/cache makes them. The cold run starts from an empty HOME (so an empty ~/.cache/dock32)
and an empty store, and saves the caches; the warm run starts from another empty HOME and restores them, as a new
runner does. Each run has its own checkout of this checkout's HEAD (uncommitted changes are not in it), made as
actions/checkout makes it: a fetch of that commit at depth 1 and a detached checkout.

The job runs in a debian:12 container as root: this machine must be that. Its apt step is skipped when everything
it installs is installed here. The environment is the caller's (GOPROXY, DOCK32_DEBIAN_MIRROR, pip's settings...)
without what would point the run at another cache or build folder, with CI=true as on GitHub.

  scripts/ci_warm.py [--steps-until NAME] [--keep]

--steps-until NAME stops each run after the named step (e.g. "Save this target's Go build cache" to skip the
verify steps); --keep keeps the scratch folder. That folder is made under $TMPDIR, else /tmp, and needs the space of
one cold build with its cache and the store: the cold run's checkout and HOME are removed before the warm run starts.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.workflow_runner

from tests.workflow_runner import CacheStore, JobFailed, StepResult, StepWatcher, run_job, step_name, uses  # noqa: E402

WORKFLOW = ".github/workflows/build.yml"
JOB = "build"
# They would point the run at another cache, build or output folder than its own HOME's and checkout's; the others
# (GOPROXY, DOCK32_DEBIAN_MIRROR, pip's settings, proxies) reach the run as they reach a build here.
NOT_PASSED_ON = ("DOCK32_CACHE_DIR", "DOCK32_BUILD_DIR", "DOCK32_DIST_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "VIRTUAL_ENV")
MiB = 1 << 20


class Failed(Exception):
    """What stops this script, as one `error:` line."""


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd or ROOT, capture_output=True, text=True, check=True).stdout.strip()


def checkout_of(commit: str) -> Callable[[Path], None]:
    def checkout(workdir: Path) -> None:
        # What actions/checkout does: one commit, depth 1, detached.
        for args in (["init", "--quiet"], ["fetch", "--quiet", "--depth", "1", str(ROOT), commit], ["checkout", "--quiet", "--detach", "FETCH_HEAD"]):
            git(*args, cwd=workdir)

    return checkout


def apt_step_skip(job: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The apt step, skipped when all it installs is installed here: the skip, and what to say about it."""
    for step in job["steps"]:
        install = next((line for line in str(step.get("run", "")).splitlines() if "apt-get install" in line), None)
        if install is None:
            continue
        words = shlex.split(install)
        packages = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
        status = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages], capture_output=True, text=True, check=False)
        installed = {line.split()[0] for line in status.stdout.splitlines() if line.split()[1:2] == ["ii"]}
        missing = [p for p in packages if p not in installed]
        name = step_name(step)
        if missing:
            return {}, f"the apt step runs, as {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed here"
        reason = f"{', '.join(packages)} are installed here (a fresh debian:12 runner spends this step installing them)"
        return {name: reason}, f"the apt step ({name!r}) is skipped: {reason}"
    return {}, "the job has no apt step"


def runner_environment(home: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in NOT_PASSED_ON}
    return {**environment, "HOME": str(home), "CI": "true"}


def mounts_under(folder: Path) -> list[str]:
    """Mount points inside folder: a verify that left one behind must not have it removed through."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    decoded = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in points]
    return [p for p in decoded if Path(p).is_relative_to(folder)]


def remove(folder: Path) -> None:
    left = mounts_under(folder)
    if left:
        raise Failed(f"{folder} is not removed: {', '.join(left)} {'is' if len(left) == 1 else 'are'} still mounted there")
    shutil.rmtree(folder)


class Printer(StepWatcher):
    def started(self, name: str) -> None:
        print(f"  {'…':>9}  {name}", flush=True)

    def finished(self, result: StepResult) -> None:
        print(f"  {result.seconds:8.1f}s  {result.name}: {result.outcome}", flush=True)


def run(label: str, folder: Path, job: dict[str, Any], context: dict[str, str], store: CacheStore, commit: str,
        options: dict[str, Any]) -> tuple[list[StepResult], float]:
    """One run of the job in folder (its HOME, checkout, artifacts and logs): its steps and its wall time."""
    home, workdir, artifacts = folder / "home", folder / "work", folder / "artifacts"
    for path in (home, workdir, artifacts):
        path.mkdir(parents=True)
    print(f"\n== {label}: HOME={home}, checkout {workdir}, step output in {folder / 'logs'} ==", flush=True)
    start = time.monotonic()
    try:
        results = run_job(job, context, workdir, artifacts, None, {}, caches=store, base_env=runner_environment(home), checkout=checkout_of(commit),
                          logs=folder / "logs", watcher=Printer(), **options)
    except JobFailed as failure:
        print_times({label: failure.results})
        raise Failed(f"the {label} failed at step {failure.step!r}; its output is in {folder / 'logs'}") from None
    return results, time.monotonic() - start


def shown(result: StepResult | None) -> str:
    if result is None:
        return "not run"
    return "skipped" if result.outcome.startswith("skipped") else f"{result.seconds:.1f}s"


def print_times(runs: dict[str, list[StepResult]], totals: dict[str, float] | None = None) -> None:
    names: list[str] = []
    for results in runs.values():
        names += [r.name for r in results if r.name not in names]
    total_label = "total (wall time of the job)"
    width = max(len(n) for n in [*names, "step", total_label])
    print(f"\n{'step':<{width}}  " + "  ".join(f"{label:>12}" for label in runs))
    for name in names:
        cells = [shown(next((r for r in results if r.name == name), None)) for results in runs.values()]
        print(f"{name:<{width}}  " + "  ".join(f"{cell:>12}" for cell in cells))
    if totals:
        print(f"{total_label:<{width}}  " + "  ".join(f"{totals[label]:>11.1f}s" for label in runs))


def print_store(store: CacheStore, runs: dict[str, list[StepResult]]) -> None:
    sizes = store.sizes()
    print("\nthe store: each cache as actions/cache would upload it (tar, zstd -T0 --long=30)")
    width = max([len(k) for k in sizes] + [5])
    for key, size in sizes.items():
        print(f"  {key:<{width}}  {size / MiB:10.1f} MiB  ({size} bytes)")
    total = sum(sizes.values())
    print(f"  {'total':<{width}}  {total / MiB:10.1f} MiB  ({total} bytes)")
    for label, results in runs.items():
        for result in results:
            if result.outcome.startswith(("saved", "not saved")):
                print(f"  {label}, {result.name}: {result.outcome}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Time a cold and a warm CI run of the workflow's build job, step by step, and size its caches.")
    parser.add_argument("--steps-until", metavar="NAME",
                        help="stop each run after the step of this name (e.g. \"Build\"; the checkout is \"actions/checkout@v4\")")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (checkouts, HOMEs, store, logs)")
    arguments = parser.parse_args()
    try:
        return measure(arguments.steps_until, arguments.keep)
    except Failed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1


def measure(steps_until: str | None, keep: bool) -> int:
    if os.geteuid() != 0 or 'VERSION_ID="12"' not in Path("/etc/os-release").read_text():
        raise Failed("the build job runs in a debian:12 container as root: run this as root on Debian 12")
    commit = git("rev-parse", "HEAD")
    job = yaml.safe_load(git("show", f"{commit}:{WORKFLOW}"))["jobs"][JOB]
    names = [step_name(s) for s in job["steps"]]
    if steps_until is not None and steps_until not in names:
        raise Failed(f"--steps-until {steps_until!r}: the {JOB} job has no such step; its steps: {'; '.join(names)}")
    if steps_until is not None and not any(uses(s) == "actions/cache/save" for s in job["steps"][: names.index(steps_until) + 1]):
        print(f"note: the runs stop at {steps_until!r}, before any cache is saved: the second run starts cold too")
    matrix = job["strategy"]["matrix"]["include"][0]
    context = {**{f"matrix.{k}": str(v) for k, v in matrix.items()}, "strategy.job-index": "0"}
    skip, apt_note = apt_step_skip(job)
    scratch = Path(tempfile.mkdtemp(prefix="dock32-ci-warm-"))
    store = CacheStore(scratch / "store")
    print(f"the {JOB} job of {WORKFLOW} at {commit[:12]}, matrix entry {matrix}, in {scratch}")
    if git("status", "--porcelain", "--untracked-files=no"):
        print("note: this checkout has uncommitted changes; the runs check out its HEAD without them")
    print(f"note: {apt_note}")
    print(f"note: the runs do not get {', '.join(NOT_PASSED_ON)}; HOME is each run's own, empty")
    options: dict[str, Any] = {"until": steps_until, "skip": skip}
    finished = False
    try:
        cold, cold_seconds = run("cold run", scratch / "cold", job, context, store, commit, options)
        if not keep:
            # The warm run needs the space; only the logs and the store are kept.
            for name in ("home", "work", "artifacts"):
                remove(scratch / "cold" / name)
        warm, warm_seconds = run("warm run", scratch / "warm", job, context, store, commit, options)
        runs = {"cold run": cold, "warm run": warm}
        print_times(runs, {"cold run": cold_seconds, "warm run": warm_seconds})
        print_store(store, runs)
        finished = True
    finally:
        if keep or not finished:
            print(f"\nthe scratch folder is kept: {scratch}" + ("" if keep else " (remove it when done)"))
        else:
            remove(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
