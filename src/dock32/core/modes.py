"""The modes of what dock32 writes: 0644 for files, 0755 for programs and folders, set explicitly.

mkdir, open and copyfile take theirs from the umask of whoever runs the build. Under umask 0027 a staged DEBIAN/
folder is 0750, which dpkg-deb refuses, and a .deb or a Packages index only its owner can read cannot be copied by
another user, or fetched by apt's unprivileged download user from a file: repository. The umask is a habit of the
machine, never part of what a build makes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

FILE = 0o644
PROGRAM = 0o755
FOLDER = 0o755


def make_dirs(path: Path) -> None:
    """mkdir -p, with each folder it creates 0755. Folders that exist keep their mode: one above the project may
    be the user's, and not for dock32 to open up."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another thread or build made it a moment ago, and sets its mode
        folder.chmod(FOLDER)


def copy_file(source: Path, destination: Path, mode: int = FILE) -> None:
    """copyfile, then the mode: copyfile gives a new file what the umask leaves of 0666."""
    shutil.copyfile(source, destination)
    destination.chmod(mode)


def set_tree(root: Path, files: dict[Path, int]) -> None:
    """root and every folder below it 0755, every file the mode files gives it or 0644; links are left alone (chmod
    would follow them)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod(FOLDER if path.is_dir() else files.get(path, FILE))


def share_fd(fd: int) -> None:
    """A file opened by this process (a lock, a log) made 0644; one that another user owns keeps its mode (only its
    owner may change it, and it may well be readable already)."""
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, FILE)
