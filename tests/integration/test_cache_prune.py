"""`dock32 cache` and `dock32 cache prune` on the tiny project: after a bump, a prune brings the cache back to one
release, keeps all the new pins need (an offline build from it gives the same binaries), and never runs beside a build."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from dock32.sources.trees import tree_hash_of_archive

from .conftest import CINIT, CMAKE, Mirror, make_tarball, publish_module, run_dock32

pytestmark = pytest.mark.integration

HOUR = 3600


def size_of(folder: Path) -> int:
    """Bytes of the files below folder, measured here rather than by the code under test."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) if folder.exists() else 0


def extracted(cache: Path) -> set[str]:
    """module@version of every unpacked module in the cache's module cache."""
    mod = cache / "go" / "mod"
    return {p.relative_to(mod).as_posix() for p in mod.rglob("*@*") if p.is_dir() and "cache" not in p.relative_to(mod).parts}


def zips(cache: Path) -> set[str]:
    download = cache / "go" / "mod" / "cache" / "download"
    return {f"{p.parent.parent.relative_to(download).as_posix()}@{p.name[:-4]}" for p in download.rglob("*.zip")}


def binaries(root: Path, build: Path | None = None) -> dict[str, str]:
    folder = (build or root / "build") / "native32-i386" / "bin"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def bump(root: Path, proxy: Path, mirror: Mirror) -> None:
    """Release 1.1.0: hello v1.1.0 with dep v1.1.0, and cinit 1.1 (other code, other pins)."""
    dep = publish_module(
        proxy, "example.com/dep", "v1.1.0",
        {"go.mod": "module example.com/dep\n\ngo 1.21\n", "dep.go": 'package dep\n\nfunc Greeting() string { return "dep-1.1-says-hi" }\n'},
    )
    old_hello = proxy / "example.com" / "hello" / "@v" / "v1.0.0.zip"
    assert old_hello.is_file()
    with zipfile.ZipFile(old_hello) as archive:
        main_go = archive.read("example.com/hello@v1.0.0/main.go").decode()
    hello = publish_module(
        proxy, "example.com/hello", "v1.1.0",
        {
            "go.mod": "module example.com/hello\n\ngo 1.21\n\nrequire example.com/dep v1.1.0\n",
            "go.sum": f"example.com/dep v1.1.0 {dep.sum}\nexample.com/dep v1.1.0/go.mod {dep.mod_sum}\n",
            "main.go": main_go,
        },
    )
    archive = make_tarball(mirror.root / "cinit-1.1.tar.gz", "cinit-1.1", {"CMakeLists.txt": CMAKE, "cinit.c": CINIT.replace("1.0", "1.1")})
    config = root / "buildcfg.yaml"
    text = config.read_text()
    old_sum = re.search(r'sum: "(h1:[^"]+)"', text)
    old_tree = re.search(r'tree: "([^"]+)"', text)
    assert old_sum and old_tree
    text = text.replace("version: v1.0.0", "version: v1.1.0").replace(old_sum[1], hello.sum)
    text = text.replace("cinit-1.0.tar.gz", "cinit-1.1.tar.gz").replace(old_tree[1], tree_hash_of_archive(archive))
    config.write_text(text)


