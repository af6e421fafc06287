"""What a build shows: on a terminal one live line (tasks done of all, what runs and for how long, elapsed, ETA) and a
summary; elsewhere a timestamped line per task start and end; with --quiet, errors only."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from .conftest import PATCH, run_dock32

pytestmark = pytest.mark.integration

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LIVE = re.compile(r"^(\d+)/(\d+) .{10} (\d+:\d\d) ETA (~?)(\d+:\d\d)")


def run_on_a_terminal(project: Path, *args: str, env: dict[str, str], columns: int = 160) -> tuple[int, str]:
    """Run dock32 with a pseudo-terminal as its stdin, stdout and stderr; return its exit code and all it wrote."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "dock32.cli", *args, "--project", str(project)],
        stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, **env, "TERM": "xterm", "COLUMNS": str(columns)},
        start_new_session=True,
    )
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError as exc:  # EIO: every end of the terminal is closed, the run is over
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(), output.decode(errors="replace")


def frames(output: str) -> list[str]:
    """Every state the live line was drawn in: the text between carriage returns, escape sequences dropped."""
    return [ESCAPE.sub("", part).rstrip() for line in output.split("\n") for part in line.split("\r") if part.strip()]


def screen(output: str) -> list[str]:
    """What is left on the screen at the end: each line as its last carriage return left it (cleared text is blanks)."""
    lines: list[str] = []
    for raw in ESCAPE.sub("", output.replace("\r\n", "\n")).split("\n"):
        row: list[str] = []
        column = 0
        for char in raw:
            if char == "\r":
                column = 0
                continue
            if column < len(row):
                row[column] = char
            else:
                row.append(char)
            column += 1
        if "".join(row).strip():
            lines.append("".join(row).rstrip())
    return lines


def test_a_terminal_shows_a_live_line_with_an_eta_then_a_summary(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    code, output = run_on_a_terminal(root, "build", env=env)
    assert code == 0, output
    drawn = [(m, frame) for frame in frames(output) if (m := LIVE.match(frame))]
    assert drawn, output
    totals = {int(m[2]) for m, _ in drawn}
    assert len(totals) == 1 and totals.pop() >= 7  # toolchain, 2 fetch, 2 source, 2 compile, manifest
    # No earlier run: the ETA is a guess from the task kinds, and says so.
    assert all(m[4] == "~" for m, _ in drawn if m[1] != m[2]), output
    assert any("compile:hello " in frame and int(m[1]) < int(m[2]) for m, frame in drawn), output
    assert re.search(r"compile:hello \d+:\d\d", output)
    shown = screen(output)
    # The live line was taken away at the end; no per-task line of a log was printed.
    assert not [line for line in shown if LIVE.match(line)], shown
    assert not [line for line in shown if re.match(r"\d\d:\d\d:\d\d start ", line)], shown
    summary = "\n".join(shown)
    assert re.search(r"^finished after \d+:\d\d: \d+ tasks \(\d+ ran\)$", summary, re.M), summary
    assert "task times, slowest first:" in summary
    times = re.findall(r"^  (\S+) +(\d+\.\d) s$", summary, re.M)
    assert {"compile:hello", "compile:cinit", "manifest"} <= {name for name, _ in times}
    assert [float(s) for _, s in times] == sorted((float(s) for _, s in times), reverse=True)
    assert re.search(r"^ +\d+(\.\d)? [KM]iB  build/native32-i386/bin/hello$", summary, re.M) or re.search(
        r"^ +\d+(\.\d)? [KM]iB  .*/build/native32-i386/bin/hello$", summary, re.M
    ), summary
    assert re.search(r"^logs: .*build/logs/native32-i386/$", summary, re.M), summary

    # The times were kept beside doit's database: the next run's ETA is learned, not guessed.
    times_file = root / "build" / ".doit-native32-i386.times.json"
    assert set(json.loads(times_file.read_text())["tasks"]) >= {"compile:hello", "compile:cinit", "fetch:hello"}
    patch = root / "patches" / "hello" / "0001-greet.patch"
    patch.write_text(PATCH.replace('+\tfmt.Printf("patched', '+\tfmt.Printf("repatched'))
    code, output = run_on_a_terminal(root, "build", env=env)
    assert code == 0, output
    drawn = [m for frame in frames(output) if (m := LIVE.match(frame))]
    assert drawn and all(m[4] == "" for m in drawn), output
    assert any(m[1] != m[2] for m in drawn)


def test_not_on_a_terminal_each_task_has_a_timestamped_start_and_end(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d \d+ tasks, about \d+:\d\d \(a guess: no earlier run to learn from\)", lines[0]), lines[0]
    total = int(lines[0].split()[1])
    started = re.findall(r"^\d\d:\d\d:\d\d start (\S+)$", result.stdout, re.M)
    ended = re.findall(r"^\d\d:\d\d:\d\d done  (\S+) in \d+\.\d s \[(\d+)/(\d+)\]$", result.stdout, re.M)
    assert sorted(started) == sorted(name for name, _, _ in ended) and len(started) == total
    assert [int(done) for _, done, _ in ended] == list(range(1, total + 1)) and {int(t) for _, _, t in ended} == {total}
    for name in started:  # each ends after it starts
        assert lines.index(next(line for line in lines if line.endswith(f"start {name}"))) < lines.index(
            next(line for line in lines if f"done  {name} in" in line)
        )
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    assert "task times, slowest first:" in result.stdout and re.search(r"build/native32-i386/bin/cinit$", result.stdout, re.M)

    again = run_dock32(root, "build", env=env)
    assert again.returncode == 0
    assert len(re.findall(r"^\d\d:\d\d:\d\d up to date \S+ \[\d+/\d+\]$", again.stdout, re.M)) == total
    assert "nothing to do: everything is up to date" in again.stdout
    assert re.search(r"tasks, about \d+:\d\d$", again.stdout.splitlines()[0])  # learned from the first run


def test_quiet_prints_errors_only(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    result = run_dock32(root, "build", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    patch = root / "patches" / "hello" / "0001-greet.patch"
    patch.write_text(PATCH.replace("+15,5", "+15,6").replace('+\tfmt.Printf("patched', '+\tundefinedThing()\n+\tfmt.Printf("patched'))
    failed = run_dock32(root, "build", "--quiet", env=env)
    assert failed.returncode == 6
    assert failed.stdout == ""
    assert failed.stderr.startswith("error: compile:hello: ") and "Traceback" not in failed.stderr


@pytest.mark.parametrize("slowest", ["hello", "cinit"])
def test_the_compile_the_last_run_found_slowest_starts_first(tiny, slowest: str) -> None:  # type: ignore[no-untyped-def]
    """The plan ranks the components by the task times of the last run (beside doit's database) and prepares their
    trees in that order, so through real doit, one task at a time, the compile found slower starts first."""
    root, env = tiny
    other = "cinit" if slowest == "hello" else "hello"
    times = root / "build" / ".doit-native32-i386.times.json"
    times.parent.mkdir(parents=True, exist_ok=True)
    times.write_text(json.dumps({"tasks": {f"compile:{slowest}": 300.0, f"compile:{other}": 3.0}, "started": {}}))
    result = run_dock32(root, "build", "--jobs", "1", env=env)
    assert result.returncode == 0, result.stderr
    compiles = [name for name in re.findall(r"^\d\d:\d\d:\d\d start (\S+)$", result.stdout, re.M) if name.startswith("compile:")]
    assert compiles == [f"compile:{slowest}", f"compile:{other}"], result.stdout
