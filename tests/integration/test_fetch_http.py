"""fetch_archive against a real HTTP server on 127.0.0.1: mirrors, retries, truncation, hash mismatch, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from dock32.core.errors import FetchError
from dock32.model.config import ArchiveSource
from dock32.model.settings import settings_from_env
from dock32.sources import fetch
from dock32.sources.trees import tree_hash_of_archive

from .conftest import Mirror, make_tarball

pytestmark = pytest.mark.integration

FILES = {"CMakeLists.txt": "project(x C)\n", "main.c": "int main(void) { return 0; }\n"}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "BACKOFF_SECONDS", 0.01)


@pytest.fixture
def tarball(mirror: Mirror) -> tuple[str, str]:
    archive = make_tarball(mirror.root / "x-1.0.tar.gz", "x-1.0", FILES)
    return archive.name, tree_hash_of_archive(archive)


def settings(tmp_path: Path, offline: bool = False):  # type: ignore[no-untyped-def]
    return settings_from_env(tmp_path, env={"DOCK32_CACHE_DIR": str(tmp_path / "cache")}, offline=offline)


def test_falls_through_a_404_mirror_and_caches_the_tree(tmp_path: Path, mirror: Mirror, tarball: tuple[str, str]) -> None:
    name, tree = tarball
    source = ArchiveSource(urls=(mirror.url("files/missing.tar.gz"), mirror.url(f"files/{name}")), tree=tree)
    fetched = fetch.fetch_archive("x", source, settings(tmp_path))
    assert (fetched.tree / "main.c").read_text() == FILES["main.c"]
    assert mirror.requests == ["/files/missing.tar.gz", f"/files/{name}"]  # a 404 is never retried
    # Second time: straight from the cache, no request at all, even offline.
    again = fetch.fetch_archive("x", source, settings(tmp_path, offline=True))
    assert again.tree == fetched.tree and len(mirror.requests) == 2
    assert not list((tmp_path / "cache" / "downloads").glob("*.part"))


def test_retries_a_5xx_with_backoff(tmp_path: Path, mirror: Mirror, tarball: tuple[str, str]) -> None:
    name, tree = tarball
    fetched = fetch.fetch_archive("x", ArchiveSource(urls=(mirror.url(f"flaky/{name}"),), tree=tree), settings(tmp_path))
    assert fetched.hash == tree
    assert mirror.requests == [f"/flaky/{name}"] * 3


def test_truncated_body_is_retried_then_the_next_mirror_is_used(tmp_path: Path, mirror: Mirror, tarball: tuple[str, str]) -> None:
    name, tree = tarball
    source = ArchiveSource(urls=(mirror.url(f"truncated/{name}"), mirror.url(f"files/{name}")), tree=tree)
    fetched = fetch.fetch_archive("x", source, settings(tmp_path))
    assert fetched.hash == tree
    assert mirror.requests.count(f"/truncated/{name}") == fetch.RETRIES


def test_wrong_hash_is_moved_aside_and_names_expected_and_actual(tmp_path: Path, mirror: Mirror, tarball: tuple[str, str]) -> None:
    name, tree = tarball
    wrong = "sha256:" + "0" * 64
    with pytest.raises(FetchError) as caught:
        fetch.fetch_archive("x", ArchiveSource(urls=(mirror.url(f"files/{name}"),), tree=wrong), settings(tmp_path))
    message = str(caught.value)
    assert f"expected {wrong}, got {tree}" in message
    quarantined = list((tmp_path / "cache" / "quarantine").iterdir())
    assert len(quarantined) == 1 and "moved aside to " + str(quarantined[0]) in message
    assert not (tmp_path / "cache" / "trees").exists()
    assert not list((tmp_path / "cache" / "downloads").iterdir())


def test_unsafe_archive_from_a_mirror_is_refused(tmp_path: Path, mirror: Mirror) -> None:
    import io
    import tarfile

    with tarfile.open(mirror.root / "evil.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("x/../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    with pytest.raises(FetchError, match="points outside the tree"):
        fetch.fetch_archive("x", ArchiveSource(urls=(mirror.url("files/evil.tar.gz"),), tree="sha256:" + "1" * 64), settings(tmp_path))
    assert not (tmp_path.parent / "escape").exists()


def test_offline_names_what_is_missing(tmp_path: Path, mirror: Mirror, tarball: tuple[str, str]) -> None:
    name, tree = tarball
    with pytest.raises(FetchError, match=f"x: offline, and the cache has no tree {tree}"):
        fetch.fetch_archive("x", ArchiveSource(urls=(mirror.url(f"files/{name}"),), tree=tree), settings(tmp_path, offline=True))
    assert mirror.requests == []


def test_debian_mirror_placeholder(tmp_path: Path, mirror: Mirror, tarball: tuple[str, str]) -> None:
    name, tree = tarball
    pool = mirror.root / "debian" / "pool" / "main" / "x"
    pool.mkdir(parents=True)
    (pool / name).write_bytes((mirror.root / name).read_bytes())
    local = settings_from_env(tmp_path, env={"DOCK32_CACHE_DIR": str(tmp_path / "cache"), "DOCK32_DEBIAN_MIRROR": mirror.url("debian")})
    fetched = fetch.fetch_archive("x", ArchiveSource(urls=("{debian_mirror}/pool/main/x/" + name,), tree=tree), local)
    assert fetched.hash == tree
