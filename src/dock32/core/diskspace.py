"""Fail early, with the numbers, when a stage that writes a lot would run out of disk space half-way.

The needs are measured on the default release (Docker 28.5.2, i386), with room to spare:
- preparing a source tree copies it: moby's is 33 MB, the largest;
- compiling one Go binary with a cold build cache grew the Go cache by up to 0.5 GB (2.1 GB for all ten),
  and writes the binary (dockerd: 73 MB) plus its .partial;
- packing one .deb stages its files (containerd.io: 150 MB of binaries), packs them uncompressed and
  then compressed beside it: about three times the largest package's files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dock32.core.errors import NotEnoughDiskSpace

MiB = 1 << 20
SOURCE_TREE_MARGIN = 64 * MiB
COMPILE_CACHE_NEED = 600 * MiB
COMPILE_OUTPUT_NEED = 200 * MiB
PACKAGE_NEED = 500 * MiB


def tree_size(tree: Path) -> int:
    return sum(p.lstat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())


def require(folder: Path, need: int, what: str) -> None:
    """Raise unless the file system holding folder has `need` bytes free for `what`. The stage that asks gives the
    error its kind: a full disk while packing fails as packing."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    if free < need:
        raise NotEnoughDiskSpace(
            f"not enough disk space for {what}: {existing} has {_size(free)} free, it needs about {_size(need)}",
            hint="free some space, or point DOCK32_BUILD_DIR, DOCK32_DIST_DIR or DOCK32_CACHE_DIR at a larger disk",
        )


def _size(count: int) -> str:
    return f"{count / (1 << 30):.1f} GiB" if count >= 1 << 30 else f"{count / MiB:.0f} MiB"


def human_size(count: int) -> str:
    """A size as people read it: 812 B, 4.2 KiB, 33 MiB, 1.5 GiB (binary units, as du -h and dpkg use)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if count >= scale:
            value = count / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{count} B"
