"""The one place dock32 runs external commands: argv lists, explicit environment, a log file per task."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from dock32.core import modes
from dock32.core.errors import CommandFailed, Interrupted

LOG_TAIL_LINES = 25
STOP_GRACE_SECONDS = 5

# Every command running now, so that Ctrl-C or SIGTERM can stop them all (doit runs tasks in threads, and a
# signal reaches only the main one). Each runs in a process group of its own: stopping it stops what it
# started too (go build's compile and link).
_running: set[subprocess.Popen[Any]] = set()
# Reentrant: the signal handler that stops them runs in the main thread, which may hold it at that moment.
_running_lock = threading.RLock()
_stopping = threading.Event()


def stop_all() -> None:
    """Stop every running command (SIGTERM to its group, SIGKILL after a grace period) and refuse new ones."""
    with _running_lock:
        _stopping.set()
        processes = list(_running)
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


def kill_all_now() -> None:
    """SIGKILL every running command's group, without waiting (a second Ctrl-C)."""
    _stopping.set()
    with _running_lock:
        processes = list(_running)
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def dying_with_us(argv: Sequence[str | Path]) -> list[str]:
    """argv, started so that the kernel kills it when the thread that started it dies, even by SIGKILL: a killed
    build leaves no command running on (util-linux's setpriv sets the parent-death signal, which survives exec)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *(str(a) for a in argv)]


def stopping() -> bool:
    return _stopping.is_set()


@contextlib.contextmanager
def _started(argv: Sequence[str | Path], cleanup: bool = False, **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """cleanup: a command that undoes something (umount, stopping daemons), which must run even while stopping."""
    env = popen.get("env") or os.environ
    if shutil.which(str(argv[0]), path=env.get("PATH")) is None:
        # Checked here: under setpriv, a missing command would only show as setpriv's exit code 127.
        raise FileNotFoundError(argv[0])
    # Checking the flag, starting and registering under the lock that stop_all takes: no command can start
    # unseen while it stops the others.
    with _running_lock:
        if _stopping.is_set() and not cleanup:
            raise Interrupted(f"interrupted before `{argv[0]}` started")
        process: subprocess.Popen[Any] = subprocess.Popen(dying_with_us(argv), start_new_session=True, **popen)
        _running.add(process)
    try:
        yield process
        process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        with _running_lock:
            _running.discard(process)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    if _stopping.is_set() and not cleanup:
        raise Interrupted(f"`{argv[0]}` was stopped")


def open_log(log: Path, how: str = "a") -> IO[Any]:
    """A task's log (text, or bytes with how "ab"), with its folders made as needed: 0644 and 0755 whatever the
    umask, so that a CI job's artifact upload or another user can read what went wrong."""
    modes.make_dirs(log.parent)
    out = log.open(how) if "b" in how else log.open(how, encoding="utf-8")
    modes.share_fd(out.fileno())
    return out


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
    what: str = "",
) -> None:
    """Run argv, appending its output to log; on failure raise CommandFailed with the command and the log's tail.

    With log=None the output goes to the terminal (for interactive steps like apt-get).

    The same CommandFailed in every stage: the stage that ran the command gives it its kind and exit code
    (errors.in_stage), so that dpkg-deb and the xz after it cannot fail with different codes.

    env holds only the variables dock32 sets; they are laid over the caller's
    environment so that GOPROXY, proxies and the like still reach the tools.
    """
    line = command_line(argv, env, cwd)
    if log is None:
        try:
            with _started(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL) as process:
                pass
            code = process.returncode
        except FileNotFoundError:
            raise CommandFailed(f"{what or argv[0]}: command not found: {argv[0]}") from None
        if code != 0:
            raise CommandFailed(f"{what + ': ' if what else ''}command failed with exit code {code}: {line}")
        return
    with open_log(log) as out:
        out.write(f"$ {line}\n")
        out.flush()
        try:
            with _started(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT) as process:
                pass
        except FileNotFoundError:
            raise CommandFailed(f"{what or argv[0]}: command not found: {argv[0]}", hint="run `dock32 doctor` to see what to install") from None
    if process.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-LOG_TAIL_LINES:])
        raise CommandFailed(
            f"{what + ': ' if what else ''}command failed with exit code {process.returncode}: {line}\n"
            f"--- last lines of {log} ---\n{tail.rstrip()}",
            hint=f"full log: {log}",
        )


def stream(argv: Sequence[str | Path], *, log: Path, on_line: Callable[[str], None], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Run a long command whose output is read as it comes (go test -json): each line goes to log and to on_line.
    Returns the exit code."""
    with open_log(log, "w") as out, _started(
        argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            on_line(line)
    return process.returncode


def capture(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    inherit_env: bool = True,
    cleanup: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a short query command (go env, go version -m, pkg-config) and return its output; never raises on exit code.

    input, if given, goes to its standard input; after timeout seconds it is killed (exit code -9). inherit_env=False
    gives it env alone. cleanup=True runs it even while dock32 is stopping (umount, stopping daemons).
    """
    environment = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
    try:
        with _started(
            argv, cleanup=cleanup, cwd=cwd, env=environment, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ) as process:
            try:
                stdout, stderr = process.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, stderr = process.communicate()
    except FileNotFoundError:
        return subprocess.CompletedProcess([str(a) for a in argv], 127, "", f"command not found: {argv[0]}")
    return subprocess.CompletedProcess([str(a) for a in argv], process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
