"""Tree hashes and archive safety checks, on tarballs made in the test."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from dock32.core.errors import FetchError
from dock32.sources import trees
from dock32.sources.trees import tree_hash_of_archive, tree_hash_of_dir, unpack


def make_tar(path: Path, entries: list[tuple[str, str, str | bytes | None]], mode: str = "w:gz") -> Path:
    """entries: (name, kind, data) with kind file, exec, dir, symlink (data = target), hardlink, fifo, chr, blk."""
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
            elif kind in ("chr", "blk"):
                info.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                info.devmajor, info.devminor = 1, 3
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
        # Links that climb out, directly or through other links of the archive.
        ([("pkg/a/b", "symlink", "../../x")], r"link 'pkg/a/b' -> '../../x' points outside the tree"),
        ([("pkg/a/b", "symlink", "../../../x")], r"link 'pkg/a/b' -> '../../../x' points outside the tree"),
        ([("pkg/l1", "symlink", "l2"), ("pkg/l2", "symlink", "../x")], r"link 'pkg/l1' -> 'l2' points outside the tree through link 'pkg/l2' -> '../x'"),
        ([("pkg/l1", "symlink", "l2"), ("pkg/l2", "symlink", "/etc")], r"link 'pkg/l1' -> 'l2' points outside the tree through link 'pkg/l2' -> '/etc'"),
        # Each link alone stays inside; `d/up/..` is the tree's parent once d/up is followed.
        ([("pkg/d/up", "symlink", ".."), ("pkg/esc", "symlink", "d/up/..")], r"link 'pkg/esc' -> 'd/up/\.\.' points outside the tree through link 'pkg/d/up'"),
        ([("pkg/a", "symlink", "b"), ("pkg/b", "symlink", "a")], "symlink loop"),
        ([("pkg/a", "symlink", "")], "empty target"),
        # Hardlinks name a file earlier in the same tree, nothing else.
        ([("pkg/a", "file", "x"), ("pkg/hard", "hardlink", "/etc/passwd")], r"link 'pkg/hard' -> '/etc/passwd' points outside the tree"),
        ([("pkg/a", "file", "x"), ("pkg/hard", "hardlink", "pkg/../../x")], "points outside the tree"),
        ([("pkg/hard", "hardlink", "pkg/a"), ("pkg/a", "file", "x")], r"hardlink 'pkg/hard' -> 'pkg/a' names no file before it"),
        ([("pkg/a", "file", "x"), ("pkg/hard", "hardlink", "pkg/missing")], "names no file before it"),
        # Members that would be written through a link or into a file.
        (
            [("pkg/sub/", "dir", None), ("pkg/evil", "symlink", "sub"), ("pkg/evil/file", "file", "x")],
            r"member 'pkg/evil/file' is inside 'pkg/evil', which is a symlink",
        ),
        ([("pkg/evil/file", "file", "x"), ("pkg/evil", "symlink", "sub")], r"member 'pkg/evil/file' is inside 'pkg/evil', which is a symlink"),
        ([("pkg/evil", "symlink", "/tmp"), ("pkg/evil/file", "file", "x")], r"member 'pkg/evil/file' is inside 'pkg/evil', which is a symlink"),
        ([("pkg/a", "file", "x"), ("pkg/a/b", "file", "y")], r"member 'pkg/a/b' is inside 'pkg/a', which is a file"),
        ([("pkg", "symlink", "/etc"), ("pkg/passwd", "file", "x")], r"member 'pkg' is a symlink, yet the other members are inside it"),
        # A later member of the same name would replace the checked one.
        ([("pkg/a", "file", "x"), ("pkg/a", "symlink", "/etc/passwd")], r"member 'pkg/a' appears twice"),
        ([("pkg/a", "file", "x"), ("pkg/./a", "symlink", "b")], r"member 'pkg/./a' appears twice in the archive \(also as 'pkg/a'\)"),
        ([("pkg/a", "file", "x"), ("pkg/a", "file", "y")], r"member 'pkg/a' appears twice"),
        ([("pkg/a", "file", "x"), ("pkg/tty", "chr", None)], r"member 'pkg/tty' is a device or special file \(character device\)"),
        ([("pkg/a", "file", "x"), ("pkg/sda", "blk", None)], r"member 'pkg/sda' is a device or special file \(block device\)"),
    ],
)
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path: Path, entries: list, complaint: str) -> None:  # type: ignore[type-arg]
    archive = make_tar(tmp_path / "bad.tgz", entries)
    with pytest.raises(FetchError, match=complaint) as refused:
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [archive]
    # One line that names the archive, and the same refusal when only hashing (as fetch does first).
    assert str(refused.value).startswith("bad.tgz: ") and "\n" not in str(refused.value) and "(hint: " in str(refused.value)
    with pytest.raises(FetchError, match=complaint):
        tree_hash_of_archive(archive)


def test_truncated_archive_is_a_fetch_error(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tgz", TREE)
    archive.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(FetchError, match="not a readable tar archive"):
        tree_hash_of_archive(archive)


def test_symlink_through_another_link_to_outside_writes_nothing_there(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = make_tar(tmp_path / "bad.tgz", [("pkg/evil", "symlink", str(outside)), ("pkg/evil/file", "file", "x")])
    with pytest.raises(FetchError, match="inside 'pkg/evil', which is a symlink"):
        unpack(archive, tmp_path / "out")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tgz", "outside"]


def test_links_that_stay_inside_and_repeated_folders_are_fine(tmp_path: Path) -> None:
    entries: list[tuple[str, str, str | bytes | None]] = [
        ("./pkg/", "dir", None),
        ("./pkg/sub/", "dir", None),
        ("./pkg/sub/a.c", "exec", "int a;"),
        ("./pkg/sub/", "dir", None),
        ("./pkg/lib", "symlink", "sub"),
        ("./pkg/sub/up", "symlink", ".."),
        ("./pkg/via", "symlink", "lib/../sub/up/sub/a.c"),
        ("./pkg/copy.c", "hardlink", "./pkg/sub/a.c"),
        ("./pkg/copy2.c", "hardlink", "pkg/copy.c"),
    ]
    archive = make_tar(tmp_path / "ok.tgz", entries)
    unpack(archive, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "via").read_text() == "int a;"
    # A hardlink is unpacked as a copy of the file it names, with that file's mode.
    for name in ("copy.c", "copy2.c"):
        assert not (out / name).is_symlink() and (out / name).read_text() == "int a;" and (out / name).stat().st_mode & 0o111
    assert tree_hash_of_dir(out) == tree_hash_of_archive(archive)


def test_negative_size_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "neg.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pkg/a")
        info.pax_headers = {"size": "-1048576"}
        info.size = 1
        tar.addfile(info, io.BytesIO(b"a"))
    # Older Pythons' tarfile hands the header over and dock32 refuses it; newer ones (3.11.2-6+deb12u8) drop the
    # member, and dock32 refuses the archive that is left with none.
    with pytest.raises(FetchError, match="member 'pkg/a' declares a negative size|neg.tar: no members"):
        unpack(archive, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [archive]


def test_an_archive_without_members_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tar"
    with tarfile.open(archive, "w"):
        pass
    with pytest.raises(FetchError, match=r"^empty.tar: no members"):
        unpack(archive, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [archive]


# --- bombs ------------------------------------------------------------------------------------


def assert_nothing_written(tmp_path: Path, archive: Path) -> None:
    """No tree under its final name, no staging folder, nothing else."""
    assert list(tmp_path.iterdir()) == [archive]


def test_gzip_of_zeros_that_inflates_past_the_limit_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trees, "MAX_TREE_BYTES", 1024 * 1024)
    archive = make_tar(tmp_path / "bomb.tgz", [("pkg/a.c", "file", "int a;"), ("pkg/zeros", "file", bytes(8 * 1024 * 1024))])
    assert archive.stat().st_size < 64 * 1024
    with pytest.raises(FetchError, match=r"^bomb.tgz: member 'pkg/zeros' declares 8.0 MiB, which takes the unpacked tree past 1.0 MiB .*MAX_TREE_BYTES"):
        unpack(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, archive)
    with pytest.raises(FetchError, match="past 1.0 MiB"):
        tree_hash_of_archive(archive)


def test_the_limit_is_on_the_sum_of_members_and_a_tree_at_the_limit_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trees, "MAX_TREE_BYTES", 3 * 1000)
    at_limit = make_tar(tmp_path / "ok.tgz", [(f"pkg/{i}", "file", b"x" * 1000) for i in range(3)])
    unpack(at_limit, tmp_path / "out")
    assert len(list((tmp_path / "out").iterdir())) == 3
    over = make_tar(tmp_path / "over.tgz", [(f"pkg/{i}", "file", b"x" * 1000) for i in range(4)])
    with pytest.raises(FetchError, match="member 'pkg/3' declares"):
        unpack(over, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_huge_declared_member_is_refused_before_its_data_is_read(tmp_path: Path) -> None:
    """3 GiB declared and not a byte of it present: the refusal comes from the header alone, with the real limit."""
    archive = tmp_path / "huge.tgz"
    info = tarfile.TarInfo("pkg/huge")
    info.size = 3 * 1024**3
    with gzip.open(archive, "wb") as out:
        out.write(info.tobuf(tarfile.GNU_FORMAT) + bytes(1024))
    with pytest.raises(FetchError, match=r"member 'pkg/huge' declares 3.0 GiB, which takes the unpacked tree past 2.0 GiB"):
        unpack(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, archive)


def test_sparse_member_counts_at_its_full_size(tmp_path: Path) -> None:
    archive = tmp_path / "sparse.tgz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pkg/sparse")
        info.pax_headers = {"GNU.sparse.map": "0,0", "GNU.sparse.size": str(10 * 1024**3), "GNU.sparse.name": "pkg/sparse"}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(FetchError, match=r"member 'pkg/sparse' declares 10.0 GiB"):
        unpack(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, archive)


def test_too_many_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trees, "MAX_MEMBERS", 10)
    archive = make_tar(tmp_path / "many.tgz", [(f"pkg/{i:02}", "file", "") for i in range(11)])
    with pytest.raises(FetchError, match=r"^many.tgz: more than 10 members \(at 'pkg/10'\) .*MAX_MEMBERS"):
        unpack(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, archive)


@pytest.mark.parametrize("header", ["pax", "gnu-long-name"])
def test_header_that_inflates_to_megabytes_is_never_read_into_memory(tmp_path: Path, header: str) -> None:
    """tarfile reads a pax record or a GNU long name whole: a few KiB of gzip would otherwise become gigabytes."""
    archive = tmp_path / "header.tgz"
    if header == "pax":
        with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(tarfile.TarInfo("pkg/first"), io.BytesIO(b""))
            info = tarfile.TarInfo("pkg/a")
            info.pax_headers = {"comment": "x" * (3 * 1024 * 1024)}
            tar.addfile(info, io.BytesIO(b""))
        complaint = r"^header.tgz: a tar header after member 'pkg/first' takes more than 1.0 MiB .*MAX_HEADER_BYTES"
    else:
        with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
            tar.addfile(tarfile.TarInfo("pkg/" + "a/" * (1024 * 1024) + "x"), io.BytesIO(b""))
        complaint = r"^header.tgz: the first tar header takes more than 1.0 MiB"
    assert archive.stat().st_size < 64 * 1024
    with pytest.raises(FetchError, match=complaint):
        unpack(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, archive)


def test_long_names_within_the_header_limit_are_fine(tmp_path: Path) -> None:
    name = "pkg/" + "/".join(["deep"] * 60) + "/file.go"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        archive = tmp_path / f"long{fmt}.tgz"
        with tarfile.open(archive, "w:gz", format=fmt) as tar:
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"ok"))
        unpack(archive, tmp_path / f"out{fmt}")
        assert (tmp_path / f"out{fmt}" / name.removeprefix("pkg/")).read_text() == "ok"


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_every_compression_is_read_through_the_bounded_stream(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_tar(tmp_path / "a.tar", TREE, mode=mode)
    assert tree_hash_of_archive(archive) == tree_hash_of_archive(make_tar(tmp_path / "b.tgz", TREE))
    big = make_tar(tmp_path / "big.tar", [("pkg/big", "file", b"x" * 5000)], mode=mode)
    monkeypatch.setattr(trees, "MAX_TREE_BYTES", 4096)
    with pytest.raises(FetchError, match="member 'pkg/big' declares 4.9 KiB"):
        tree_hash_of_archive(big)


def test_headers_alone_may_not_inflate_past_twice_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty members declare nothing, but each still costs a header to inflate and parse."""
    monkeypatch.setattr(trees, "MAX_TREE_BYTES", 4096)
    archive = make_tar(tmp_path / "headers.tgz", [(f"pkg/{i:02}", "file", "") for i in range(20)])
    with pytest.raises(FetchError, match=r"^headers.tgz: the tar stream inflates past 8.0 KiB \(after member 'pkg/\d+'\)"):
        unpack(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, archive)
