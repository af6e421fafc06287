"""Hand the plan to doit: task dicts for dodo.py and for the `dock32` command, and a reporter with one-line errors."""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter
from doit.task import clean_targets
from doit.tools import config_changed

from dock32.core import memory as memory_fit
from dock32.core import modes
from dock32.core.errors import Dock32Error, Interrupted, ToolchainError, in_stage
from dock32.core.memory import MemoryChoice
from dock32.model.project import Project
from dock32.model.settings import Settings
from dock32.pipeline import cachedir, progress, workspace
from dock32.pipeline.plan import PlannedTask, memory_kinds, plan_build, remove_folders
from dock32.toolchains import doctor


def debug_enabled() -> bool:
    return os.environ.get("DOCK32_DEBUG", "") not in ("", "0")


def guarded(action: Callable[[], None], kind: type[Dock32Error]) -> Callable[[], Any]:
    """Turn whatever fails in a task into doit's TaskFailed, carrying it as a dock32 error of the task's kind
    (errors.in_stage): one line for the user, the traceback only with DOCK32_DEBUG=1."""

    @functools.wraps(action)
    def run_action() -> Any:
        try:
            action()
        except Exception as exc:  # anything: a task's failure exits with its stage's code, a bug's too
            error = in_stage(exc, kind)
            message = f"{error}\n{traceback.format_exc()}" if debug_enabled() else str(error)
            failure = TaskFailed(message)
            failure.dock32_error = error  # the reporter takes the exit code from it, and tells an interruption from a failure
            return failure
        return None

    return run_action


def to_doit(task: PlannedTask) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "basename": task.basename,
        "doc": task.doc,
        "actions": [guarded(task.action, task.kind)] if task.action else None,
        "file_dep": [str(p) for p in task.file_dep],
        "targets": [str(p) for p in task.targets],
        "task_dep": list(task.task_dep),
        # For the failures doit finds itself (a file_dep gone missing): the reporter gives them the task's kind too.
        "meta": {"kind": task.kind},
    }
    if task.name:
        entry["name"] = task.name
    if task.always_run:
        entry["uptodate"] = [False]
    elif task.config:
        entry["uptodate"] = [config_changed(task.config)]
    if task.targets or task.clean:
        entry["clean"] = [clean_targets, (remove_folders, [task.clean])] if task.clean else True
    if task.basename in ("build", "verify", "verify-sysvinit", "verify-i386-kernel", "verify-upgrade", "test-upstream"):
        entry["verbosity"] = 2
    return entry


def doctor_task(config_path: Path, settings: Settings) -> dict[str, Any]:
    return {
        "basename": "doctor",
        "doc": "Check this machine for everything the build needs and print the command that installs what is missing",
        "actions": [guarded(functools.partial(doctor.report, config_path, settings), ToolchainError)],
        "meta": {"kind": ToolchainError},
        "uptodate": [False],
        "verbosity": 2,
    }


GROUP_DOCS = {
    "fetch": "Download every component's sources and check them against their pins",
    "source": "Prepare every component's patched source tree",
    "compile": "Compile every binary",
    "package": "Pack every .deb",
    "sbom": "Write every package's SPDX 2.3 SBOM beside its .deb",
    "test-upstream": "Run the components' own Go tests for the target's GOARCH (upstream-tests.yaml)",
}


def doit_tasks(project: Project, memory: MemoryChoice | None = None) -> Iterator[dict[str, Any]]:
    """memory: the run's choice (the reporter's, reporter_for), whose Go settings the compiles get."""
    config, settings = project.config, project.settings
    planned = plan_build(project, memory, earlier=progress.load_history(times_file(settings, config.target)))
    for basename in sorted({t.basename for t in planned if t.name}):
        yield {"basename": basename, "name": None, "doc": GROUP_DOCS.get(basename, "")}
    for task in planned:
        yield to_doit(task)
    yield doctor_task(config.path, settings)


