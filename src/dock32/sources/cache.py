"""The shared cache of verified source trees: checked again before each use, filled by one process at a time.

Every tree in the cache was verified when it arrived (tree hash for tarballs, the go.sum-style h1: hash for Go
modules). Before a build uses one, it is checked again: cheaply, by comparing a fingerprint of the tree (how many
files, their total size, the newest change time) with the one recorded when it was last verified in full; and in
full (the hash) when the fingerprint differs or was never recorded. A tree that fails is discarded, so that the
next fetch brings it again; offline, that is a clear error instead.

Workspaces share the cache: a lock per entry makes one process fetch it while the others wait, and every entry
appears under its name only when complete, so nobody ever sees another's partial files.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from dock32.core import atomic
from dock32.model.settings import Settings


@contextlib.contextmanager
def entry_lock(settings: Settings, key: str, shared: bool = False) -> Iterator[None]:
    """Hold the lock of one cache entry: exclusive to fill or discard it, shared to read it."""
    folder = settings.cache_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(f"waiting for another dock32 run that is fetching {key}\n")
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def fingerprint(tree: Path) -> dict[str, int]:
    """Cheap to take (one lstat per file): any file added, removed, truncated or rewritten changes it."""
    files = size = newest = 0
    for folder, dirs, names in os.walk(tree):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            st = os.lstat(os.path.join(folder, name))
            files += 1
            size += st.st_size if not stat.S_ISLNK(st.st_mode) else 0
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return {"files": files, "bytes": size, "newest_ns": newest}


def module_hash(tree: Path, module: str, version: str) -> str:
    """The h1: hash of an unpacked Go module, as golang.org/x/mod/sumdb/dirhash.Hash1 computes it (go mod verify)."""
    files = sorted(
        (f"{module}@{version}/{(Path(folder) / name).relative_to(tree).as_posix()}", Path(folder) / name)
        for folder, _, names in os.walk(tree)
        for name in names
    )
    summary = "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n" for name, path in files)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def _record(tree: Path) -> Path:
    return tree.with_name(tree.name + ".verified")


def is_intact(tree: Path, expected: str, full_hash: Callable[[Path], str]) -> bool:
    """Whether tree still holds what `expected` pins. full_hash(tree) computes the hash when the cheap check is
    in doubt; a tree found good is fingerprinted again so the next check is cheap."""
    if not tree.is_dir():
        return False
    record = _record(tree)
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    current = fingerprint(tree)
    if isinstance(saved, dict) and saved.get("hash") == expected and saved.get("fingerprint") == current:
        return True
    if full_hash(tree) != expected:
        return False
    remember(tree, expected, current)
    return True


def remember(tree: Path, verified_hash: str, taken: dict[str, int] | None = None) -> None:
    """Record that tree was verified in full as verified_hash, with its fingerprint (taken then, or now)."""
    atomic.write_text(_record(tree), json.dumps({"hash": verified_hash, "fingerprint": taken or fingerprint(tree)}, sort_keys=True) + "\n")


def discard(tree: Path) -> None:
    """Remove a cache tree that failed its check (Go's module cache makes its trees read-only)."""
    _record(tree).unlink(missing_ok=True)
    if not tree.exists():
        return
    for folder, dirs, _ in os.walk(tree):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
    os.chmod(tree, 0o755)
    shutil.rmtree(tree)
