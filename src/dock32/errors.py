"""Error kinds of dock32: one class per kind, each with its own exit code and a hint."""

from __future__ import annotations


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


class Interrupted(Dock32Error):
    """Ctrl-C or SIGTERM: the running commands were stopped and nothing half-written was kept."""

    exit_code = 130
