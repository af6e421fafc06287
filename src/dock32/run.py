"""The one place dock32 runs external commands: argv lists, explicit environment, a log file per task."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dock32.errors import BuildError, Dock32Error

LOG_TAIL_LINES = 25


def command_line(argv: Sequence[str | Path], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """The command as a line that can be pasted into a shell."""
    parts = []
    if cwd is not None:
        parts.append(f"cd {shlex.quote(str(cwd))} &&")
    if env:
        parts.extend(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    parts.extend(shlex.quote(str(a)) for a in argv)
    return " ".join(parts)


def run(
    argv: Sequence[str | Path],
    *,
    log: Path | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    error: type[Dock32Error] = BuildError,
    what: str = "",
) -> None:
    """Run argv, appending its output to log; on failure raise `error` with the command and the log's tail.

    With log=None the output goes to the terminal (for interactive steps like apt-get).

    env holds only the variables dock32 sets; they are laid over the caller's
    environment so that GOPROXY, proxies and the like still reach the tools.
    """
    line = command_line(argv, env, cwd)
    if log is None:
        try:
            code = subprocess.run([str(a) for a in argv], cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, check=False).returncode
        except FileNotFoundError:
            raise error(f"{what or argv[0]}: command not found: {argv[0]}") from None
        if code != 0:
            raise error(f"{what + ': ' if what else ''}command failed with exit code {code}: {line}")
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {line}\n")
        out.flush()
        try:
            result = subprocess.run(
                [str(a) for a in argv],
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except FileNotFoundError:
            raise error(f"{what or argv[0]}: command not found: {argv[0]}", hint="run `dock32 doctor` to see what to install") from None
    if result.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-LOG_TAIL_LINES:])
        raise error(
            f"{what + ': ' if what else ''}command failed with exit code {result.returncode}: {line}\n"
            f"--- last lines of {log} ---\n{tail.rstrip()}",
            hint=f"full log: {log}",
        )


def stream(argv: Sequence[str | Path], *, log: Path, on_line: Callable[[str], None], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Run a long command whose output is read as it comes (go test -json): each line goes to log and to on_line.
    Returns the exit code; Ctrl-C stops the command before it propagates."""
    with log.open("w", encoding="utf-8") as out, subprocess.Popen(
        [str(a) for a in argv], cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                out.write(line)
                on_line(line)
        except BaseException:
            process.kill()
            raise
        return process.wait()


def capture(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short query command (go env, go version -m, pkg-config) and return its output; never raises on exit code."""
    try:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess([str(a) for a in argv], 127, "", f"command not found: {argv[0]}")
