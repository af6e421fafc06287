"""Tarball checks and tree hashes: a pin names the unpacked files, so any mirror with the same tree is accepted."""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

from dock32.errors import FetchError


def _normalised(name: str, archive: Path) -> str:
    if name.startswith("/") or name.startswith("\\"):
        raise FetchError(f"{archive.name}: member {name!r} has an absolute path", hint="the archive is unsafe; check the mirror")
    clean = posixpath.normpath(name)
    if clean == ".." or clean.startswith("../"):
        raise FetchError(f"{archive.name}: member {name!r} points outside the tree", hint="the archive is unsafe; check the mirror")
    return "" if clean == "." else clean


def _strip_prefix(names: list[str]) -> str:
    """The single top-level folder that GitHub and Debian tarballs wrap their tree in, if there is one."""
    tops = {n.split("/", 1)[0] for n in names if n}
    if len(tops) == 1:
        top = tops.pop()
        if any(n.startswith(top + "/") for n in names):
            return top + "/"
    return ""


def checked_members(archive: Path) -> tuple[tarfile.TarFile, list[tuple[str, tarfile.TarInfo]]]:
    """Open archive and return its members with safe, prefix-stripped relative paths.

    Refuses absolute paths, `..`, device files and links that leave the tree.
    """
    try:
        tar = tarfile.open(archive)
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"{archive.name}: not a readable tar archive ({exc})", hint="the download is corrupt or truncated") from None
    names = [_normalised(m.name, archive) for m in members]
    prefix = _strip_prefix(names)
    result = []
    for member, name in zip(members, names, strict=True):
        if prefix and name + "/" == prefix:
            continue
        rel = name[len(prefix):] if prefix else name
        if not rel:
            continue
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise FetchError(f"{archive.name}: member {member.name!r} is a device or special file", hint="the archive is unsafe; check the mirror")
        if member.issym() or member.islnk():
            target = member.linkname
            if member.islnk():
                target_rel = _normalised(target, archive)
                target_rel = target_rel[len(prefix):] if prefix and target_rel.startswith(prefix) else target_rel
                resolved = target_rel
            else:
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise FetchError(f"{archive.name}: link {member.name!r} -> {target!r} points outside the tree", hint="the archive is unsafe; check the mirror")
        result.append((rel, member))
    return tar, result


def tree_hash_of_archive(archive: Path) -> str:
    """sha256 over the sorted (path, kind, exec bit, content) of every file and link, like a git tree without folders."""
    tar, members = checked_members(archive)
    entries = []
    with tar:
        for rel, member in members:
            if member.isdir():
                continue
            if member.issym():
                entries.append((rel, "link", hashlib.sha256(member.linkname.encode()).hexdigest()))
                continue
            if member.islnk():
                source = tar.getmember(member.linkname)
                data = tar.extractfile(source)
            else:
                data = tar.extractfile(member)
            assert data is not None
            digest = hashlib.sha256(data.read()).hexdigest()
            mode = member.mode if member.isfile() else tar.getmember(member.linkname).mode
            entries.append((rel, "exec" if mode & 0o111 else "file", digest))
    return _combine(entries)


def tree_hash_of_dir(root: Path) -> str:
    entries = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            entries.append((rel, "link", hashlib.sha256(str(path.readlink()).encode()).hexdigest()))
        elif stat.S_ISREG(st.st_mode):
            entries.append((rel, "exec" if st.st_mode & 0o111 else "file", hashlib.sha256(path.read_bytes()).hexdigest()))
    return _combine(entries)


def _combine(entries: list[tuple[str, str, str]]) -> str:
    digest = hashlib.sha256()
    for rel, kind, content in sorted(entries):
        digest.update(f"{kind} {content} {rel}\0".encode())
    return "sha256:" + digest.hexdigest()


def unpack(archive: Path, destination: Path) -> None:
    """Unpack the checked tree into destination, atomically: a half-unpacked tree is never left under its final name."""
    tar, members = checked_members(archive)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=destination.name + ".", suffix=".partial", dir=destination.parent))
    try:
        with tar:
            for rel, member in members:
                target = staging / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if member.issym():
                    target.symlink_to(member.linkname)
                    continue
                source = tar.getmember(member.linkname) if member.islnk() else member
                data = tar.extractfile(source)
                assert data is not None
                with target.open("wb") as out:
                    shutil.copyfileobj(data, out)
                target.chmod(0o755 if source.mode & 0o111 else 0o644)
        try:
            staging.rename(destination)
        except OSError:
            # Another build unpacked the same verified tree first: theirs is as good as ours.
            if not destination.is_dir():
                raise
    finally:
        # After a successful rename there is nothing left here to remove.
        shutil.rmtree(staging, ignore_errors=True)
