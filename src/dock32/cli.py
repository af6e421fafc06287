"""The `dock32` command: the same doit tasks as dodo.py, runnable from any directory."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from doit.cmd_base import TaskLoader2
from doit.doit_cmd import DoitMain

from dock32.bump.command import command as bump_command
from dock32.core.errors import ConfigError, Dock32Error, FetchError, PackageError, ToolchainError, stage
from dock32.model.project import Project, load_project
from dock32.model.settings import parse_memory
from dock32.packaging import publish
from dock32.pipeline import cachedir, report
from dock32.pipeline.tasks import Dock32Reporter, claim_workspace, doit_config, doit_tasks, fail, reporter_for
from dock32.toolchains.hostsetup import setup_host

COMMANDS = {
    "setup": [],
    "build": ["run", "build"],
    "doctor": ["run", "doctor"],
    "verify": ["run", "verify"],
    "verify-sysvinit": ["run", "verify-sysvinit"],
    "verify-i386-kernel": ["run", "verify-i386-kernel"],
    "verify-upgrade": ["run", "verify-upgrade"],
    "test-upstream": ["run", "test-upstream"],
    "list": ["list"],
    "clean": ["clean"],
    "publish": [],
    "bump": [],
    "cache": [],
}


def find_project(start: Path) -> Path:
    for folder in [start, *start.parents]:
        if (folder / "buildcfg.yaml").is_file():
            return folder
    raise ConfigError(f"no buildcfg.yaml in {start} or any folder above it", hint="run dock32 inside a dock32 checkout, or pass --project DIR")


class _Loader(TaskLoader2):  # type: ignore[misc]
    """Feeds doit the tasks of one already-loaded project (doit's documented custom-loader API)."""

    def __init__(self, project: Project, reporter: Dock32Reporter) -> None:
        super().__init__()
        self._project = project
        self._reporter = reporter

    def setup(self, opt_values: dict[str, Any]) -> None:
        pass

    def load_doit_config(self) -> dict[str, Any]:
        # doit takes a reporter instance as well as a class (cmd_run's _execute); ours, made by main(), is where it
        # reads the run's exit code and task times afterwards.
        return doit_config(self._project.settings, self._project.config.target, self._reporter)

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        from doit.loader import generate_tasks

        # The same generator dodo.py's task_dock32 yields, handled the same way.
        return list(generate_tasks("dock32", doit_tasks(self._project, self._reporter.memory)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # publish and bump have options of their own: their --help is theirs, not dock32's.
    if argv[:1] == ["publish"] and {"-h", "--help"} & set(argv):
        return publish_command(argv[1:])
    if argv[:1] == ["cache"] and {"-h", "--help"} & set(argv):
        return cache_command(None, argv[1:])
    if argv[:1] == ["bump"] and {"-h", "--help"} & set(argv):
        return bump_command(Path.cwd(), argv[1:])
    parser = argparse.ArgumentParser(prog="dock32", description="Build current Docker for 32-bit x86 from pinned upstream sources.")
    parser.add_argument(
        "command",
        choices=sorted(COMMANDS),
        help=(
            "setup: install missing build packages (root); build: all binaries and .debs; verify: install and run them; "
            "verify-i386-kernel: the same on Debian's i686 kernel booted in QEMU; "
            "verify-upgrade --from DIR: install an earlier release's .debs from DIR, upgrade to these, check containers, volumes and images are kept; "
            "test-upstream: the components' own Go tests for the target's GOARCH; "
            "doctor: check this machine; list: show tasks; clean: remove build outputs; "
            "publish: merge targets' dist folders into one apt repository (`dock32 publish --help`); "
            "bump VERSION [--dry-run] [--force] [--engine-version TAG], or bump --check: move the pins to another Docker release, found through GOPROXY, "
            "or list the newer releases the proxy can give; "
            "cache: what the shared cache holds per kind, `cache prune [--dry-run]`: remove what the pins of every workspace no longer need"
        ),
    )
    parser.add_argument("--project", type=Path, help="the dock32 checkout (default: the folder holding buildcfg.yaml, searched upwards)")
    parser.add_argument(
        "--from", type=Path, dest="upgrade_from", metavar="DIR",
        help="verify-upgrade: the dist/<target> folder of an earlier release's build (also DOCK32_UPGRADE_FROM)",
    )
    parser.add_argument("--offline", action="store_true", help="use only the download cache; name what is missing")
    parser.add_argument(
        "--jobs", "-j", type=_jobs, metavar="N",
        help="run N tasks at once, whatever the memory allows (default: chosen from MemAvailable and the cgroup limit; also DOCK32_JOBS)",
    )
    parser.add_argument(
        "--memory", type=_memory, metavar="SIZE",
        help="plan the build for at most SIZE of memory, e.g. 1GiB: fewer tasks at once and leaner Go settings (also DOCK32_MEMORY)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--tests", action="store_true", help="setup: also install what only the tests use (toolchains/host.yaml test_apt)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="set a buildcfg.yaml key for this run, e.g. --set go386=softfloat --set packaging.distro=debian-13 (also DOCK32_SET)",
    )
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON document on stdout at the end (tasks, timings, binaries, packages, verify results, error); doit's own output goes to stderr",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true",
        help="print errors only: no progress line, no per-task lines, no summary",
    )
    parser.epilog = "Other arguments go to doit: `dock32 build compile:dockerd`, `dock32 list --all`."
    args, doit_args = parser.parse_known_args(argv)
    # dock32 reads the run's exit code and task times from its own reporter; another would leave them unknown.
    taken = [a.split("=", 1)[0] for a in doit_args if a.split("=", 1)[0] in ("--reporter", "--output-file")]
    if taken:
        hint = "use --json for a machine-readable report, or plain `doit` for doit's reporters"
        fail(ConfigError(f"{taken[0]}: dock32 reports a run itself", hint=hint))
    if args.debug:
        os.environ["DOCK32_DEBUG"] = "1"
    if args.jobs is not None:
        os.environ["DOCK32_JOBS"] = str(args.jobs)
    if args.memory is not None:
        os.environ["DOCK32_MEMORY"] = args.memory
    if args.upgrade_from is not None:
        os.environ["DOCK32_UPGRADE_FROM"] = str(args.upgrade_from.resolve())
    if args.command == "publish":
        return publish_command(doit_args)
    try:
        project = args.project.resolve() if args.project else find_project(Path.cwd())
        loaded = load_project(project, offline=True if args.offline else None, overrides=tuple(args.overrides))
    except Dock32Error as exc:
        if args.json:
            print(json.dumps(report.failure_report(args.command, exc), indent=2, sort_keys=True))
        fail(exc)
    # The commands outside the doit tasks give their failed commands a kind here, as a task gives its stage's: bump's
    # commands resolve a release through the module proxy, setup's install the build machine's tools.
    if args.command == "bump":
        try:
            # bump fetches modules into the shared cache and reads them there: a prune must wait for it, as for a build.
            cachedir.hold_in_use(loaded.settings)
            with stage(FetchError):
                return bump_command(project, doit_args, loaded.settings)
        except Dock32Error as exc:
            fail(exc)
    if args.command == "cache":
        try:
            return cache_command(loaded, doit_args)
        except Dock32Error as exc:
            fail(exc)
    if args.command == "setup":
        try:
            with stage(ToolchainError):
                setup_host(project, tests=args.tests)
        except Dock32Error as exc:
            fail(exc)
        return 0
    doit_argv = COMMANDS[args.command] + doit_args
    if args.command == "build" and doit_args:
        doit_argv = ["run", *doit_args]
    try:
        claim_workspace(loaded, doit_argv)
    except Dock32Error as exc:
        if args.json:
            print(json.dumps(report.failure_report(args.command, exc), indent=2, sort_keys=True))
        fail(exc)
    # With --json, stdout is for the JSON document alone: the reporter writes to stderr, our tasks' prints follow.
    reporter = reporter_for(loaded, sys.stderr if args.json else sys.stdout, quiet=args.quiet)
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        code: int = DoitMain(_Loader(loaded, reporter)).run(doit_argv)
    if code != 0 and reporter.error is not None:
        code = reporter.error.exit_code
    if args.json:
        print(json.dumps(report.run_report(loaded, args.command, code, reporter.error_line, reporter.results), indent=2, sort_keys=True))
    return code


def _jobs(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of tasks, 1 or more")
    return int(value)


def _memory(value: str) -> str:
    try:
        parse_memory(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a size of 64MiB or more, such as 1GiB or 800MiB") from exc
    return value


def cache_command(project: Project | None, argv: list[str]) -> int:
    """project: None only for --help, which exits before it is needed."""
    parser = argparse.ArgumentParser(
        prog="dock32 cache", description="Show what the shared cache holds per kind, or prune it to what the pins of every workspace need."
    )
    parser.add_argument("action", nargs="?", choices=["prune"], help="prune: remove what no workspace's pins need (Go modules, trees, old build cache entries)")
    parser.add_argument("--dry-run", action="store_true", help="prune: say what would go, remove nothing")
    args = parser.parse_args(argv)
    assert project is not None
    if args.action is None:
        if args.dry_run:
            raise ConfigError("--dry-run: only `dock32 cache prune` removes anything", hint="dock32 cache prune --dry-run")
        lines = cachedir.listing(project.settings, cachedir.entries(project.settings))
    else:
        lines = cachedir.prune(project.settings, project, dry_run=args.dry_run)
    print("\n".join(lines))
    return 0


def publish_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dock32 publish", description="Merge the dist/<target> folders of several builds (CI artifacts) into one apt repository."
    )
    parser.add_argument("targets", nargs="+", type=Path, help="dist/<target> folders, each with its manifest.json and .debs")
    parser.add_argument("--to", type=Path, required=True, help="the repository folder to create (pool/ and dists/<codename>/)")
    parser.add_argument("--gpg-key", help="sign each Release with this key (fingerprint or user id), into InRelease and Release.gpg")
    args = parser.parse_args(argv)
    try:
        with stage(PackageError):  # it makes an apt repository, as the package stage does
            releases = publish.merge(args.targets, args.to, gpg_key=args.gpg_key)
    except Dock32Error as exc:
        fail(exc)
    for release in releases:
        print(f"wrote {release}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
