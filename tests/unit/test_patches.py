"""Series parsing and version ranges (applying patches runs GNU patch: see the integration tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dock32.core.errors import PatchError
from dock32.sources.patches import Patch, check_paths, named_paths, read_series


def series(tmp_path: Path, text: str, patches: tuple[str, ...] = ("a.patch", "b.patch")) -> Path:
    for name in patches:
        (tmp_path / name).write_text("--- a/x\n+++ b/x\n", encoding="utf-8")
    (tmp_path / "series").write_text(text, encoding="utf-8")
    return tmp_path


def test_order_options_and_comments(tmp_path: Path) -> None:
    parsed = read_series(series(tmp_path, "# fixes\nb.patch -p0\n\na.patch versions=>=1.3,<1.4  # only the 1.3 line\n"))
    assert [p.path.name for p in parsed] == ["b.patch", "a.patch"]
    assert parsed[0].strip == 0 and parsed[1].strip == 1
    assert parsed[1].versions == ((">=", (1, 3)), ("<", (1, 4)))


def test_no_series_means_no_patches(tmp_path: Path) -> None:
    assert read_series(tmp_path) == []


@pytest.mark.parametrize(
    ("version", "applies"),
    [("1.3.0", True), ("v1.3.3", True), ("1.3", True), ("1.4.0", False), ("1.2.9", False), ("v1.4.0-rc.1", False)],
)
def test_version_range(version: str, applies: bool) -> None:
    patch = Patch(path=Path("x.patch"), strip=1, versions=((">=", (1, 3)), ("<", (1, 4))))
    assert patch.applies_to(version) is applies


def test_missing_patch_names_series_line(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match=r"series:2: patch c.patch does not exist"):
        read_series(series(tmp_path, "a.patch\nc.patch\n"))


def test_bad_range_and_option(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match=r"series:1: bad version range '~1.3'"):
        read_series(series(tmp_path, "a.patch versions=~1.3\n"))
    with pytest.raises(PatchError, match=r"series:1: unknown option '--fuzz'"):
        read_series(series(tmp_path, "a.patch --fuzz\n"))


# --- file names in patch headers: checked before GNU patch runs -------------------------------

GIT_PATCH = """From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] example

The commit message.
---
 main.go | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/main.go b/main.go
index 1111111..2222222 100644
--- a/main.go\t2026-01-01 00:00:00.000000000 +0000
+++ b/main.go\t2026-01-01 00:00:00.000000000 +0000
@@ -1,2 +1,2 @@
 package main
