"""What dock32 writes has the modes it gives it, whatever the umask of the process: a staged package, the folders
it makes, atomic writes, copies. (tests/integration/test_machine_habits.py builds and packs under several umasks.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dock32.core import atomic, modes

from .test_targets import staged_plugin


@pytest.fixture
def strict_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.usefixtures("strict_umask")
def test_a_package_staged_under_umask_0077_has_0755_folders_and_programs_and_0644_files(tmp_path: Path) -> None:
    root, _ = staged_plugin(("strategy=multiarch64",), tmp_path)
    found = {path.relative_to(root).as_posix(): mode(path) for path in [root, *root.rglob("*")]}
    programs = {"usr/libexec/docker/cli-plugins/docker-buildx", "DEBIAN/preinst"}
    assert found["DEBIAN"] == 0o755  # dpkg-deb refuses anything but 0755 to 0775
    assert {name for name in found if found[name] == 0o755 and not (root / name).is_dir()} == programs
    assert {name: oct(m) for name, m in found.items() if m != (0o755 if (root / name).is_dir() or name in programs else 0o644)} == {}


@pytest.mark.usefixtures("strict_umask")
def test_make_dirs_makes_what_is_missing_0755_and_leaves_what_exists(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    modes.make_dirs(mine / "dist" / "native32-i386")
    assert (mode(mine), mode(mine / "dist"), mode(mine / "dist" / "native32-i386")) == (0o700, 0o755, 0o755)
    modes.make_dirs(mine / "dist")  # there already: nothing to do
    (mine / "file").write_text("")
    with pytest.raises(FileExistsError):
        modes.make_dirs(mine / "file")


@pytest.mark.usefixtures("strict_umask")
def test_atomic_writes_and_copies_are_0644_in_new_0755_folders(tmp_path: Path) -> None:
    index = tmp_path / "repo" / "dists" / "bookworm" / "main" / "binary-i386" / "Packages"
    atomic.write_text(index, "Package: hello\n")
    assert mode(index) == 0o644
    made = [folder for folder in index.parents if tmp_path in folder.parents]  # binary-i386 up to repo
    assert [mode(folder) for folder in made] == [0o755] * 5
    modes.copy_file(index, tmp_path / "copy")
    modes.copy_file(index, tmp_path / "program", modes.PROGRAM)
    assert (mode(tmp_path / "copy"), mode(tmp_path / "program")) == (0o644, 0o755)
