"""Killing and interrupting real builds of the tiny project, and two builds at once: nothing half-written is
kept or trusted, no command runs on, and the next `dock32 build` finishes the job with the same outputs."""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import default_signals
from .conftest import run_dock32

pytestmark = pytest.mark.integration


def start_build(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dock32.cli", "build", "--project", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
        # The tests stop it with SIGINT and SIGTERM: it must not inherit them ignored from how pytest was started.
        preexec_fn=default_signals,
    )


def outputs(root: Path) -> dict[str, str]:
    """sha256 of every binary and of the manifest."""
    target = root / "build" / "native32-i386"
    files = [*sorted((target / "bin").iterdir()), target / "manifest.json"]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.partial"))


def commands_running_in(root: Path) -> list[str]:
    """Processes (other than pytest's own) whose command line or working folder is in the project."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(root) in command or cwd.startswith(str(root)):
            found.append(f"{proc.name}: {command[:160]}")
    return found


def wait_until_gone(root: Path, seconds: float = 30) -> list[str]:
    """A killed go build's own compile and link finish their step (writing only to temporary folders) and exit."""
    deadline = time.monotonic() + seconds
    while (running := commands_running_in(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return running


def wait_for_holder(lock: Path, seconds: float = 30) -> None:
    """Until a build has taken the lock (it writes its pid into the file)."""
    deadline = time.monotonic() + seconds
    while not (lock.exists() and lock.read_text().strip()):
        assert time.monotonic() < deadline, f"no build took {lock} within {seconds} s"
        time.sleep(0.05)


def paused_holding(build: subprocess.Popen[str], lock: Path) -> None:
    """Once the build holds `lock`, stop it there (SIGSTOP keeps its lock), so that a second build meets a first
    one still running however slowly the second starts on a loaded machine."""
    wait_for_holder(lock)
    build.send_signal(signal.SIGSTOP)


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds} s"
        time.sleep(0.05)


# Kill points are moments in the build, not fractions of its time: the tiny build takes about a second, and a
# process start-up that varies by a few hundred milliseconds made timed kills miss the build altogether.
KILL_POINTS = {
    "the toolchain is written, sources are being fetched": "native32-i386/toolchain.json",
    "cmake is configuring cinit": "logs/native32-i386/compile-cinit.log",
    "go build is compiling hello": "logs/native32-i386/compile-hello.log",
    "one binary is in place, the other is being built": "native32-i386/bin/cinit",
    "both binaries are in place, the manifest is being written": "native32-i386/bin/hello",
}


def kill_when(build: subprocess.Popen[str], path: Path, seconds: float = 120) -> None:
    """SIGKILL the build as soon as `path` exists; no handler runs, no cleanup of ours."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert build.poll() is None, f"the build ended before {path.name} appeared: nothing was tested"
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds} s"
        time.sleep(0.005)
    assert build.poll() is None, f"the build ended as {path.name} appeared: nothing was tested"
    build.kill()
    build.communicate()


def test_sigkill_at_several_points_then_the_next_build_finishes_with_the_same_outputs(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    reference = run_dock32(root, "build", env=env)
    assert reference.returncode == 0, reference.stderr
    expected = outputs(root)
    for moment, marker in KILL_POINTS.items():
        # Each kill hits a build like the reference: from an empty build folder with the cache filled.
        subprocess.run(["rm", "-rf", str(root / "build")], check=True)
        kill_when(start_build(root, env), root / "build" / marker)
        assert wait_until_gone(root) == [], f"still running after SIGKILL when {moment}"
        rerun = run_dock32(root, "build", env=env)
        assert rerun.returncode == 0, f"after SIGKILL when {moment}: {rerun.stderr}"
        assert "Traceback" not in rerun.stderr
        assert outputs(root) == expected, f"after SIGKILL when {moment}"
        assert leftovers(root) == [], f"after SIGKILL when {moment}"


def test_sigterm_stops_the_running_commands_and_says_so(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    build = start_build(root, env)
    wait_for(root / "build" / "logs" / "native32-i386" / "compile-hello.log")  # go build is running
    build.send_signal(signal.SIGTERM)
    _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130, stderr
    stopped = next(line for line in stderr.splitlines() if line.startswith("error: "))
    assert stopped.startswith("error: interrupted: stopped ") and "compile:hello" in stopped, stderr
    assert stopped.endswith("nothing half-written was kept, run the same command again to go on")
    assert "Traceback" not in stderr
    assert wait_until_gone(root) == []
    assert not (root / "build" / "native32-i386" / "bin" / "hello").exists()
    assert leftovers(root) == []
    again = run_dock32(root, "build", env=env)
    assert again.returncode == 0, again.stderr


def test_ctrl_c_twice_stops_at_once(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    build = start_build(root, env)
    wait_for(root / "build" / "logs" / "native32-i386" / "compile-hello.log")
    build.send_signal(signal.SIGINT)
    time.sleep(0.2)  # two signals sent back to back may arrive as one
    build.send_signal(signal.SIGINT)
    _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130, stderr
    # Whether the second one found the first still stopping commands (killed at once) or done, one line says so.
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: interrupted"), stderr
    assert "Traceback" not in stderr
    assert wait_until_gone(root) == []
    assert run_dock32(root, "build", env=env).returncode == 0


def test_a_second_build_in_the_same_workspace_is_refused_naming_the_first(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    first = start_build(root, env)
    paused_holding(first, root / "build" / ".lock")
    second = run_dock32(root, "build", env=env)
    first.send_signal(signal.SIGCONT)
    assert second.returncode == 75  # EX_TEMPFAIL: try again later
    assert second.stderr.strip() == (
        f"error: another build is running in {root / 'build'} (pid {first.pid}) "
        "(hint: wait for it to finish or stop it; a build with its own DOCK32_BUILD_DIR and DOCK32_DIST_DIR can run beside it)"
    )
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    # Not while the first build is paused: it may be stopped inside a write to doit's database, which a reader
    # then waits on. The workspace lock, held here as a build holds it, is what `list` must not need.
    with (root / "build" / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        listing = run_dock32(root, "list", env=env)
    assert listing.returncode == 0, f"reading the task list does not need the lock: {listing.stderr}"
    assert run_dock32(root, "build", env=env).returncode == 0, "the lock goes with the process that held it"


def test_a_second_build_writing_to_the_same_dist_folder_is_refused(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    first = start_build(root, env)
    paused_holding(first, root / "dist" / ".lock")
    second = run_dock32(root, "build", env={**env, "DOCK32_BUILD_DIR": str(tmp_path / "own-build")})
    first.send_signal(signal.SIGCONT)
    assert second.returncode == 75  # EX_TEMPFAIL: try again later
    assert f"error: another build is writing its packages to {root / 'dist'} (pid {first.pid})" in second.stderr
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr


def test_two_workspaces_build_side_by_side_from_one_cache(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    other = {**env, "DOCK32_BUILD_DIR": str(tmp_path / "other-build"), "DOCK32_DIST_DIR": str(tmp_path / "other-dist")}
    builds = [start_build(root, env), start_build(root, other)]
    results = [b.communicate(timeout=300) for b in builds]
    assert [b.returncode for b in builds] == [0, 0], results
    theirs = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted((tmp_path / "other-build" / "native32-i386" / "bin").iterdir())}
    ours = outputs(root)
    assert theirs == {name: digest for name, digest in ours.items() if name != "manifest.json"}
