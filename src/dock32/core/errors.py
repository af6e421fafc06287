"""Error kinds of dock32: one class per kind, each with its own exit code and a hint.

The kinds are the stages of the build (README's table of exit codes). What every stage uses (an external command,
free disk space) fails with a StageFailure, which has no kind of its own: the stage it happened in gives it one
(`in_stage`), so that all of a stage's failures exit with the same code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Dock32Error(Exception):
    """A failure the user can act on: printed as one `error:` line, never a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(Dock32Error):
    exit_code = 2


class FetchError(Dock32Error):
    """A download failed, or what came down does not match its pin."""

    exit_code = 3


class ToolchainError(Dock32Error):
    exit_code = 4


class PatchError(Dock32Error):
    exit_code = 5


class BuildError(Dock32Error):
    exit_code = 6


class PackageError(Dock32Error):
    exit_code = 7


class VerifyError(Dock32Error):
    exit_code = 8


class BusyError(Dock32Error):
    """Another dock32 process holds what this one needs (a workspace, a dist folder, the cache for a prune): nothing
    failed, and the same command succeeds once it is done. 75 is sysexits.h's EX_TEMPFAIL, "try again later"."""

    exit_code = 75


class Interrupted(Dock32Error):
    """Ctrl-C or SIGTERM: the running commands were stopped and nothing half-written was kept."""

    exit_code = 130


class StageFailure(Dock32Error):
    """A failure of something every stage uses. Each entry point turns it into its stage's kind (the doit tasks in
    pipeline/tasks.py, the commands outside them in cli.py); 1 is only what one that slipped through would exit with."""


class CommandFailed(StageFailure):
    """An external command exited non-zero, or is not installed (run.run)."""


class NotEnoughDiskSpace(StageFailure):
    """The file system a stage writes to has too little room for it (diskspace.require)."""


def in_stage(error: BaseException, kind: type[Dock32Error]) -> Dock32Error:
    """error as the failure of a stage of that kind. An error with a kind of its own keeps it (a download whose hash
    does not match is a fetch error in any stage; Ctrl-C is an interruption); a StageFailure, or anything
    unexpected, becomes `kind`."""
    if isinstance(error, Dock32Error) and not isinstance(error, StageFailure):
        return error
    if isinstance(error, StageFailure):
        staged = kind(error.message, hint=error.hint)
    else:
        staged = kind(f"{type(error).__name__}: {error}", hint="unexpected; run again with --debug for the traceback")
    staged.__cause__ = error
    return staged


@contextlib.contextmanager
def stage(kind: type[Dock32Error]) -> Iterator[None]:
    """For the commands that run outside the doit tasks (setup, bump, publish): what fails in them without a kind
    of its own fails as `kind`."""
    try:
        yield
    except StageFailure as exc:
        raise in_stage(exc, kind) from exc
