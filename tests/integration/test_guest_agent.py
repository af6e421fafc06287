"""The i686 guest's command agent, run here as the guest runs it (`python3 agent.py PORT`, the file itself, with no
dock32 around it), answering the host's side (guest.call_agent) on 127.0.0.1: commands with their stdin, exit codes
and output, a clean environment, binary files both ways, and a command that outlives its time killed with what it
started."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dock32.checks.scenarios import agent
from dock32.checks.scenarios.guest import call_agent, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    # -I: the guest's python3 has no site-packages of ours either; the agent must stand alone.
    process = subprocess.Popen([sys.executable, "-I", agent.__file__, str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, f"the agent exited: {process.stdout.read() if process.stdout else ''!r}"
                assert time.monotonic() < deadline, "the agent did not listen within 20 s"
                time.sleep(0.1)
        yield port
    finally:
        process.kill()
        process.wait()


def run(port: int, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None, timeout: int = 30) -> tuple[int, bytes, bytes]:
    return agent.exit_of(call_agent(port, agent.run_request(argv, env or {"PATH": "/usr/bin:/bin"}, stdin, timeout)))


def test_a_command_gets_its_stdin_and_gives_its_exit_code_and_output(port: int) -> None:
    assert run(port, ["sh", "-c", "cat; echo to-stderr >&2; exit 3"], stdin=b"in\0put\n") == (3, b"in\0put\n", b"to-stderr\n")


def test_a_command_sees_only_the_environment_it_is_given_and_runs_from_the_root(port: int) -> None:
    code, out, _ = run(port, ["sh", "-c", "env; pwd"], env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///run/docker.sock"})
    lines = set(out.decode().splitlines())
    assert code == 0 and {"PATH=/usr/bin:/bin", "DOCKER_HOST=unix:///run/docker.sock", "/"} <= lines
    assert not any(line.startswith(("HOME=", "PYTEST")) for line in lines)


def test_a_missing_program_exits_127(port: int) -> None:
    code, _, err = run(port, ["/no/such/program"])
    assert code == 127 and b"/no/such/program" in err


def test_a_command_past_its_time_is_killed_with_what_it_started(port: int, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()
    code, _, _ = run(port, ["sh", "-c", f"sleep 300 & echo $! > {pids}; wait"], timeout=1)
    assert code == -9 and time.monotonic() - started < 20
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and b"Z" not in Path(f"/proc/{child}/stat").read_bytes().split()[2:3]:
        assert time.monotonic() < deadline, "the command's child outlived its time"
        time.sleep(0.1)


def test_files_go_both_ways_byte_for_byte(port: int, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    path = tmp_path / "made" / "here" / "busybox"
    assert agent.data_of(call_agent(port, agent.write_request(str(path), data, 0o755))) == b""
    assert path.read_bytes() == data and path.stat().st_mode & 0o777 == 0o755
    assert agent.data_of(call_agent(port, agent.read_request(str(path)))) == data


def test_what_cannot_be_read_is_an_error_with_the_reason(port: int) -> None:
    with pytest.raises(agent.ProtocolError, match="No such file"):
        agent.data_of(call_agent(port, agent.read_request("/no/such/file")))


def test_commands_run_side_by_side(port: int) -> None:
    """One connection each: a long command does not hold up another one."""
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        slow.sendall(agent.run_request(["sleep", "5"], {"PATH": "/usr/bin:/bin"}, b"", 30))
        slow.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert run(port, ["echo", "quick"]) == (0, b"quick\n", b"")
        assert time.monotonic() - started < 4
        assert agent.exit_of(agent.unpack(slow.recv)) == (0, b"", b"")
    finally:
        slow.close()


def test_garbage_on_the_port_does_not_stop_the_agent(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as stray:
        stray.sendall(b"\xff\xff\xff\xff garbage")
        # The agent hangs up at once (a count of fields past MAX_FIELDS), with no answer.
        with contextlib.suppress(ConnectionError, OSError):
            stray.shutdown(socket.SHUT_WR)
            assert stray.recv(100) == b""
    assert run(port, ["echo", "still here"]) == (0, b"still here\n", b"")