def _failure_message(exception: Any, with_traceback: bool) -> str:
    """What a failed task prints after its name: our one line (and hint), or the last line of doit's own report."""
    message: str = exception.message if isinstance(exception, TaskFailed) else exception.get_msg()
    if not isinstance(exception, TaskFailed) and not with_traceback:
        message = message.strip().splitlines()[-1] if message.strip() else repr(exception)
    return message.strip()


def tasks_to_run(tasks: dict[str, Any], selected: list[str] | None) -> list[str]:
    """The tasks with actions that a run of `selected` may run, in doit's order of dependencies first: the
    selected tasks and all they depend on (task_dep, which doit has already extended from file_dep, and setup)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in tasks:
            return
        seen.add(name)
        task = tasks[name]
        for dep in [*task.task_dep, *task.setup_tasks]:
            visit(dep)
        if task.actions:
            order.append(name)

    for name in selected or []:
        visit(name)
    return order


class Dock32Reporter(ConsoleReporter):  # type: ignore[misc]
    """doit's reporter for dock32: the run's progress (progress.py: a live line on a terminal, timestamped lines
    elsewhere, a summary at the end), and a failed task prints `error: <task>: <message>` with no traceback.

    One per run, holding what the run did: each task's status and seconds, and the error that decides the exit code
    (the first one, or an interruption), for the `dock32` command's exit code and its --json report. doit calls it
    from its worker threads (a task starts) and its main thread (a task ends).
    """

    failures: list[dict[str, Any]]

    def __init__(
        self, outstream: Any, options: dict[str, Any], place: progress.RunPlace | None = None, quiet: bool = False, memory: MemoryChoice | None = None
    ) -> None:
        super().__init__(outstream, options)
        self.memory = memory  # how many tasks at once and the compiles' Go settings, for doit_config and doit_tasks
        self.error: Dock32Error | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self.progress = progress.for_stream(outstream, place, quiet)

    @property
    def error_line(self) -> str | None:
        return str(self.error).splitlines()[0] if self.error is not None else None

    def _finish(self, name: str, status: str) -> None:
        with self._lock:
            start = self._started.pop(name, None)
            self.results[name] = {"status": status, "seconds": round(time.monotonic() - start, 2) if start is not None else 0.0}

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str] | None) -> None:
        self.progress.begin(tasks_to_run(tasks, selected_tasks))

    def execute_task(self, task: Any) -> None:
        with self._lock:
            self._started[task.name] = time.monotonic()
        if task.actions:  # a group task (build) does nothing of its own
            self.progress.started(task.name)

    def add_success(self, task: Any) -> None:
        if task.actions:
            self._finish(task.name, "ran")
            self.progress.finished(task.name, "ran")

    def skip_uptodate(self, task: Any) -> None:
        self._finish(task.name, "up-to-date")
        if task.actions:
            self.progress.finished(task.name, "up-to-date")

    def skip_ignore(self, task: Any) -> None:
        if task.actions:
            self.progress.finished(task.name, "ignored")

    def add_failure(self, task: Any, fail: Any) -> None:
        self._finish(task.name, "failed")
        self.progress.finished(task.name, "failed")
        error = getattr(fail, "dock32_error", None)
        kind = (task.meta or {}).get("kind")
        if error is None and kind is not None:
            error = kind(_failure_message(fail, with_traceback=False))
        if error is not None and (self.error is None or isinstance(error, Interrupted)):
            self.error = error
        self.failures.append({"task": task, "exception": fail})

    def complete_run(self) -> None:
        # The live line goes and the summary is written first: the errors are the last thing on the screen.
        self.progress.end(failed=bool(self.failures or self.runtime_errors))
        if any(isinstance(getattr(r["exception"], "dock32_error", None), Interrupted) for r in self.failures):
            stopped = ", ".join(r["task"].name for r in self.failures)
            sys.stderr.write(f"error: interrupted: stopped {stopped}; nothing half-written was kept, run the same command again to go on\n")
            self.failures = []
        for result in self.failures:
            sys.stderr.write(f"error: {result['task'].name}: {_failure_message(result['exception'], debug_enabled())}\n")
        self.failures = []
        super().complete_run()


def workers() -> int:
    """How many tasks run at once where memory was not looked at (a doit run without dock32's reporter)."""
    return min(memory_fit.MAX_JOBS, os.cpu_count() or 1)


def memory_choice(project: Project) -> MemoryChoice:
    """How many of project's tasks run at once and the compiles' Go settings, for this machine's memory now
    (core.memory), or the user's DOCK32_JOBS / --jobs, within the user's DOCK32_MEMORY / --memory."""
    machine = memory_fit.read_machine()
    kinds = memory_kinds(project)
    settings = project.settings
    return memory_fit.choose(
        machine.available, machine.cgroup_limit, machine.swap_free, machine.cpus, kinds, bits=machine.bits, jobs=settings.jobs, memory=settings.memory
    )


def times_file(settings: Settings, target: str) -> Path:
    """Each task's seconds in the last run that ran it, and when, beside doit's database: the next run's ETA, and
    what `dock32 cache prune` keeps of the Go build cache."""
    return cachedir.times_file_of(settings.build_dir, target)


def reporter_for(project: Project, stream: Any, quiet: bool = False) -> Dock32Reporter:
    """The reporter of one run of project's tasks, showing its progress on stream."""
    settings, layout = project.settings, project.layout
    choice = memory_choice(project)
    place = progress.RunPlace(
        history=times_file(settings, project.config.target),
        gomodcache=settings.gomodcache,
        artifacts=((layout.target_dir / "bin", "*"), (layout.dist_dir, "*.deb")),
        logs=layout.logs_dir,
        workers=choice.jobs,
        notes=(choice.line(),),
        warnings=(choice.shortfall,) if choice.shortfall else (),
    )
    return Dock32Reporter(stream, {}, place, quiet=quiet, memory=choice)


def doit_config(settings: Settings, target: str, reporter: Dock32Reporter | None = None) -> dict[str, Any]:
    """reporter: the run's own (reporter_for); without one, doit makes a Dock32Reporter that knows no project."""
    modes.make_dirs(settings.build_dir)
    return {
        "default_tasks": ["build"],
        # sqlite3: doit writes its json backend in place at the end of a run, so a run killed while writing
        # leaves a file the next run cannot read; sqlite commits or rolls back. One file per target: the task
        # names are the same in every target, and one target's run must not make another's tasks look changed.
        "dep_file": str(settings.build_dir / f".doit-{target}.sqlite3"),
        "backend": "sqlite3",
        "reporter": reporter if reporter is not None else Dock32Reporter,
        "verbosity": 1,
        # Threads, since the work is in subprocesses; as many as the memory allows (core.memory).
        "num_process": reporter.memory.jobs if reporter is not None and reporter.memory is not None else workers(),
        "par_type": "thread",
        # `doit clean` clears every build output; the download cache lives elsewhere and stays.
        "cleanall": True,
    }


def claim_workspace(project: Project, doit_argv: list[str]) -> None:
    """Before doit reads its database: one task-running build per workspace, stopped cleanly by Ctrl-C or SIGTERM;
    the shared cache knows the workspace uses it, and a prune waits for the build to end."""
    settings = project.settings
    if workspace.doit_command(doit_argv) not in workspace.READ_ONLY_COMMANDS and not workspace.only_read_only_tasks(doit_argv):
        workspace.hold_lock(settings.build_dir, settings.dist_dir)
        cachedir.hold_in_use(settings)
        cachedir.record_use(project)
        workspace.stop_on_signals()


def fail(exc: Dock32Error) -> None:
    """Print a load-time error as one line (traceback only with DOCK32_DEBUG=1) and exit with its code."""
    if debug_enabled():
        traceback.print_exc()
    sys.stderr.write(f"error: {exc}\n")
    raise SystemExit(exc.exit_code)