def test_a_prune_after_a_bump_brings_the_cache_back_to_one_release(tiny, mirror: Mirror, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    cache = tmp_path / "own-cache"  # measured alone: not the session's shared cache
    env = {**env, "DOCK32_CACHE_DIR": str(cache)}
    assert (first := run_dock32(root, "build", env=env)).returncode == 0, first.stderr
    one_release = {kind: size_of(cache / sub) for kind, sub in (("mod", "go/mod"), ("trees", "trees"), ("downloads", "downloads"))}
    build_cache_one = size_of(cache / "go" / "build")
    assert extracted(cache) == {"example.com/hello@v1.0.0", "example.com/dep@v1.0.0"}
    # As far as Go's build cache can tell (it marks an entry's use in its mtime, to within an hour), release 1 was
    # built two hours before release 2.
    past = time.time() - 2 * HOUR
    for path in (cache / "go" / "build").rglob("*"):
        os.utime(path, (past, past), follow_symlinks=False)

    bump(root, Path(env["GOPROXY"].removeprefix("file://")), mirror)
    assert (second := run_dock32(root, "build", env=env)).returncode == 0, second.stderr
    expected = binaries(root)
    assert extracted(cache) == {"example.com/hello@v1.0.0", "example.com/dep@v1.0.0", "example.com/hello@v1.1.0", "example.com/dep@v1.1.0"}
    two_releases = size_of(cache)

    listed = run_dock32(root, "cache", env=env)
    assert listed.returncode == 0, listed.stderr
    kinds = re.findall(r"^  (\w[\w ]*?) +(\d+(?:\.\d)? (?:B|KiB|MiB|GiB))", listed.stdout, re.M)
    assert [k for k, _ in kinds] == ["downloads", "trees", "module zips", "extracted modules", "build cache", "go toolchains", "roots", "other", "total"]
    assert re.search(r"^  extracted modules .* 4 entries$", listed.stdout, re.M), listed.stdout

    dry = run_dock32(root, "cache", "prune", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would remove extracted modules: example.com/hello@v1.0.0 (" in dry.stdout
    assert "would remove trees: " in dry.stdout and re.search(r"^would remove build cache: \d+ entries", dry.stdout, re.M), dry.stdout
    assert size_of(cache) == two_releases, "a dry run removes nothing"

    pruned = run_dock32(root, "cache", "prune", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert re.search(r"^removed \d+(\.\d)? [KMG]iB in \d+ entries$", pruned.stdout, re.M), pruned.stdout
    assert "Traceback" not in pruned.stderr
    assert extracted(cache) == {"example.com/hello@v1.1.0", "example.com/dep@v1.1.0"}
    assert zips(cache) == {"example.com/hello@v1.1.0", "example.com/dep@v1.1.0"}
    assert len(list((cache / "trees").iterdir())) == 2  # the new tree and its .verified record
    assert len(list((cache / "downloads").iterdir())) == 1
    # One release's size again: within 10% of what the first release alone took, kind by kind.
    for kind, sub in (("mod", "go/mod"), ("trees", "trees"), ("downloads", "downloads")):
        assert size_of(cache / sub) <= one_release[kind] * 1.1 + 4096, kind
    assert size_of(cache / "go" / "build") <= build_cache_one * 1.1
    assert size_of(cache) < two_releases

    # Nothing the pins need went: offline, a new workspace builds the same bytes from what is left.
    elsewhere = {**env, "DOCK32_BUILD_DIR": str(tmp_path / "b2"), "DOCK32_DIST_DIR": str(tmp_path / "d2")}
    again = run_dock32(root, "build", "--offline", env=elsewhere)
    assert again.returncode == 0, again.stderr
    assert binaries(root, tmp_path / "b2") == expected
    assert run_dock32(root, "cache", "prune", env=env).stdout.splitlines()[-1] == "nothing to remove: the pins need everything in the cache"
    assert extracted(cache) == {"example.com/hello@v1.1.0", "example.com/dep@v1.1.0"}


def test_a_prune_is_refused_while_a_build_uses_the_cache(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    cache = tmp_path / "busy-cache"
    (cache / "locks").mkdir(parents=True)
    with (cache / "locks" / "in-use.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # as a running build holds it
        refused = run_dock32(root, "cache", "prune", env={**env, "DOCK32_CACHE_DIR": str(cache)})
        # A dry run removes nothing: it answers while the build runs (CI's trim step runs one on a busy machine).
        dry = run_dock32(root, "cache", "prune", "--dry-run", env={**env, "DOCK32_CACHE_DIR": str(cache)})
    assert dry.returncode == 0, dry.stderr
    assert refused.returncode == 75  # EX_TEMPFAIL: try again later
    assert refused.stderr == (
        f"error: a dock32 build is using the cache {cache} now; a prune could remove what it holds "
        "(hint: run `dock32 cache prune` again when no build is running)\n"
    )
    assert run_dock32(root, "cache", "prune", env={**env, "DOCK32_CACHE_DIR": str(cache)}).returncode == 0
