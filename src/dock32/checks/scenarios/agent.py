"""The QEMU guest's command agent, and the wire format it shares with the host (guest.py).

This file runs in the guest too: verify-i386-kernel copies it into the guest's root, where systemd starts it as
`python3 agent.py PORT` (python3-minimal, whose standard library has no json, base64 or dataclasses: this module
imports only what it has). QEMU forwards a port of this machine's loopback to it.

One request per connection: the host sends a message, the agent answers one and closes. A message is a list of
byte strings: their count, then each one's length and bytes (lengths as 4-byte big-endian numbers), so that any
bytes (a binary read back, a program's output) travel as they are.

Requests, by their first field:
- run TIMEOUT ENV STDIN ARGV...: run argv as root with env alone (NAME=VALUE, NUL-separated), stdin, in a session of
  its own; its whole process group is killed after TIMEOUT seconds (exit code -9). Answer: exit CODE STDOUT STDERR.
- read PATH: answer data CONTENT.
- write PATH MODE DATA: the file, its folders made as needed, MODE in octal. Answer: data (empty).
Anything that goes wrong besides the command itself: error MESSAGE.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence

_LENGTH = struct.Struct(">I")
# Larger than anything verify sends (a .deb of the upgrade scenario, a test image) and small enough that a stray
# connection with garbage cannot make the agent allocate the guest's memory away.
MAX_FIELD = 256 << 20
MAX_FIELDS = 4096


class ProtocolError(Exception):
    """A message that is cut short or does not follow the format."""


def pack(fields: Sequence[bytes]) -> bytes:
    return _LENGTH.pack(len(fields)) + b"".join(_LENGTH.pack(len(field)) + field for field in fields)


def unpack(read: Callable[[int], bytes]) -> list[bytes]:
    """One message from read(n), which returns up to n bytes (b"" at the end of the stream)."""

    def exactly(size: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = read(min(size, 1 << 20))
            if not chunk:
                raise ProtocolError("the message ends early")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    (count,) = _LENGTH.unpack(exactly(_LENGTH.size))
    if count > MAX_FIELDS:
        raise ProtocolError(f"{count} fields, at most {MAX_FIELDS}")
    fields = []
    for _ in range(count):
        (size,) = _LENGTH.unpack(exactly(_LENGTH.size))
        if size > MAX_FIELD:
            raise ProtocolError(f"a field of {size} bytes, at most {MAX_FIELD}")
        fields.append(exactly(size))
    return fields


# --- the host's side: requests and what their answers mean --------------------------------------------------------


def run_request(argv: Sequence[str], env: Mapping[str, str], stdin: bytes, timeout: float) -> bytes:
    if not argv:
        raise ValueError("an empty command")
    environment = b"\0".join(f"{name}={value}".encode() for name, value in env.items())
    return pack([b"run", str(int(timeout)).encode(), environment, stdin, *(arg.encode() for arg in argv)])


def read_request(path: str) -> bytes:
    return pack([b"read", path.encode()])


def write_request(path: str, data: bytes, mode: int) -> bytes:
    return pack([b"write", path.encode(), b"%o" % mode, data])


def exit_of(answer: list[bytes]) -> tuple[int, bytes, bytes]:
    """A run request's answer: exit code, stdout and stderr; an error answer raises ProtocolError with its message."""
    if answer[:1] == [b"exit"] and len(answer) == 4:
        return int(answer[1]), answer[2], answer[3]
    raise ProtocolError(_unexpected(answer))


def data_of(answer: list[bytes]) -> bytes:
    """A read or write request's answer: the content read (empty for a write)."""
    if answer[:1] == [b"data"] and len(answer) == 2:
        return answer[1]
    raise ProtocolError(_unexpected(answer))


def _unexpected(answer: list[bytes]) -> str:
    if answer[:1] == [b"error"] and len(answer) == 2:
        return answer[1].decode(errors="replace")
    return f"an answer the host does not know: {[field[:40] for field in answer[:3]]}"


# --- the guest's side -----------------------------------------------------------------------------------------------


def answer(request: list[bytes], run: Callable[[list[str], dict[str, str], bytes, int], tuple[int, bytes, bytes]]) -> list[bytes]:
    """The answer to request, with run(argv, env, stdin, timeout) running commands (the agent's own `execute`)."""
    if not request:
        return [b"error", b"an empty request"]
    kind, fields = request[0], request[1:]
    try:
        if kind == b"run" and len(fields) >= 4:
            timeout, environment, stdin = int(fields[0]), fields[1], fields[2]
            env = dict(item.decode().split("=", 1) for item in environment.split(b"\0") if item)
            code, stdout, stderr = run([arg.decode() for arg in fields[3:]], env, stdin, timeout)
            return [b"exit", str(code).encode(), stdout, stderr]
        if kind == b"read" and len(fields) == 1:
            with open(_absolute(fields[0]), "rb") as file:
                return [b"data", file.read()]
        if kind == b"write" and len(fields) == 3:
            path = _absolute(fields[0])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as file:
                file.write(fields[2])
            os.chmod(path, int(fields[1], 8))
            return [b"data", b""]
    except (OSError, ValueError) as exc:
        return [b"error", f"{kind.decode(errors='replace')}: {exc}".encode()]
    return [b"error", f"a request the agent does not know: {kind[:40]!r} with {len(fields)} fields".encode()]


def _absolute(path: bytes) -> str:
    name = path.decode()
    if not name.startswith("/") or "/../" in f"{name}/":
        raise ValueError(f"not an absolute path: {name!r}")
    return name


def execute(argv: list[str], env: dict[str, str], stdin: bytes, timeout: int) -> tuple[int, bytes, bytes]:
    """argv run in a session of its own from /, killed with everything it started after timeout seconds."""
    try:
        process = subprocess.Popen(
            argv, env=env, cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        return 127, b"", f"{argv[0]}: {exc.strerror}\n".encode()
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = process.communicate()
        return -signal.SIGKILL, stdout, stderr
    return process.returncode, stdout, stderr


def serve(connection: socket.socket) -> None:
    with connection:
        try:
            request = unpack(connection.recv)
        except (OSError, ProtocolError):
            return
        reply = answer(request, execute)
        try:
            connection.sendall(pack(reply))
        except OSError:
            pass


def main(arguments: list[str]) -> int:
    port = int(arguments[0]) if arguments else 7000
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Every address: QEMU's user network delivers the host's connections to the guest's own address, and this guest
    # lives for one verify run, private to it.
    listener.bind(("0.0.0.0", port))
    listener.listen(16)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
