"""Errors by stage: whatever fails in a task exits with its stage's code, whichever command or check it was."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from doit.exceptions import TaskError, TaskFailed
from doit.task import Task

from dock32.core import diskspace
from dock32.core.errors import (
    BuildError,
    CommandFailed,
    Dock32Error,
    FetchError,
    Interrupted,
    NotEnoughDiskSpace,
    PackageError,
    PatchError,
    ToolchainError,
    VerifyError,
    in_stage,
    stage,
)
from dock32.model.config import load_config, load_packages, load_toolchains
from dock32.model.project import Project
from dock32.model.settings import settings_from_env
from dock32.model.upstreamcfg import load_optional
from dock32.pipeline.plan import plan_build
from dock32.pipeline.tasks import Dock32Reporter, doit_tasks, guarded

ROOT = Path(__file__).resolve().parents[2]

# README's exit codes, by the task that fails.
STAGES: dict[str, tuple[type[Dock32Error], int]] = {
    "toolchain": (ToolchainError, 4),
    "doctor": (ToolchainError, 4),
    "fetch": (FetchError, 3),
    "source": (PatchError, 5),
    "compile": (BuildError, 6),
    "manifest": (BuildError, 6),
    "test-upstream": (BuildError, 6),
    "build": (BuildError, 6),
    "package": (PackageError, 7),
    "sbom": (PackageError, 7),
    "repository": (PackageError, 7),
    "verify": (VerifyError, 8),
    "verify-sysvinit": (VerifyError, 8),
    "verify-i386-kernel": (VerifyError, 8),
    "verify-upgrade": (VerifyError, 8),
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The real project with every kind of task: packages and the upstream test suites too."""
    config = load_config(ROOT / "buildcfg.yaml")
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "c"), "DOCK32_BUILD_DIR": str(tmp_path / "b"), "DOCK32_DIST_DIR": str(tmp_path / "d")}
    return Project.of(
        config,
        load_toolchains(ROOT / "toolchains"),
        settings_from_env(ROOT, env=env),
        load_packages(ROOT / "packaging" / "packages.yaml", config),
        load_optional(ROOT / "upstream-tests.yaml", config),
    )


def test_every_planned_task_carries_its_stages_kind(project: Project) -> None:
    planned = plan_build(project)
    assert {t.basename for t in planned} == set(STAGES) - {"doctor"}
    for task in planned:
        kind, code = STAGES[task.basename]
        assert (task.kind, task.kind.exit_code) == (kind, code), task.task_id


def test_doit_tasks_hand_the_kind_to_the_reporter(project: Project) -> None:
    for entry in doit_tasks(project):
        if entry.get("actions"):
            assert entry["meta"]["kind"] is STAGES[entry["basename"]][0], entry["basename"]


def test_a_failed_command_takes_the_kind_of_the_stage_it_ran_in() -> None:
    failed = CommandFailed("pack hello: command failed with exit code 2: dpkg-deb --build root hello.deb", hint="full log: package-hello.log")
    staged = in_stage(failed, PackageError)
    assert (type(staged), staged.exit_code, str(staged)) == (PackageError, 7, str(failed))
    assert staged.__cause__ is failed
    assert in_stage(CommandFailed("compress hello: command failed with exit code 1: xz data.tar"), PackageError).exit_code == 7
    assert in_stage(failed, BuildError).exit_code == 6


def test_an_error_with_a_kind_of_its_own_keeps_it() -> None:
    mismatch = FetchError("go1.26.8.linux-386.zip: hash mismatch")
    assert in_stage(mismatch, ToolchainError) is mismatch
    stopped = Interrupted("`dpkg-deb` was stopped")
    assert in_stage(stopped, PackageError) is stopped


def test_a_full_disk_and_a_bug_fail_as_the_stage_too(tmp_path: Path) -> None:
    with pytest.raises(NotEnoughDiskSpace) as caught:
        diskspace.require(tmp_path, 1 << 62, "packing hello")
    assert in_stage(caught.value, PackageError).exit_code == 7
    bug = in_stage(KeyError("docker-ce"), PackageError)
    assert (type(bug), str(bug)) == (PackageError, "KeyError: 'docker-ce' (hint: unexpected; run again with --debug for the traceback)")


def test_commands_outside_the_tasks_get_their_kind_at_the_entry_point() -> None:
    with pytest.raises(ToolchainError) as caught, stage(ToolchainError):
        raise CommandFailed("command failed with exit code 100: apt-get install -y gcc-i686-linux-gnu")
    assert caught.value.exit_code == 4
    with pytest.raises(ConnectionError), stage(ToolchainError):  # a bug is not a stage's failure here: it shows
        raise ConnectionError("no route")


def _fails(error: Exception) -> None:
    raise error


def test_a_task_action_turns_any_failure_into_one_line_of_its_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCK32_DEBUG", raising=False)
    failure = guarded(lambda: _fails(CommandFailed("unpack hello: command failed with exit code 1: ar x plain.deb")), PackageError)()
    assert isinstance(failure, TaskFailed)
    assert failure.message == "unpack hello: command failed with exit code 1: ar x plain.deb"
    assert (type(failure.dock32_error), failure.dock32_error.exit_code) == (PackageError, 7)
    unexpected = guarded(lambda: _fails(OSError(28, "No space left on device")), PackageError)()
    assert unexpected.dock32_error.exit_code == 7 and "\n" not in unexpected.message and "Traceback" not in unexpected.message
    assert guarded(lambda: None, PackageError)() is None


def _task(name: str, kind: type[Dock32Error]) -> Task:
    return Task(name, [lambda: None], meta={"kind": kind})


def _failure(error: Dock32Error) -> TaskFailed:
    failure = TaskFailed(str(error))
    failure.dock32_error = error
    return failure


def test_the_reporter_keeps_the_first_error_or_an_interruption_on_itself() -> None:
    reporter = Dock32Reporter(io.StringIO(), {})
    reporter.execute_task(_task("compile:hello", BuildError))
    reporter.add_success(_task("compile:hello", BuildError))
    reporter.add_failure(_task("package:hello", PackageError), _failure(PackageError("pack hello: command failed")))
    reporter.add_failure(_task("sbom:hello", PackageError), _failure(BuildError("later")))
    assert (reporter.error and reporter.error.exit_code, reporter.error_line) == (7, "pack hello: command failed")
    assert {name: result["status"] for name, result in reporter.results.items()} == {"compile:hello": "ran", "package:hello": "failed", "sbom:hello": "failed"}
    reporter.add_failure(_task("package:other", PackageError), _failure(Interrupted("`xz` was stopped")))
    assert reporter.error and reporter.error.exit_code == 130
    # Another run's reporter starts empty: nothing is kept between runs (in one process, a test's).
    fresh = Dock32Reporter(io.StringIO(), {})
    assert (fresh.error, fresh.results) == (None, {})


def test_a_failure_doit_finds_itself_takes_the_tasks_kind() -> None:
    reporter = Dock32Reporter(io.StringIO(), {})
    reporter.add_failure(_task("package:hello", PackageError), TaskError("Dependent file 'bin/hello' does not exist."))
    assert (reporter.error and reporter.error.exit_code, reporter.error_line) == (7, "Dependent file 'bin/hello' does not exist.")
