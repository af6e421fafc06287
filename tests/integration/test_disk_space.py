"""A stage that would run out of disk space fails before it starts, with the numbers, and leaves nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_dock32

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 100 MiB file system (tmpfs): room for a source tree, not for compiling."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(folder)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def test_compiling_on_a_full_disk_stops_before_it_starts_and_says_how_much_is_needed(tiny, small_disk: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    build_dir = small_disk / "build"
    result = run_dock32(root, "build", env={**env, "DOCK32_BUILD_DIR": str(build_dir)})
    assert result.returncode == 6, result.stderr
    line = next((line for line in result.stderr.splitlines() if line.startswith("error: compile:")), result.stderr)
    assert f"not enough disk space for compiling {line.split('compiling ')[1].split(':')[0]}: {build_dir / 'native32-i386' / 'bin'} has " in line
    assert "MiB free, it needs about 200 MiB (hint: free some space, or point DOCK32_BUILD_DIR" in line
    assert "Traceback" not in result.stderr
    assert not list((build_dir / "native32-i386" / "bin").glob("*")), "nothing compiled, nothing half-written"