--- ../../removed line that looks like a header
+++ /added line that looks like a header
\\ No newline at end of file
@@ -10 +10 @@
--- /etc/another removed line
+++ /etc/another added line
diff --git a/new.go b/new.go
new file mode 100644
--- /dev/null
+++ b/new.go
@@ -0,0 +1 @@
+package main
diff --git a/gone.go b/gone.go
deleted file mode 100644
--- a/gone.go
+++ /dev/null
@@ -1 +0,0 @@
-package main
"""


def names(text: str, strip: int = 1) -> list[tuple[str, str, str | None]]:
    return [(n.kind, n.raw, n.path) for n in named_paths(text, strip)]


def test_headers_are_read_and_hunk_lines_are_not() -> None:
    assert names(GIT_PATCH) == [
        ("git", "a/main.go", "main.go"),
        ("git", "b/main.go", "main.go"),
        ("old", "a/main.go", "main.go"),
        ("new", "b/main.go", "main.go"),
        ("git", "a/new.go", "new.go"),
        ("git", "b/new.go", "new.go"),
        ("old", "/dev/null", None),
        ("new", "b/new.go", "new.go"),
        ("git", "a/gone.go", "gone.go"),
        ("git", "b/gone.go", "gone.go"),
        ("old", "a/gone.go", "gone.go"),
        ("new", "/dev/null", None),
    ]


@pytest.mark.parametrize(
    ("line", "strip", "path"),
    [
        ("--- a/x/y.go", 1, "x/y.go"),
        ("--- a/x/y.go", 2, "y.go"),
        ("--- a/x/y.go", 0, "a/x/y.go"),
        ("--- a//x/y.go", 1, "x/y.go"),  # a run of slashes is one separator
        ("--- y.go", 1, None),  # too few components: GNU patch ignores the name
        ("--- /etc/passwd", 0, "/etc/passwd"),
        ("--- /etc/passwd", 1, "etc/passwd"),  # -p1 strips the empty first component
        ("--- a/b/../../../x", 1, "b/../../../x"),
        ("--- a/with space.go\t2026-01-01", 1, "with space.go"),  # a tab before the date allows spaces
        ("--- a/x.go 2026-01-01 00:00", 1, "x.go"),  # without a tab the name ends at the first space
        ('--- "a/quo\\"ted\\040\\303\\251.go"\t2026', 1, 'quo"ted é.go'),
        ('+++ "b/../../evil\\000.go"', 1, "../../evil"),  # an escaped NUL ends the name, as in GNU patch's C string
        ("  X--- a/indented.go", 1, "indented.go"),
        ("- --- a/rfc934.go", 1, "rfc934.go"),
        ("+++ b/new.go", 1, "new.go"),
        ("*** a/context.go\t2026", 1, "context.go"),
        ("Index: a/index name.go", 1, "index name.go"),
        ("+++ b/../evil\0.go", 1, "../evil"),
    ],
)
def test_names_are_taken_as_gnu_patch_takes_them(line: str, strip: int, path: str | None) -> None:
    assert [n.path for n in named_paths(line + "\n", strip)] == [path]


def test_git_lines_rename_copy_and_symlinks() -> None:
    text = (
        'diff --git a/old name.go "b/new\\tname.go"\n'
        "similarity index 90%\n"
        "rename from old name.go\n"
        "rename to ../../elsewhere.go\n"
        "copy from x.go\n"
        'copy to "y\\n.go"\n'
        "diff --git a/link b/link\n"
        "new file mode 120000\n"
    )
    assert names(text) == [
        ("git", "a/old", "old"),
        ("git", "name.go", None),
        ("git", "b/new\tname.go", "new\tname.go"),
        ("rename", "old name.go", "old name.go"),
        ("rename", "../../elsewhere.go", "../../elsewhere.go"),  # git leaves out a/ b/ here: checked unstripped
        ("copy", "x.go", "x.go"),
        ("copy", "y\n.go", "y\n.go"),
        ("git", "a/link", "link"),
        ("git", "b/link", "link"),
        ("symlink", "b/link", "link"),
    ]


def test_hunk_lines_are_skipped_only_where_gnu_patch_reads_a_hunk() -> None:
    # Before any file header, GNU patch takes `@@ -` for text: the lines after it are headers.
    garbage_first = "@@ -1,2 +1,2 @@\n--- a/../../evil\n+++ b/../../evil\n@@ -1 +1 @@\n-x\n+y\n"
    assert [n.path for n in named_paths(garbage_first, 1)] == ["../../evil", "../../evil"]
    # After a context diff, GNU patch no longer starts unified hunks.
    context_then_unified = (
        "*** a/x.c\n--- b/x.c\n***************\n*** 1 ****\n! a\n--- 1 ----\n! b\n"
        "@@ -1,2 +1,2 @@\n--- a/../../evil\n+++ b/../../evil\n"
    )
    assert "../../evil" in [n.path for n in named_paths(context_then_unified, 1)]
    # A hunk that runs out early (malformed) ends there; the next hunk of the same file must be unindented.
    short = "--- a/x\n+++ b/x\n@@ -1,5 +1,5 @@\n x\n=\n--- a/../evil\n"
    assert [n.path for n in named_paths(short, 1)] == ["x", "x", "../evil"]
    indented_next = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-x\n+y\n X@@ -1,2 +1,2 @@\n--- a/../evil\n+++ b/../evil\n"
    assert [n.path for n in named_paths(indented_next, 1)] == ["x", "x", "../evil", "../evil"]
    # Lines split at newlines only, as GNU patch splits them, and names end at any white space.
    assert [n.path for n in named_paths("text\x0c--- a/../x\n+++ b/ok\r../../y\n", 1)] == ["ok"]


def make_patch(tmp_path: Path, text: str, name: str = "0009-evil.patch", strip: int = 1) -> Patch:
    folder = tmp_path / "patches" / "engine"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return Patch(path=folder / name, strip=strip, versions=())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "main.go").write_text("package main\n")
    (tree / "outside-link").symlink_to("../elsewhere")
    (tree / "inside-link").symlink_to("sub")
    (tree / "abs-link").symlink_to(tmp_path / "elsewhere")
    return tree


@pytest.mark.parametrize(
    ("header", "strip", "raw", "hint"),
    [
        ("+++ b/../escape.go", 1, "b/../escape.go", r"line 2 \('../escape.go' after -p1\): it has a '\.\.' component"),
        ("+++ b/sub/../../escape.go", 1, "b/sub/../../escape.go", "it has a '..' component"),
        ("+++ /etc/passwd", 0, "/etc/passwd", "line 2: it is absolute"),
        ("+++ b/outside-link/x.go", 1, "b/outside-link/x.go", "it leads to .*elsewhere/x.go through a symlink in the tree"),
        ("+++ b/abs-link", 1, "b/abs-link", "through a symlink in the tree"),
        ("Index: ../escape.go", 0, "../escape.go", "line 2: it has a '..' component"),
        ("rename to ../escape.go", 1, "../escape.go", r"line 2: it has a '\.\.' component"),
    ],
)
def test_a_name_outside_the_tree_is_refused_in_one_line(tmp_path: Path, tree: Path, header: str, strip: int, raw: str, hint: str) -> None:
    patch = make_patch(tmp_path, f"--- /dev/null\n{header}\n@@ -0,0 +1 @@\n+x\n", strip=strip)
    with pytest.raises(PatchError) as refused:
        check_paths(patch, tree)
    message = str(refused.value)
    assert message.startswith(f"patches/engine/0009-evil.patch: refers to {raw!r}, outside the engine tree (hint: ")
    assert re.search(hint, message) and "\n" not in message


def test_a_patch_that_makes_a_symlink_is_refused(tmp_path: Path, tree: Path) -> None:
    patch = make_patch(tmp_path, "diff --git a/evil b/evil\nnew file mode 120000\n--- /dev/null\n+++ b/evil\n@@ -0,0 +1 @@\n+../outside\n")
    with pytest.raises(PatchError, match=r"^patches/engine/0009-evil.patch: makes 'b/evil' a symbolic link \(hint: line 2: "):
        check_paths(patch, tree)


def test_names_inside_the_tree_pass(tmp_path: Path, tree: Path) -> None:
    text = "--- a/main.go\n+++ b/main.go\n@@ -1 +1 @@\n-package main\n+package other\n--- /dev/null\n+++ b/inside-link/new.go\n@@ -0,0 +1 @@\n+x\n"
    check_paths(make_patch(tmp_path, text), tree)
    check_paths(make_patch(tmp_path, "--- /dev/null\n+++ b/sub/new/deeper/file.go\n@@ -0,0 +1 @@\n+x\n", name="b.patch"), tree)


def test_the_projects_own_patches_pass(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "patches"
    checked = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for patch in read_series(folder):
            check_paths(patch, tmp_path)
            checked += 1
    assert checked >= 1
