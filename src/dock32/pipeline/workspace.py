"""One build at a time per workspace: a second `doit build` in the same build folder stops at once, naming the first.

The lock is an flock on build/.lock, held by the process for as long as it lives, so a build that is killed
(even with SIGKILL) releases it with no stale lock file to clean up. Different workspaces (DOCK32_BUILD_DIR)
build side by side and share the download cache, which has locks of its own.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from dock32.core import modes, run
from dock32.core.errors import BusyError

# doit commands that only read the workspace; every other one may run tasks.
READ_ONLY_COMMANDS = frozenset({"list", "help", "info", "dumpdb", "tabcompletion"})
# Tasks that only look at the machine: asking for them alone needs no lock, so they work while a build runs.
READ_ONLY_TASKS = frozenset({"doctor"})

_held: dict[Path, int] = {}


def hold_lock(build_dir: Path, dist_root: Path | None = None) -> None:
    """Take the workspace's locks, on its build folder and on its dist folder, for the rest of this process, or
    raise naming the process that has one; then clear what killed runs left behind. Two builds with different
    build folders but the same dist folder would overwrite each other's packages and indexes: the second lock
    stops that."""
    build_dir = build_dir.resolve()
    if build_dir in _held:
        return
    _lock(build_dir, "another build is running in {folder} (pid {holder})")
    if dist_root is not None:
        _lock(dist_root.resolve(), "another build is writing its packages to {folder} (pid {holder})")
    sweep_leftovers(build_dir, dist_root)


def _lock(folder: Path, busy: str) -> None:
    modes.make_dirs(folder)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, modes.FILE)
    # In dist/ too: under umask 0077 a 0600 lock would stop another user's `cp -r dist`.
    modes.share_fd(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise BusyError(
            busy.format(folder=folder, holder=holder),
            hint="wait for it to finish or stop it; a build with its own DOCK32_BUILD_DIR and DOCK32_DIST_DIR can run beside it",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[folder] = fd


# Where runs keep what they have not finished: staging trees, .partial binaries and packages, atomic writes,
# verify's scratch folders (with their overlay mounts). Depth as the layout makes them: build/, build/<target>/,
# build/<target>/{bin,src}/, build/sources/.
LEFTOVER_PATTERNS = ("*.partial", "*/*.partial", "*/*/*.partial")


def sweep_leftovers(build_dir: Path, dist_root: Path | None = None) -> list[Path]:
    """Remove what killed runs left half-done in this workspace. Safe only while holding its lock: no other run
    of this workspace can be writing them. Nothing here was ever trusted (only complete files are renamed into
    place); this only keeps the folders clean."""
    from dock32.checks.rootfs import unmount_below

    found = [p for pattern in LEFTOVER_PATTERNS for p in build_dir.glob(pattern)]
    if dist_root is not None:
        found += list(dist_root.glob("*/*.partial"))
    for path in found:
        if path.is_dir() and not path.is_symlink():
            unmount_below(path)
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if found:
        sys.stderr.write(f"removed {len(found)} leftovers of an interrupted run ({', '.join(p.name for p in found[:3])}{' ...' if len(found) > 3 else ''})\n")
    return found


def doit_command(argv: list[str]) -> str:
    """The doit command that argv asks for: the first word that is not an option, `run` when there is none
    or when it names tasks."""
    from doit.doit_cmd import DoitMain

    commands = {command.get_name() for command in DoitMain.DOIT_CMDS}
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words and words[0] in commands else "run"


def only_read_only_tasks(argv: list[str]) -> bool:
    """Whether argv runs only tasks that change nothing (`doit doctor`)."""
    words = [a for a in argv if not a.startswith("-") and "=" not in a]
    if words[:1] == ["run"]:
        words = words[1:]
    return bool(words) and set(words) <= READ_ONLY_TASKS


def stop_on_signals() -> None:
    """Ctrl-C or SIGTERM (a CI timeout, systemd, kill) stops the running commands, with their children; the
    tasks they belonged to fail as "interrupted" and nothing half-written is kept, since every output is
    renamed into place only when complete. A second signal stops waiting for them."""

    def stop(signum: int, frame: FrameType | None) -> None:
        if run.stopping():
            run.kill_all_now()
            sys.stderr.write("error: interrupted twice: killed the running commands without waiting; run the same command again to go on\n")
            os._exit(130)  # at once: doit's threads would otherwise wait for their tasks to notice
        sys.stderr.write(f"\n{signal.Signals(signum).name}: stopping the running commands (again to stop waiting)\n")
        run.stop_all()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    atexit.register(_ignore_while_exiting)


def _ignore_while_exiting() -> None:
    """Once the run is over and the process exits: Python's finalization puts the default disposition back on
    every signal it handled, so a second Ctrl-C landing then would kill the process by SIGINT instead of letting it
    exit with the code the run chose (130 after the first). Nothing is left to stop by then."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
