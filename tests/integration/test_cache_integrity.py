"""The shared cache is checked before use: an altered or truncated tree is found, removed and fetched again
(offline: a clear error); workspaces sharing the cache download each file once."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from dock32.model.config import ArchiveSource
from dock32.model.settings import settings_from_env
from dock32.sources import cache, fetch
from dock32.sources.trees import tree_hash_of_archive

from .conftest import Mirror, make_tarball, run_dock32

pytestmark = pytest.mark.integration

TARGET = Path("build") / "native32-i386"


def cached_source(root: Path, component: str) -> Path:
    return Path(json.loads((root / "build" / "sources" / f"{component}.json").read_text())["tree"])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_altered_cached_tarball_tree_is_fetched_again_before_use(tiny, mirror: Mirror) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    assert run_dock32(root, "build", env=env).returncode == 0
    cinit = digest(root / TARGET / "bin" / "cinit")
    tree = cached_source(root, "cinit")
    (tree / "cinit.c").write_text('int main(void) { return 42; }\n')  # tampered with, same name
    requests_before = len(mirror.requests)
    # The next use of the tree: its prepared copy is gone, so `source:cinit` runs again.
    (root / TARGET / "src" / "cinit" / ".dock32-prepared").unlink()
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 0, result.stderr
    assert f"warning: cinit: the cached tree {tree.name} was altered on disk; removed, fetching it again" in result.stderr
    assert [r for r in mirror.requests[requests_before:] if r.endswith("cinit-1.0.tar.gz")], "the tarball was not fetched again"
    assert "return 42" not in (tree / "cinit.c").read_text()
    assert digest(root / TARGET / "bin" / "cinit") == cinit


def test_a_truncated_file_in_a_cached_go_module_is_fetched_again(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    assert run_dock32(root, "build", env=env).returncode == 0
    hello = digest(root / TARGET / "bin" / "hello")
    tree = cached_source(root, "hello")
    main = tree / "main.go"
    main.chmod(0o644)
    main.write_bytes(main.read_bytes()[:40])  # cut short
    (root / TARGET / "src" / "hello" / ".dock32-prepared").unlink()
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 0, result.stderr
    assert "warning: hello: the cached tree" in result.stderr and "was altered on disk" in result.stderr
    assert digest(root / TARGET / "bin" / "hello") == hello


def test_offline_an_altered_tree_is_a_clear_error_and_nothing_is_built_from_it(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    assert run_dock32(root, "build", env=env).returncode == 0
    tree = cached_source(root, "cinit")
    (tree / "cinit.c").write_text("tampered\n")
    (root / TARGET / "src" / "cinit" / ".dock32-prepared").unlink()
    (root / TARGET / "bin" / "cinit").unlink()
    result = run_dock32(root, "build", "--offline", env=env)
    assert result.returncode == 3, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert "was altered on disk (its hash no longer matches the pin); it was removed" in line
    assert "hint: run once without --offline to fetch it again" in line
    assert not tree.exists()
    assert not (root / TARGET / "bin" / "cinit").exists()


def test_the_cheap_check_trusts_an_untouched_tree_and_doubts_a_touched_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    calls: list[Path] = []

    def full_hash(path: Path) -> str:
        calls.append(path)
        return "sha256:good" if (path / "a").read_text() == "a\n" else "sha256:bad"

    assert cache.is_intact(tree, "sha256:good", full_hash) and len(calls) == 1  # no record yet: hashed in full
    assert cache.is_intact(tree, "sha256:good", full_hash) and len(calls) == 1  # fingerprint unchanged: trusted
    time.sleep(0.01)
    (tree / "a").write_text("b\n")
    assert not cache.is_intact(tree, "sha256:good", full_hash) and len(calls) == 2
    cache.discard(tree)
    assert not tree.exists() and not cache.is_intact(tree, "sha256:good", full_hash)


def test_two_workspaces_fetching_the_same_tarball_download_it_once(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_tarball(mirror.root / "x-1.0.tar.gz", "x-1.0", {"main.c": "int main(void) { return 0; }\n"})
    source = ArchiveSource(urls=(mirror.url("files/x-1.0.tar.gz"),), tree=tree_hash_of_archive(archive))
    settings = settings_from_env(tmp_path, env={"DOCK32_CACHE_DIR": str(tmp_path / "shared-cache")})
    slow_download = fetch._download

    def download_slowly(url: str, destination: Path, label: str) -> None:
        time.sleep(0.5)  # long enough for the other one to arrive while this one is fetching
        slow_download(url, destination, label)

    monkeypatch.setattr(fetch, "_download", download_slowly)
    trees: list[Path] = []
    workers = [threading.Thread(target=lambda: trees.append(fetch.fetch_archive("x", source, settings).tree)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(trees) == 2 and trees[0] == trees[1]
    assert mirror.requests == ["/files/x-1.0.tar.gz"]
    assert not list(settings.downloads_dir.glob("*.part"))
