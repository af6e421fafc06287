"""The tiny build inside a memory cgroup: dock32 reads the limit, says what it chose for it, builds, and what it
chose (go -p, GOGC, GOMEMLIMIT) makes no rebuild outside the cgroup."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from dock32.core.memory import MiB

from ..memory_cgroup import memory_cgroup
from .conftest import ran_tasks, run_dock32

pytestmark = pytest.mark.integration


def test_the_build_in_a_640_mib_cgroup_says_so_fits_and_makes_no_rebuild_outside(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    with memory_cgroup(640 * MiB) as cgroup:
        command = [sys.executable, "-m", "dock32.cli", "build", "--project", str(root)]
        inside = subprocess.run(
            ["sh", "-c", f'echo $$ > {shlex.quote(str(cgroup.procs))} && exec {shlex.join(command)}'],
            capture_output=True, text=True, env={**os.environ, **env}, check=False,
        )
        assert inside.returncode == 0, inside.stderr + inside.stdout
    chosen = [line for line in inside.stdout.splitlines() if " dock32: " in line]
    assert len(chosen) == 1, inside.stdout
    # A Go build of this machine's go is estimated above what 640 MiB holds with dock32 in it: one task, one
    # compile, GOGC and GOMEMLIMIT; and, if a warning, one naming the fix, which lets the build go on.
    assert re.search(r"dock32: 1 task at a time, go -p 1, GOGC=50, GOMEMLIMIT=\d+MiB: 640 MiB available \(cgroup limit\)", chosen[0]), chosen[0]
    warnings = [line for line in inside.stderr.splitlines() if line.startswith("warning: ")]
    if warnings:
        assert "(cgroup limit)" in warnings[0] and "raise the container's memory limit" in warnings[0], warnings
    limit = re.search(r"GOMEMLIMIT=(\d+MiB)", chosen[0])
    assert limit is not None
    # The settings reached the Go compile through its environment (the log's first line is the command with it).
    command_line = (root / "build" / "logs" / "native32-i386" / "compile-hello.log").read_text().splitlines()[0]
    assert re.search(r"GOFLAGS=('[^']*\s)?-p=1'? ", command_line), command_line
    assert f"GOMEMLIMIT={limit.group(1)}" in command_line and "GOGC=50" in command_line, command_line

    # Outside the cgroup, with other settings (and the user's --jobs): nothing is rebuilt.
    outside = run_dock32(root, "build", "--jobs", "2", env=env)
    assert outside.returncode == 0, outside.stderr
    assert ran_tasks(outside.stdout) == []
    assert re.search(r"dock32: 2 tasks at a time, go -p \d+(, GOGC=50, GOMEMLIMIT=\d+MiB)?: .* available \(.*\); --jobs 2", outside.stdout), outside.stdout


def test_a_bad_jobs_value_is_one_line_naming_it(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    result = run_dock32(root, "build", env={**env, "DOCK32_JOBS": "0"})
    assert result.returncode == 2
    hint = "(hint: unset it to let dock32 choose from the memory)"
    assert result.stderr.strip() == f"error: environment: DOCK32_JOBS='0': expected a number of tasks, 1 or more {hint}"
    assert not (root / "build" / "native32-i386" / "bin").exists()


def test_memory_from_the_user_gives_the_small_box_s_settings_here(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    result = run_dock32(root, "build", "--memory", "640MiB", env=env)
    assert result.returncode == 0, result.stderr
    assert re.search(r"dock32: 1 task at a time, go -p 1, GOGC=50, GOMEMLIMIT=\d+MiB: 640 MiB available \(--memory\)", result.stdout), result.stdout
    command_line = (root / "build" / "logs" / "native32-i386" / "compile-hello.log").read_text().splitlines()[0]
    assert "GOGC=50" in command_line, command_line
    bad = run_dock32(root, "build", "--memory", "lots", env=env)
    assert bad.returncode == 2 and "argument --memory: 'lots': expected a size of 64MiB or more" in bad.stderr, bad.stderr
