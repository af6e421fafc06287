"""Which doit command a command line asks for: only task-running ones take the workspace lock."""

from __future__ import annotations

import pytest

from dock32.pipeline.workspace import READ_ONLY_COMMANDS, doit_command, only_read_only_tasks


@pytest.mark.parametrize(
    ("argv", "command"),
    [([], "run"), (["build"], "run"), (["run", "build"], "run"), (["compile:dockerd"], "run"), (["list"], "list"), (["list", "--all"], "list"),
     (["info", "-v", "2", "build"], "info"), (["clean"], "clean"), (["forget"], "forget"), (["dumpdb"], "dumpdb")],
)
def test_doit_command(argv: list[str], command: str) -> None:
    assert doit_command(argv) == command


def test_reading_commands_do_not_lock_and_the_others_do() -> None:
    assert {"list", "help", "info", "dumpdb"} <= READ_ONLY_COMMANDS
    assert not {"run", "clean", "forget", "ignore", "reset-dep"} & READ_ONLY_COMMANDS


@pytest.mark.parametrize(
    ("argv", "read_only"),
    [
        (["doctor"], True), (["run", "doctor"], True), (["doctor", "--set", "go386=softfloat"], True),
        (["doctor", "build"], False), ([], False), (["build"], False),
    ],
)
def test_doctor_alone_needs_no_lock(argv: list[str], read_only: bool) -> None:
    assert only_read_only_tasks(argv) is read_only
