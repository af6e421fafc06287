"""Tree hashes and archive safety checks, on tarballs made in the test."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dock32.errors import FetchError
from dock32.trees import tree_hash_of_archive, tree_hash_of_dir, unpack


def make_tar(path: Path, entries: list[tuple[str, str, str | bytes | None]], mode: str = "w:gz") -> Path:
    """entries: (name, kind, data) with kind file, exec, dir, symlink (data = target), hardlink, fifo."""
    with tarfile.open(path, mode) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            payload = None
            if kind in ("file", "exec"):
                payload = data.encode() if isinstance(data, str) else (data or b"")
                info.size = len(payload)
                info.mode = 0o755 if kind == "exec" else 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


TREE = [("pkg-1.0/", "dir", None), ("pkg-1.0/a.c", "file", "int main(){}"), ("pkg-1.0/run.sh", "exec", "#!/bin/sh\n"), ("pkg-1.0/link", "symlink", "a.c")]


def test_same_tree_in_other_wrapping_and_compression_has_the_same_hash(tmp_path: Path) -> None:
    upstream = make_tar(tmp_path / "upstream.tar.gz", TREE)
    # A mirror's tarball: other top folder, no folder entries, other order and compression.
    mirror_entries = [(n.replace("pkg-1.0", "pkg_1.0.orig"), k, d) for n, k, d in reversed(TREE) if k != "dir"]
    mirror = make_tar(tmp_path / "mirror.tar.xz", mirror_entries, mode="w:xz")
    assert tree_hash_of_archive(upstream) == tree_hash_of_archive(mirror)


def test_content_mode_and_link_target_all_count(tmp_path: Path) -> None:
    base = tree_hash_of_archive(make_tar(tmp_path / "a.tgz", TREE))
    changed_content = [(n, k, "int main(){return 1;}" if n.endswith("a.c") else d) for n, k, d in TREE]
    lost_exec_bit = [(n, "file" if k == "exec" else k, d) for n, k, d in TREE]
    other_link = [(n, k, "run.sh" if k == "symlink" else d) for n, k, d in TREE]
    for i, variant in enumerate([changed_content, lost_exec_bit, other_link]):
        assert tree_hash_of_archive(make_tar(tmp_path / f"v{i}.tgz", variant)) != base


def test_unpacked_tree_hashes_the_same_as_its_archive(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tgz", TREE)
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "a.c").read_text() == "int main(){}"
    assert (tmp_path / "out" / "link").readlink() == Path("a.c")
    assert tree_hash_of_dir(tmp_path / "out") == tree_hash_of_archive(archive)


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ([("../evil", "file", "x")], "points outside the tree"),
        ([("pkg/../../evil", "file", "x")], "points outside the tree"),
        ([("/etc/passwd", "file", "x")], "absolute path"),
        ([("pkg/a", "file", "x"), ("pkg/up", "symlink", "../../etc")], "points outside the tree"),
        ([("pkg/a", "file", "x"), ("pkg/abs", "symlink", "/etc/passwd")], "points outside the tree"),
        ([("pkg/a", "file", "x"), ("pkg/hard", "hardlink", "../outside")], "points outside the tree"),
        ([("pkg/a", "file", "x"), ("pkg/pipe", "fifo", None)], "device or special file"),
    ],
)
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path: Path, entries: list, complaint: str) -> None:  # type: ignore[type-arg]
    archive = make_tar(tmp_path / "bad.tgz", entries)
    with pytest.raises(FetchError, match=complaint):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [archive]


def test_truncated_archive_is_a_fetch_error(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tgz", TREE)
    archive.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(FetchError, match="not a readable tar archive"):
        tree_hash_of_archive(archive)
