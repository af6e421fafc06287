"""Hostile input with the real tools: a patch series run through GNU patch, an archive bomb served over HTTP.

The unit tests cover each refusal on its own; these check that the real code paths refuse before anything
is written: the tree stays as it was, and nothing appears outside it.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dock32.core.errors import FetchError, PatchError
from dock32.model.config import ArchiveSource
from dock32.model.settings import settings_from_env
from dock32.sources import fetch, trees
from dock32.sources.patches import apply_series, read_series
from dock32.sources.trees import tree_hash_of_dir

from .conftest import Mirror

pytestmark = pytest.mark.integration

GOOD = '--- a/main.go\n+++ b/main.go\n@@ -1,3 +1,3 @@\n package main\n \n-func main() {}\n+func main() { println("patched") }\n'


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tree with a symlink that leads out of it, an empty folder beside it, and patches/engine/."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "main.go").write_text("package main\n\nfunc main() {}\n")
    (tree / "vendor").symlink_to("../elsewhere")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    patches = tmp_path / "patches" / "engine"
    patches.mkdir(parents=True)
    return tree, elsewhere, patches


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): (str(p.readlink()) if p.is_symlink() else p.read_text()) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(
    ("evil", "complaint"),
    [
        # A good hunk first: GNU patch would apply it before reaching the bad name, were it ever run.
        (GOOD + "--- /dev/null\n+++ b/../escape.go\n@@ -0,0 +1 @@\n+package escape\n", "refers to 'b/../escape.go', outside the engine tree"),
        (GOOD + "--- /dev/null\n+++ b/vendor/pwned.go\n@@ -0,0 +1 @@\n+package pwned\n", "refers to 'b/vendor/pwned.go', outside the engine tree"),
        (
            GOOD + "diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+../elsewhere\n\\ No newline at end of file\n",
            "makes 'b/link' a symbolic link",
        ),
    ],
)
def test_series_with_a_patch_outside_its_tree_fails_and_changes_nothing(project: tuple[Path, Path, Path], evil: str, complaint: str) -> None:
    tree, elsewhere, patches = project
    (patches / "0001-evil.patch").write_text(evil)
    (patches / "series").write_text("0001-evil.patch\n")
    before, hash_before = snapshot(tree), tree_hash_of_dir(tree)
    with pytest.raises(PatchError, match=f"^patches/engine/0001-evil.patch: {complaint} \\(hint: line "):
        apply_series(read_series(patches), tree, "28.0.0")
    assert snapshot(tree) == before and tree_hash_of_dir(tree) == hash_before
    assert list(elsewhere.iterdir()) == []
    assert not (tree.parent / "escape.go").exists()


def test_a_good_patch_still_applies(project: tuple[Path, Path, Path]) -> None:
    tree, elsewhere, patches = project
    (patches / "0001-good.patch").write_text(GOOD + "--- /dev/null\n+++ b/cmd/new.go\n@@ -0,0 +1 @@\n+package cmd\n")
    (patches / "series").write_text("0001-good.patch\n")
    applied = apply_series(read_series(patches), tree, "28.0.0")
    assert [p.path.name for p in applied] == ["0001-good.patch"]
    assert 'println("patched")' in (tree / "main.go").read_text() and (tree / "cmd" / "new.go").is_file()
    assert list(elsewhere.iterdir()) == []


def test_archive_bomb_from_a_mirror_leaves_no_tree_and_no_download(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(trees, "MAX_TREE_BYTES", 1024 * 1024)
    with tarfile.open(mirror.root / "bomb.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("x-1.0/zeros")
        info.size = 16 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert (mirror.root / "bomb.tar.gz").stat().st_size < 64 * 1024
    settings = settings_from_env(tmp_path, env={"DOCK32_CACHE_DIR": str(tmp_path / "cache")})
    with pytest.raises(FetchError, match=r"member 'x-1.0/zeros' declares 16.0 MiB, which takes the unpacked tree past 1.0 MiB"):
        fetch.fetch_archive("x", ArchiveSource(urls=(mirror.url("files/bomb.tar.gz"),), tree="sha256:" + "1" * 64), settings)
    cache = tmp_path / "cache"
    assert not (cache / "trees").exists() and not (cache / "quarantine").exists()
    assert list((cache / "downloads").iterdir()) == []
