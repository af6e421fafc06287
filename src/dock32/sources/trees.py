"""Tarball checks and tree hashes: a pin names the unpacked files, so any mirror with the same tree is accepted.

Archives come from mirrors, so nothing in them is trusted: every member is checked from its header before any
data is read or written. Refused are absolute paths, `..`, links that leave the tree (also through other links),
members inside a link or a file, names that appear twice, devices and fifos, and bombs: too many members, too
many declared bytes, or tar headers that inflate beyond reason.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from dock32.core.errors import FetchError

MAX_TREE_BYTES = 2 * 1024**3
"""Refuse an archive whose members declare more bytes than this in all (sparse members count at their full size)."""

MAX_MEMBERS = 200_000
"""Refuse an archive with more members than this (Docker's own tree has about a tenth of it)."""

MAX_HEADER_BYTES = 1024**2
"""Refuse a member whose tar headers (pax records and GNU long names included) take more than this."""

_UNSAFE = "the archive is unsafe; check the mirror"
_SYMLINK_HOPS = 40
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def _bomb_hint(limit: str) -> str:
    return f"an archive bomb, or a tree far larger than any dock32 builds; the limit is {limit} in dock32/sources/trees.py"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class _TooMuch(Exception):
    """The tar stream was about to inflate past what its checked headers allow."""


class _BoundedStream:
    """The decompressed tar stream, which refuses to read or seek past `limit`.

    tarfile reads a pax record or a GNU long name into memory whole; this bound is what keeps a header of
    a few KiB of gzip that inflates to gigabytes from ever being read. checked_members moves it along as
    each header passes its checks.
    """

    def __init__(self, raw: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile | IO[bytes], limit: int) -> None:
        self.raw = raw
        self.limit = limit

    def read(self, size: int = -1) -> bytes:
        position = self.raw.tell()
        if size is None or size < 0:
            size = max(self.limit - position, 0)
        if position + size > self.limit:
            raise _TooMuch
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.raw.tell() + offset
        if whence not in (0, 1) or target > self.limit:
            raise _TooMuch
        return self.raw.seek(target)

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()


class _Archive(tarfile.TarFile):
    """A TarFile over a _BoundedStream; closing it closes the file too."""

    bounded: _BoundedStream

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.bounded.close()


def _open(archive: Path) -> _Archive:
    with archive.open("rb") as probe:
        magic = probe.read(6)
    raw: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile | IO[bytes]
    if magic.startswith(b"\x1f\x8b"):
        raw = gzip.GzipFile(archive, "rb")
    elif magic.startswith(b"BZh"):
        raw = bz2.BZ2File(archive, "rb")
    elif magic.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMAFile(archive, "rb")
    else:
        raw = archive.open("rb")
    bounded = _BoundedStream(raw, MAX_HEADER_BYTES)
    try:
        tar = _Archive(fileobj=bounded)  # type: ignore[arg-type]
    except BaseException:
        bounded.close()
        raise
    tar.bounded = bounded
    return tar


def _normalised(name: str, archive: Path) -> str:
    if name.startswith("/") or name.startswith("\\"):
        raise FetchError(f"{archive.name}: member {name!r} has an absolute path", hint=_UNSAFE)
    clean = posixpath.normpath(name)
    if clean == ".." or clean.startswith("../"):
        raise FetchError(f"{archive.name}: member {name!r} points outside the tree", hint=_UNSAFE)
    return "" if clean == "." else clean


def _strip_prefix(names: list[str]) -> str:
    """The single top-level folder that GitHub and Debian tarballs wrap their tree in, if there is one."""
    tops = {n.split("/", 1)[0] for n in names if n}
    if len(tops) == 1:
        top = tops.pop()
        if any(n.startswith(top + "/") for n in names):
            return top + "/"
    return ""


def _read_headers(tar: _Archive, archive: Path) -> list[tarfile.TarInfo]:
    """Every member's header, refusing a bomb as soon as a header shows one: before that member's data is read."""
    members: list[tarfile.TarInfo] = []
    declared = 0
    while True:
        # The next header starts where the last member's data ends; it may take MAX_HEADER_BYTES, and all of
        # the stream, headers and padding included, at most twice MAX_TREE_BYTES.
        tar.bounded.limit = min(tar.offset + MAX_HEADER_BYTES, 2 * MAX_TREE_BYTES)
        try:
            member = tar.next()
        except _TooMuch:
            after = f"after member {members[-1].name!r}" if members else "at the start"
            if tar.offset + MAX_HEADER_BYTES > 2 * MAX_TREE_BYTES:
                raise FetchError(
                    f"{archive.name}: the tar stream inflates past {_size(2 * MAX_TREE_BYTES)} ({after})", hint=_bomb_hint("MAX_TREE_BYTES")
                ) from None
            raise FetchError(
                f"{archive.name}: a tar header {after} takes more than {_size(MAX_HEADER_BYTES)}", hint=_bomb_hint("MAX_HEADER_BYTES")
            ) from None
        if member is None:
            break
        members.append(member)
        if len(members) > MAX_MEMBERS:
            raise FetchError(f"{archive.name}: more than {MAX_MEMBERS} members (at {member.name!r})", hint=_bomb_hint("MAX_MEMBERS"))
        if member.size < 0:
            raise FetchError(f"{archive.name}: member {member.name!r} declares a negative size", hint=_UNSAFE)
        declared += member.size
        if declared > MAX_TREE_BYTES:
            raise FetchError(
                f"{archive.name}: member {member.name!r} declares {_size(member.size)}, which takes the unpacked tree past {_size(MAX_TREE_BYTES)}",
                hint=_bomb_hint("MAX_TREE_BYTES"),
            )
    if not members:
        # Also what newer Pythons make of an archive whose first header is malformed (a negative size): no members.
        raise FetchError(f"{archive.name}: no members: an empty archive, or one whose first header cannot be read", hint=_UNSAFE)
    # From here on only the data of members already checked is read.
    tar.bounded.limit = tar.offset
    return members


def _special_kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "fifo"
    return f"member of type {member.type!r}"


def _what(member: tarfile.TarInfo) -> str:
    return "a symlink" if member.issym() else "a hardlink" if member.islnk() else "a folder" if member.isdir() else "a file"


def _resolve(rel: str, symlinks: dict[str, str]) -> tuple[str | None, str | None]:
    """Where the symlink rel ends up, following the archive's other symlinks like the kernel would.

    Returns (path inside the tree, None), or (None, the link that leaves the tree), or (None, None) for a loop.
    No folder on the way is itself a symlink member (checked_members refuses that), so only the links' targets
    need following.
    """
    parts = [p for p in posixpath.dirname(rel).split("/") if p]
    pending = symlinks[rel].split("/")
    hops = 0
    via = rel
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None, via
            parts.pop()
            continue
        parts.append(part)
        here = "/".join(parts)
        if here in symlinks:
            hops += 1
            if hops > _SYMLINK_HOPS:
                return None, None
            target = symlinks[here]
            if target.startswith("/"):
                return None, here
            via = here
            parts.pop()
            pending = target.split("/") + pending
    return "/".join(parts), None


def checked_members(archive: Path) -> tuple[tarfile.TarFile, list[tuple[str, tarfile.TarInfo]]]:
    """Open archive and return its members with safe, prefix-stripped relative paths, all from the headers alone.

    Refuses absolute paths, `..`, links that leave the tree (directly or through other links), members inside a
    symlink or a file, names that appear twice, devices and fifos, and bombs (see MAX_TREE_BYTES, MAX_MEMBERS,
    MAX_HEADER_BYTES). A hardlink is returned as the regular file it links to: its content and mode are that file's.
    """
    try:
        tar = _open(archive)
    except _READ_ERRORS as exc:
        raise FetchError(f"{archive.name}: not a readable tar archive ({exc})", hint="the download is corrupt or truncated") from None
    except _TooMuch:
        raise FetchError(f"{archive.name}: the first tar header takes more than {_size(MAX_HEADER_BYTES)}", hint=_bomb_hint("MAX_HEADER_BYTES")) from None
    try:
        return tar, _checked(tar, archive)
    except BaseException:
        tar.close()
        raise


def _checked(tar: _Archive, archive: Path) -> list[tuple[str, tarfile.TarInfo]]:
    try:
        members = _read_headers(tar, archive)
    except _READ_ERRORS as exc:
        raise FetchError(f"{archive.name}: not a readable tar archive ({exc})", hint="the download is corrupt or truncated") from None
    names = [_normalised(m.name, archive) for m in members]
    prefix = _strip_prefix(names)
    entries: list[tuple[str, tarfile.TarInfo]] = []
    by_name: dict[str, tarfile.TarInfo] = {}
    for member, name in zip(members, names, strict=True):
        if prefix and name + "/" == prefix:
            if not member.isdir():
                raise FetchError(f"{archive.name}: member {member.name!r} is {_what(member)}, yet the other members are inside it", hint=_UNSAFE)
            continue
        rel = name[len(prefix):] if prefix else name
        if not rel:
            continue
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise FetchError(f"{archive.name}: member {member.name!r} is a device or special file ({_special_kind(member)})", hint=_UNSAFE)
        earlier = by_name.get(rel)
        if earlier is not None:
            if earlier.isdir() and member.isdir():
                continue
            also = "" if earlier.name == member.name else f" (also as {earlier.name!r})"
            raise FetchError(f"{archive.name}: member {member.name!r} appears twice in the archive{also}", hint=_UNSAFE)
        by_name[rel] = member
        entries.append((rel, member))

    for rel, member in entries:
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            holder = by_name.get("/".join(parts[:depth]))
            if holder is not None and not holder.isdir():
                raise FetchError(f"{archive.name}: member {member.name!r} is inside {holder.name!r}, which is {_what(holder)}", hint=_UNSAFE)

    symlinks = {rel: m.linkname for rel, m in entries if m.issym()}
    files: dict[str, tarfile.TarInfo] = {}
    result = []
    for rel, member in entries:
        if member.issym():
            target = member.linkname
            if not target:
                raise FetchError(f"{archive.name}: link {member.name!r} has an empty target", hint=_UNSAFE)
            if target.startswith("/") or target.startswith("\\"):
                raise FetchError(f"{archive.name}: link {member.name!r} -> {target!r} points outside the tree", hint=_UNSAFE)
            inside, via = _resolve(rel, symlinks)
            if inside is None and via is None:
                raise FetchError(f"{archive.name}: link {member.name!r} -> {target!r} is part of a symlink loop", hint=_UNSAFE)
            if inside is None:
                through = "" if via == rel else f" through link {by_name[str(via)].name!r} -> {symlinks[str(via)]!r}"
                raise FetchError(f"{archive.name}: link {member.name!r} -> {target!r} points outside the tree{through}", hint=_UNSAFE)
        elif member.islnk():
            target = member.linkname
            clean = posixpath.normpath(target)
            outside = target.startswith(("/", "\\")) or clean == ".." or clean.startswith("../") or (prefix and not clean.startswith(prefix))
            if outside:
                raise FetchError(f"{archive.name}: link {member.name!r} -> {target!r} points outside the tree", hint=_UNSAFE)
            source = files.get(clean[len(prefix):])
            if source is None:
                raise FetchError(f"{archive.name}: hardlink {member.name!r} -> {target!r} names no file before it in the archive", hint=_UNSAFE)
            files[rel] = source
            result.append((rel, source))
            continue
        elif member.isfile():
            files[rel] = member
        result.append((rel, member))
    return result


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[None]:
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise FetchError(f"{archive.name}: not a readable tar archive ({exc})", hint="the download is corrupt or truncated") from None
    except _TooMuch:
        raise FetchError(f"{archive.name}: member data runs past the end its headers declare", hint=_UNSAFE) from None


def tree_hash_of_archive(archive: Path) -> str:
    """sha256 over the sorted (path, kind, exec bit, content) of every file and link, like a git tree without folders."""
    tar, members = checked_members(archive)
    entries = []
    with tar, _reading(archive):
        for rel, member in members:
            if member.isdir():
                continue
            if member.issym():
                entries.append((rel, "link", hashlib.sha256(member.linkname.encode()).hexdigest()))
                continue
            data = tar.extractfile(member)
            assert data is not None
            digest = hashlib.sha256()
            while chunk := data.read(1024 * 1024):
                digest.update(chunk)
            entries.append((rel, "exec" if member.mode & 0o111 else "file", digest.hexdigest()))
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
    """Unpack the checked tree into destination, atomically: a half-unpacked tree is never left under its final name.

    Every member is checked before the first byte is written; files are created exclusively, so nothing is ever
    written through a link.
    """
    tar, members = checked_members(archive)
    with tar:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=destination.name + ".", suffix=".partial", dir=destination.parent))
        try:
            with _reading(archive):
                for rel, member in members:
                    target = staging / rel
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if member.issym():
                        target.symlink_to(member.linkname)
                        continue
                    data = tar.extractfile(member)
                    assert data is not None
                    with target.open("xb") as out:
                        shutil.copyfileobj(data, out)
                    target.chmod(0o755 if member.mode & 0o111 else 0o644)
            try:
                staging.rename(destination)
            except OSError:
                # Another build unpacked the same verified tree first: theirs is as good as ours.
                if not destination.is_dir():
                    raise
        finally:
            # After a successful rename there is nothing left here to remove.
            shutil.rmtree(staging, ignore_errors=True)


def copy_writable(source: Path, destination: Path, ignore: Callable[[str, list[str]], Iterable[str]] | None = None) -> None:
    """Copy a read-only tree (Go's module cache, the cached pristine trees) to destination, symlinks as symlinks,
    with every file and folder made writable for its owner, so that patches and builds can change it."""
    shutil.copytree(source, destination, symlinks=True, ignore=ignore)
    for path in [destination, *destination.rglob("*")]:
        if not path.is_symlink():  # chmod would follow the link
            path.chmod(path.stat().st_mode | 0o200)
