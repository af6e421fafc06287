"""`dock32 bump` against a file:// GOPROXY holding two releases of a tiny moby-like project, and a real dry run of the
current release through the real proxy (skipped, with the reason, when that proxy cannot be reached)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from dock32.model.config import Component, GoBinary, GoModuleSource, load_config, load_toolchains
from dock32.sources.trees import tree_hash_of_archive

from .conftest import ROOT, Mirror, PublishedModule, make_tarball, publish_module, run_dock32

pytestmark = pytest.mark.integration

T1 = "2025-01-10T10:00:00Z"  # release 1.0.0
T2 = "2025-06-20T12:34:56Z"  # release 2.0.0


def publish(proxy: Path, module: str, version: str, files: dict[str, str], time: str, commit: str | None = None) -> PublishedModule:
    """A module version whose .info carries Origin (the commit), as the public Go module proxy records it for tagged versions."""
    published = publish_module(proxy, module, version, {"go.mod": f"module {module}\n", **files}, time=time)
    if commit:
        tag = version.split("+")[0]
        info = {"Version": version, "Time": time, "Origin": {"VCS": "git", "URL": f"https://{module}", "Hash": commit, "Ref": f"refs/tags/{tag}"}}
        (proxy / module / "@v" / f"{version}.info").write_text(json.dumps(info) + "\n", encoding="utf-8")
    return published


def sha(n: int) -> str:
    """A commit hash; starting with a letter, so that no prefix of it reads as a YAML number."""
    return "c" + hashlib.sha1(str(n).encode()).hexdigest()[1:]


DOCKERFILE_1 = """\
# syntax=docker/dockerfile:1

ARG GO_VERSION=1.10.1
ARG BUILDX_VERSION=0.0.9
ARG CONTAINERD_VERSION=v1.0.0
ARG RUNC_VERSION=v1.0.0
ARG TINI_VERSION=v0.1.0
"""
# Release 2 moved RUNC_VERSION to the installer script only, as moby's tree has both.
DOCKERFILE_2 = DOCKERFILE_1.replace("1.10.1", "1.10.2").replace("v1.0.0\nARG RUNC_VERSION=v1.0.0\n", "v1.1.0\n").replace("v0.1.0", "v0.2.0")
RUNC_INSTALLER_2 = '#!/bin/sh\n: "${RUNC_VERSION:=v1.0.1}"\n'


def go_file(name: str, value: str) -> str:
    return f'package daemon\n\n// {name} is one of three.\nfunc {name}() string {{\n\treturn "{value}"\n}}\n'


def patch_for(name: str, old: str, new: str) -> str:
    return (
        f"Subject: {name}\n\n--- a/daemon/{name.lower()}.go\n+++ b/daemon/{name.lower()}.go\n"
        f'@@ -3,5 +3,5 @@\n // {name} is one of three.\n func {name}() string {{\n-\treturn "{old}"\n+\treturn "{new}"\n }}\n'
    )


BUILDCFG = """\
# A tiny moby-like project.
#
# Versions come from the engine's Dockerfile.
release:
  version: "1.0.0"
  # Commit time of the release tag.
  date: "{t1}"

go:
  version: "1.10.1"  # moby Dockerfile: ARG GO_VERSION

components:
  cli:
    version: "1.0.0"
    commit: {cli_commit}
    source:
      module: example.com/cli
      version: v1.0.0+incompatible
      sum: "{cli_sum}"
    binaries:
      docker:
        package: .

  engine:
    version: "1.0.0"
    commit: {engine_commit}
    source:
      module: example.com/moby
      version: v1.0.0+incompatible
      sum: "{engine_sum}"
    binaries:
      dockerd:
        package: .
        ldflags: &moby
          - -X example.com/moby/version.Version={{version}}

  containerd:
    version: "v1.0.0"       # moby Dockerfile: ARG CONTAINERD_VERSION
    commit: {containerd_commit}
    source:
      module: example.com/containerd
      version: v1.0.0
      sum: "{containerd_sum}"
    binaries:
      containerd:
        package: .

  runc:
    version: "1.0.0"        # moby Dockerfile: ARG RUNC_VERSION
    commit: {runc_commit}
    source:
      module: example.com/runc
      version: v1.0.0
      sum: "{runc_sum}"
    binaries:
      runc:
        package: .

  tini:
    version: "0.1.0"        # moby Dockerfile: ARG TINI_VERSION
    commit: de40ad0
    source:
      urls:
        - {tini_url}
        # A second mirror, which has only the old release.
        - "{tini_mirror}"
      tree: "{tini_tree}"
    binaries:
      docker-init:
        cmake_target: tini-static

  buildx:
    version: "v0.1.0"
    commit: {buildx_commit}
    source:
      module: example.com/buildx
      version: v0.1.0
      sum: "{buildx_sum}"
    binaries:
      docker-buildx:
        package: .

  compose:
    version: "v2.1.0"
    commit: v2.1.0
    source:
      module: example.com/compose/v2
      version: v2.1.0
      sum: "{compose_sum}"
    binaries:
      docker-compose:
        package: .
"""

GO_YAML = """\
# Go toolchains, checked against these h1: hashes.
go:
  "1.10.1":
    # both build machines
    linux-amd64: "{amd64}"
    linux-386: "{i386}"
"""


@dataclass
class Releases:
    root: Path
    env: dict[str, str]
    modules: dict[str, PublishedModule]  # name of release 2's module or toolchain -> what the proxy holds
    commits: dict[str, str]
    tini_tree_2: str


@pytest.fixture
def releases(tmp_path: Path, mirror: Mirror, project) -> Releases:  # type: ignore[no-untyped-def]
    proxy = tmp_path / "goproxy"
    one: dict[str, PublishedModule] = {}
    two: dict[str, PublishedModule] = {}
    commits = {name: sha(i) for i, name in enumerate(["cli1", "cli2", "engine1", "engine2", "containerd1", "containerd2", "runc1", "runc2", "buildx1"], 1)}
    daemon_1 = {"daemon/a.go": go_file("A", "a"), "daemon/b.go": go_file("B", "b"), "daemon/c.go": go_file("C", "c")}
    # Release 2: A as before, B already has our patch's change, C changed where our patch changes it.
    daemon_2 = {"daemon/a.go": go_file("A", "a"), "daemon/b.go": go_file("B", "b-patched"), "daemon/c.go": go_file("C", "c-upstream")}
    one["engine"] = publish(proxy, "example.com/moby", "v1.0.0+incompatible", {"Dockerfile": DOCKERFILE_1, **daemon_1}, T1, commits["engine1"])
    two["engine"] = publish(
        proxy, "example.com/moby", "v2.0.0+incompatible",
        {"Dockerfile": DOCKERFILE_2, "hack/dockerfile/install/runc.installer": RUNC_INSTALLER_2, **daemon_2}, T2, commits["engine2"],
    )
    one["cli"] = publish(proxy, "example.com/cli", "v1.0.0+incompatible", {"main.go": "package main\n"}, T1, commits["cli1"])
    two["cli"] = publish(proxy, "example.com/cli", "v2.0.0+incompatible", {"main.go": "package main // 2\n"}, T2, commits["cli2"])
    one["containerd"] = publish(proxy, "example.com/containerd", "v1.0.0", {"main.go": "package main\n"}, T1, commits["containerd1"])
    two["containerd"] = publish(proxy, "example.com/containerd", "v1.1.0", {"main.go": "package main // 1.1\n"}, T1, commits["containerd2"])
    one["runc"] = publish(proxy, "example.com/runc", "v1.0.0", {"main.go": "package main\n"}, T1, commits["runc1"])
    two["runc"] = publish(proxy, "example.com/runc", "v1.0.1", {"main.go": "package main // 1.0.1\n"}, T1, commits["runc2"])
    # Plugins: the newest release at or before release 2's time is v0.2.0 (v0.3.0 comes later, v0.2.1-rc.1 is a pre-release).
    one["buildx"] = publish(proxy, "example.com/buildx", "v0.1.0", {"main.go": "package main\n"}, "2024-12-01T00:00:00Z", commits["buildx1"])
    two["buildx"] = publish(proxy, "example.com/buildx", "v0.2.0", {"main.go": "package main // 2\n"}, "2025-05-01T00:00:00Z", sha(99))
    publish(proxy, "example.com/buildx", "v0.2.1-rc.1", {"main.go": "package main // rc\n"}, "2025-06-01T00:00:00Z", sha(98))
    publish(proxy, "example.com/buildx", "v0.3.0", {"main.go": "package main // 3\n"}, "2025-07-01T00:00:00Z", sha(97))
    one["compose"] = publish(proxy, "example.com/compose/v2", "v2.1.0", {"main.go": "package main\n"}, "2024-12-01T00:00:00Z")
    two["compose"] = publish(proxy, "example.com/compose/v2", "v2.2.0", {"main.go": "package main // 2\n"}, "2025-06-19T00:00:00Z")
    for go_version in ("1.10.1", "1.10.2"):
        for platform in ("linux-amd64", "linux-386"):
            published = publish(proxy, "golang.org/toolchain", f"v0.0.1-go{go_version}.{platform}", {"bin/go": f"go{go_version} {platform}\n"}, T1)
            (one if go_version == "1.10.1" else two)[platform] = published

    tini_1 = make_tarball(mirror.root / "tini-0.1.0.tar.gz", "tini-0.1.0", {"CMakeLists.txt": "project(tini C)\n", "tini.c": "int main(void) { return 0; }\n"})
    (mirror.root / "other").mkdir()
    shutil.copyfile(tini_1, mirror.root / "other" / "tini_0.1.0.orig.tar.gz")
    tini_2 = make_tarball(mirror.root / "tini-0.2.0.tar.gz", "tini-0.2.0", {"CMakeLists.txt": "project(tini C)\n", "tini.c": "int main(void) { return 2; }\n"})

    buildcfg = BUILDCFG.format(
        t1=T1,
        cli_commit=commits["cli1"][:7], cli_sum=one["cli"].sum,
        engine_commit=commits["engine1"][:7], engine_sum=one["engine"].sum,
        containerd_commit=commits["containerd1"], containerd_sum=one["containerd"].sum,
        runc_commit=commits["runc1"][:8], runc_sum=one["runc"].sum,
        tini_url=mirror.url("files/tini-0.1.0.tar.gz"), tini_mirror=mirror.url("files/other/tini_0.1.0.orig.tar.gz"),
        tini_tree=tree_hash_of_archive(tini_1),
        buildx_commit=commits["buildx1"], buildx_sum=one["buildx"].sum,
        compose_sum=one["compose"].sum,
    )
    series = "# engine patches\n0001-a.patch\n0002-b.patch\n0003-c.patch\n0004-old.patch versions=<2\n"
    root = project(
        buildcfg,
        patches={
            "engine": {
                "series": series,
                "0001-a.patch": patch_for("A", "a", "a-patched"),
                "0002-b.patch": patch_for("B", "b", "b-patched"),
                "0003-c.patch": patch_for("C", "c", "c-patched"),
                "0004-old.patch": patch_for("A", "a", "a-old"),
            }
        },
    )
    (root / "toolchains" / "go.yaml").write_text(GO_YAML.format(amd64=one["linux-amd64"].sum, i386=one["linux-386"].sum), encoding="utf-8")
    assert load_config(root / "buildcfg.yaml").release.version == "1.0.0"
    env = {"GOPROXY": f"file://{proxy}", "GOSUMDB": "off", "GOFLAGS": "", "DOCK32_CACHE_DIR": str(tmp_path / "cache")}
    return Releases(root, env, two, commits, tree_hash_of_archive(tini_2))


def comment_and_blank_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(keepends=True)) if not line.strip() or line.lstrip().startswith("#")]


def test_bump_rewrites_every_pin_from_the_proxy(releases: Releases) -> None:
    root, new = releases.root, releases.modules
    before = (root / "buildcfg.yaml").read_text(encoding="utf-8")
    go_before = (root / "toolchains" / "go.yaml").read_text(encoding="utf-8")

    dry = run_dock32(root, "bump", "2.0.0", "--dry-run", env=releases.env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing written" in dry.stdout
    assert "components.engine.source.sum: " in dry.stdout
    assert (root / "buildcfg.yaml").read_text(encoding="utf-8") == before
    assert (root / "toolchains" / "go.yaml").read_text(encoding="utf-8") == go_before

    result = run_dock32(root, "bump", "2.0.0", env=releases.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    after = (root / "buildcfg.yaml").read_text(encoding="utf-8")
    go_after = (root / "toolchains" / "go.yaml").read_text(encoding="utf-8")

    # Only values changed: same lines, comments and blank lines byte for byte, trailing comments kept.
    assert len(after.splitlines()) == len(before.splitlines())
    assert comment_and_blank_lines(after) == comment_and_blank_lines(before)
    assert comment_and_blank_lines(go_after) == comment_and_blank_lines(go_before)
    assert '  version: "1.10.2"  # moby Dockerfile: ARG GO_VERSION\n' in after
    assert '    version: "v1.1.0"       # moby Dockerfile: ARG CONTAINERD_VERSION\n' in after
    assert '    version: "1.0.1"        # moby Dockerfile: ARG RUNC_VERSION\n' in after

    config = load_config(root / "buildcfg.yaml")
    assert config.release.version == "2.0.0"
    assert config.release.date.strftime("%Y-%m-%dT%H:%M:%SZ") == T2
    assert config.go_version == "1.10.2"
    expected = {
        "cli": ("2.0.0", releases.commits["cli2"][:7], "v2.0.0+incompatible"),
        "engine": ("2.0.0", releases.commits["engine2"][:7], "v2.0.0+incompatible"),
        "containerd": ("v1.1.0", releases.commits["containerd2"], "v1.1.0"),
        "runc": ("1.0.1", releases.commits["runc2"][:8], "v1.0.1"),
        "buildx": ("v0.2.0", sha(99), "v0.2.0"),
        "compose": ("v2.2.0", "v2.2.0", "v2.2.0"),
    }
    for name, (version, commit, module_version) in expected.items():
        component = config.component(name)
        assert (component.version, component.commit, component.source.version) == (version, commit, module_version), name  # type: ignore[union-attr]
        assert component.source.sum == new[name].sum, name  # type: ignore[union-attr]
    tini = config.component("tini")
    assert tini.version == "0.2.0"
    assert tini.source.tree == releases.tini_tree_2  # type: ignore[union-attr]
    assert [u.rsplit("/", 1)[-1] for u in tini.source.urls] == ["tini-0.2.0.tar.gz", "tini_0.2.0.orig.tar.gz"]  # type: ignore[union-attr]
    assert "tini: a tarball names no commit; wrote the tag v0.2.0 as commit" in out

    toolchains = load_toolchains(root / "toolchains")
    assert list(toolchains.go) == ["1.10.2"]
    assert toolchains.go["1.10.2"].sums == {"linux-amd64": new["linux-amd64"].sum, "linux-386": new["linux-386"].sum}

    assert "engine/0001-a.patch: applies to 2.0.0" in out
    assert "engine/0002-b.patch: already upstream in 2.0.0, can be dropped" in out
    assert "engine/0003-c.patch: DOES NOT APPLY to 2.0.0: daemon/c.go: hunk #1" in out
    assert "engine/0004-old.patch: no longer applied (versions=<2 excludes 2.0.0)" in out
    assert "tini_0.2.0.orig.tar.gz: HTTP 404" in out  # the second mirror lacks the new release: said, not fatal
    assert "buildx v0.2.0: newest tagged example.com/buildx at or before the engine tag" in out
    assert "runc 1.0.1: moby hack/dockerfile/install/runc.installer: RUNC_VERSION" in out

    again = run_dock32(root, "bump", "2.0.0", env=releases.env)
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout
    assert (root / "buildcfg.yaml").read_text(encoding="utf-8") == after


def test_a_bump_waits_for_a_prune_of_the_cache_it_fetches_into(releases: Releases) -> None:
    lock_file = Path(releases.env["DOCK32_CACHE_DIR"]) / "locks" / "in-use.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as prune:
        fcntl.flock(prune, fcntl.LOCK_EX)  # as `dock32 cache prune` holds it
        bump = subprocess.Popen(
            [sys.executable, "-m", "dock32.cli", "bump", "2.0.0", "--dry-run", "--project", str(releases.root)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **releases.env},
        )
        assert bump.stderr is not None
        first = bump.stderr.readline()
        time.sleep(1)
        assert first == f"waiting for `dock32 cache prune` to finish with {lock_file.parent.parent}\n"
        assert bump.poll() is None, "the bump went on while the prune held the cache"
    stdout, stderr = bump.communicate(timeout=300)
    assert bump.returncode == 0, stderr
    assert "2.0.0" in stdout


def test_known_broken_release_is_refused_unless_forced(releases: Releases) -> None:
    before = (releases.root / "buildcfg.yaml").read_bytes()
    refused = run_dock32(releases.root, "bump", "29.0.1", env=releases.env)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: bump 29.0.1: refused: known broken on 386 (") and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    listed = run_dock32(releases.root, "bump", "29.4.2", env=releases.env)
    assert listed.returncode == 2
    assert "listed as broken on 386 in dock32's bump table; use --force to try anyway" in listed.stderr

    forced = run_dock32(releases.root, "bump", "29.0.1", "--force", env=releases.env)
    assert forced.returncode == 3, forced.stderr  # past the table: this proxy has no such release
    # 29.x: the engine is a github.com/moby/moby/v2 tag, and this proxy has none.
    assert forced.stderr.startswith("error: engine: the proxy serves no github.com/moby/moby/v2 tag (asked the proxy for v2.0.0-beta.1 to v2.0.0-beta.3")
    assert "check GOPROXY" in forced.stderr
    assert len(forced.stderr.strip().splitlines()) == 1
    assert (releases.root / "buildcfg.yaml").read_bytes() == before


def _real_proxy_unreachable() -> str | None:
    """Why the real dry run cannot run here, or None."""
    if shutil.which("go") is None:
        return "no go command on PATH"
    goproxy = subprocess.run(["go", "env", "GOPROXY"], capture_output=True, text=True, env={**os.environ, "GOTOOLCHAIN": "local"}).stdout.strip()
    first = goproxy.replace("|", ",").split(",")[0]
    if first in ("", "off", "direct"):
        return f"GOPROXY={goproxy!r} names no module proxy"
    if first.startswith("file://"):
        return None
    try:
        response = requests.get(f"{first.rstrip('/')}/github.com/docker/docker/@v/v28.5.2+incompatible.info", timeout=20)
    except requests.RequestException as exc:
        return f"the Go module proxy {first} is unreachable: {type(exc).__name__}"
    return None if response.status_code == 200 else f"the Go module proxy {first} answered HTTP {response.status_code}"


def test_real_dry_run_of_the_current_release_changes_nothing() -> None:
    reason = _real_proxy_unreachable()
    if reason:
        pytest.skip(reason)
    files = [ROOT / "buildcfg.yaml", ROOT / "toolchains" / "go.yaml"]
    before = [f.read_bytes() for f in files]
    current = load_config(ROOT / "buildcfg.yaml").release.version
    result = run_dock32(ROOT, "bump", current, "--dry-run", env={})
    assert result.returncode == 0, result.stderr
    assert "no changes" in result.stdout, result.stdout
    assert [f.read_bytes() for f in files] == before


# --- the 29.x line: the engine is a github.com/moby/moby/v2 v2.0.0-beta.N tag ---------------------------------------

MOBY = "github.com/moby/moby/v2"
T28 = "2025-11-05T14:19:32Z"  # 28.9.0, the pinned release
# The tags: (number, its time, releases/versions.yaml as (last, next), listed in the proxy's @v/list, what it is).
# Only beta.1 is listed: the others are found by asking for them. beta.1 is 29.1.0's rc and shares its `next`.
BETA_TAGS = [
    (1, "2026-01-02T10:00:00Z", ("28.9.0", "29.1.0"), True),  # docker-v29.1.0-rc.1
    (2, "2026-01-06T12:00:00Z", ("28.9.0", "29.1.0"), False),  # docker-v29.1.0
    (3, "2026-02-03T15:00:00Z", ("29.1.0", "29.2.0"), False),  # docker-v29.2.0
    (4, "2026-02-20T09:00:00Z", ("29.2.0", "29.2.1"), False),  # a development commit: no release of its own
]
CLI_TAGS = {"29.1.0-rc.1": "2026-01-02T09:40:00Z", "29.1.0": "2026-01-06T11:30:00Z", "29.2.0": "2026-02-03T12:00:00Z"}
MOBY_DOCKERFILE = """\
# syntax=docker/dockerfile:1

ARG GO_VERSION={go}
ARG DOCKERCLI_VERSION=v29.0.0
ARG BUILDX_VERSION={buildx}
ARG COMPOSE_VERSION={compose}
ARG CONTAINERD_VERSION={containerd}
ARG RUNC_VERSION=v1.4.0
ARG TINI_VERSION=v0.19.0
ARG ROOTLESSKIT_VERSION=v3.0.0
"""
# What each beta's Dockerfile pins (the rc and the release alike).
PINS = {
    1: {"go": "1.10.2", "buildx": "0.30.0", "compose": "v5.0.0", "containerd": "v2.1.0"},
    2: {"go": "1.10.2", "buildx": "0.30.0", "compose": "v5.0.0", "containerd": "v2.1.0"},
    3: {"go": "1.10.2", "buildx": "0.30.0", "compose": "v5.0.0", "containerd": "v2.1.1"},
    4: {"go": "1.10.2", "buildx": "0.30.0", "compose": "v5.0.0", "containerd": "v2.1.1"},
}

BUILDCFG_28 = """\
# A tiny Docker on the 28.x line, with the real module paths.
release:
  version: "28.9.0"
  date: "{t28}"

go:
  version: "1.10.1"  # moby Dockerfile: ARG GO_VERSION

components:
  cli:
    version: "28.9.0"
    commit: {cli_commit}
    source:
      module: github.com/docker/cli
      version: v28.9.0+incompatible
      sum: "{cli}"
      # docker/cli keeps its module file as vendor.mod.
      modfile: vendor.mod
    binaries:
      docker:
        package: ./cmd/docker
        ldflags:
          - -X github.com/docker/cli/cli/version.Version={{version}}

  engine:
    version: "28.9.0"
    commit: abc1234
    source:
      module: github.com/docker/docker
      version: v28.9.0+incompatible
      sum: "{engine}"
      # moby 28 has no go.mod: its module file is vendor.mod.
      modfile: vendor.mod
    binaries:
      dockerd:
        package: ./cmd/dockerd
        ldflags: &moby_version
          - -w
          - -X github.com/docker/docker/dockerversion.Version={{version}}
          - -X "github.com/docker/docker/dockerversion.PlatformName=Docker Engine - Community"
      docker-proxy:
        package: ./cmd/docker-proxy
        ldflags: *moby_version

  containerd:
    version: "v1.7.28"       # moby Dockerfile: ARG CONTAINERD_VERSION
    commit: {containerd_commit}
    source:
      module: github.com/containerd/containerd
      version: v1.7.28
      sum: "{containerd}"
    binaries:
      containerd: &containerd_binary
        package: ./cmd/containerd
        ldflags:
          - -X github.com/containerd/containerd/version.Version={{version}}
          - -X github.com/containerd/containerd/version.Package=github.com/containerd/containerd
      ctr:
        <<: *containerd_binary
        package: ./cmd/ctr

  runc:
    version: "1.3.3"         # moby Dockerfile: ARG RUNC_VERSION
    commit: v1.3.3
    source:
      module: github.com/opencontainers/runc
      version: v1.3.3
      sum: "{runc}"
    binaries:
      runc:
        package: .

  rootlesskit:
    version: "v2.3.4"        # moby Dockerfile: ARG ROOTLESSKIT_VERSION
    commit: v2.3.4
    source:
      module: github.com/rootless-containers/rootlesskit/v2
      version: v2.3.4
      sum: "{rootlesskit}"
    binaries:
      rootlesskit:
        package: ./cmd/rootlesskit
        ldflags: ["-X github.com/rootless-containers/rootlesskit/v2/pkg/version.Version={{version}}"]

  buildx:
    version: "v0.29.1"
    commit: v0.29.1
    source:
      module: github.com/docker/buildx
      version: v0.29.1
      sum: "{buildx}"
    binaries:
      docker-buildx:
        package: ./cmd/buildx

  compose:
    version: "v2.40.3"
    commit: v2.40.3
    source:
      module: github.com/docker/compose/v2
      version: v2.40.3
      sum: "{compose}"
    binaries:
      docker-compose:
        package: ./cmd
        ldflags:
          - -X github.com/docker/compose/v2/internal.Version={{version}}
"""

ENGINE_SERIES = "0001-a.patch versions=>=29\n0002-sctp.patch versions=<29\n"


def tree_files(*packages: str) -> dict[str, str]:
    return {f"{package}/main.go": "package main\n" for package in packages}


def unlist(proxy: Path, module: str, version: str) -> None:
    listing = proxy / module / "@v" / "list"
    listing.write_text("".join(line + "\n" for line in listing.read_text().split() if line != version), encoding="utf-8")


@dataclass
class MobyReleases:
    root: Path
    env: dict[str, str]
    sums: dict[str, str]  # "<module>@<version>" -> h1:


@pytest.fixture
def moby_releases(tmp_path: Path, project) -> MobyReleases:  # type: ignore[no-untyped-def]
    proxy = tmp_path / "goproxy"
    sums: dict[str, str] = {}

    def put(module: str, version: str, files: dict[str, str], time: str, commit: str | None = None, listed: bool = True) -> str:
        published = publish(proxy, module, version, files, time, commit)
        if not listed:
            unlist(proxy, module, version)
        sums[f"{module}@{version}"] = published.sum
        return published.sum

    daemon = {"daemon/a.go": go_file("A", "a"), **tree_files("cmd/dockerd", "cmd/docker-proxy")}
    put("github.com/docker/docker", "v28.9.0+incompatible", {"vendor.mod": "module github.com/docker/docker\n", **daemon}, T28)
    for number, when, (last, upcoming), listed in BETA_TAGS:
        files = {
            "Dockerfile": MOBY_DOCKERFILE.format(**PINS[number]),
            "releases/versions.yaml": f'---\ndocker:\n  last: "{last}"\n  next: "{upcoming}"\n',
            **daemon,
        }
        put(MOBY, f"v2.0.0-beta.{number}", {"go.mod": f"module {MOBY}\n\ngo 1.25\n", **files}, when, listed=listed)
    cli_files = {"vendor.mod": "module github.com/docker/cli\n", **tree_files("cmd/docker")}
    put("github.com/docker/cli", "v28.9.0+incompatible", cli_files, T28, sha(1))
    for index, (release, when) in enumerate(CLI_TAGS.items(), 10):
        put("github.com/docker/cli", f"v{release}+incompatible", cli_files, when, sha(index))
    containerd_files = tree_files("cmd/containerd", "cmd/ctr")
    put("github.com/containerd/containerd", "v1.7.28", containerd_files, T28, sha(2))
    put("github.com/containerd/containerd/v2", "v2.1.0", containerd_files, T28)
    put("github.com/containerd/containerd/v2", "v2.1.1", containerd_files, T28)
    put("github.com/opencontainers/runc", "v1.3.3", {"main.go": "package main\n"}, T28)
    put("github.com/opencontainers/runc", "v1.4.0", {"main.go": "package main // 1.4\n"}, T28)
    put("github.com/rootless-containers/rootlesskit/v2", "v2.3.4", tree_files("cmd/rootlesskit"), T28)
    put("github.com/rootless-containers/rootlesskit/v3", "v3.0.0", tree_files("cmd/rootlesskit"), T28)
    put("github.com/docker/buildx", "v0.29.1", tree_files("cmd/buildx"), T28)
    put("github.com/docker/buildx", "v0.30.0", tree_files("cmd/buildx"), T28)
    put("github.com/docker/compose/v2", "v2.40.3", tree_files("cmd"), T28)
    put("github.com/docker/compose/v5", "v5.0.0", tree_files("cmd"), T28)
    for go_version in ("1.10.1", "1.10.2"):
        put("golang.org/toolchain", f"v0.0.1-go{go_version}.linux-amd64", {"bin/go": f"go{go_version}\n"}, T28)

    buildcfg = BUILDCFG_28.format(
        t28=T28, cli_commit=sha(1)[:7], containerd_commit=sha(2),
        **{name: sums[ref] for name, ref in {
            "cli": "github.com/docker/cli@v28.9.0+incompatible", "engine": "github.com/docker/docker@v28.9.0+incompatible",
            "containerd": "github.com/containerd/containerd@v1.7.28", "runc": "github.com/opencontainers/runc@v1.3.3",
            "rootlesskit": "github.com/rootless-containers/rootlesskit/v2@v2.3.4", "buildx": "github.com/docker/buildx@v0.29.1",
            "compose": "github.com/docker/compose/v2@v2.40.3",
        }.items()},
    )
    root = project(
        buildcfg,
        patches={"engine": {"series": ENGINE_SERIES, "0001-a.patch": patch_for("A", "a", "a-patched"), "0002-sctp.patch": patch_for("A", "a", "a-old")}},
    )
    go_yaml = '# Go toolchains.\ngo:\n  "1.10.1":\n    linux-amd64: "{}"\n'.format(sums["golang.org/toolchain@v0.0.1-go1.10.1.linux-amd64"])
    (root / "toolchains" / "go.yaml").write_text(go_yaml, encoding="utf-8")
    env = {"GOPROXY": f"file://{proxy}", "GOSUMDB": "off", "GOFLAGS": "", "DOCK32_CACHE_DIR": str(tmp_path / "cache")}
    return MobyReleases(root, env, sums)


def test_bump_to_a_moby_v2_release_finds_its_unlisted_tag_and_rewrites_every_pin(moby_releases: MobyReleases) -> None:
    root, sums = moby_releases.root, moby_releases.sums
    before = load_config(root / "buildcfg.yaml")
    text_before = (root / "buildcfg.yaml").read_text(encoding="utf-8")

    result = run_dock32(root, "bump", "29.1.0", env=moby_releases.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"dock32 bump: Docker {before.release.version} -> 29.1.0\n")
    # beta.2 is not in the proxy's list, and the rc (beta.1) says next: 29.1.0 as well, four days earlier.
    found = f"engine 29.1.0: {MOBY}@v2.0.0-beta.2 is docker-v29.1.0: releases/versions.yaml next: 29.1.0, tagged 30m after "
    assert found + "github.com/docker/cli@v29.1.0+incompatible" in out
    assert "asked the proxy for v2.0.0-beta.1 to v2.0.0-beta.7: beta.5 to beta.7 not served" in out
    assert "read the trees of the 1 within 24h of the CLI's tag" in out

    config = load_config(root / "buildcfg.yaml")
    assert config.release.version == "29.1.0"
    assert config.release.date.strftime("%Y-%m-%dT%H:%M:%SZ") == BETA_TAGS[1][1]
    assert config.go_version == "1.10.2"
    engine = config.component("engine")
    assert engine.version == "29.1.0" and engine.commit == "docker-v29.1.0"
    assert engine.source == GoModuleSource(MOBY, "v2.0.0-beta.2", sums[f"{MOBY}@v2.0.0-beta.2"], None)  # no modfile: moby v2 has a go.mod
    assert "engine: the proxy records no commit for github.com/moby/moby/v2@v2.0.0-beta.2" in out
    for name in ("dockerd", "docker-proxy"):
        assert binary(engine, name).ldflags == (
            "-w", f"-X {MOBY}/dockerversion.Version={{version}}", f'-X "{MOBY}/dockerversion.PlatformName=Docker Engine - Community"'
        )
    cli = config.component("cli")
    assert (cli.version, cli.source.ref, cli.source.modfile) == ("29.1.0", "github.com/docker/cli@v29.1.0+incompatible", "vendor.mod")  # type: ignore[union-attr]
    expected = {
        "containerd": ("v2.1.0", "github.com/containerd/containerd/v2"),
        "runc": ("1.4.0", "github.com/opencontainers/runc"),
        "rootlesskit": ("v3.0.0", "github.com/rootless-containers/rootlesskit/v3"),
        "buildx": ("v0.30.0", "github.com/docker/buildx"),  # moby's Dockerfile pins the plugins for 29.x
        "compose": ("v5.0.0", "github.com/docker/compose/v5"),
    }
    for name, (version, module) in expected.items():
        component = config.component(name)
        source = component.source
        assert isinstance(source, GoModuleSource)
        ref = f"{module}@v{version.removeprefix('v')}"
        assert (component.version, source.ref, source.sum) == (version, ref, sums[ref]), name
    for name in ("containerd", "ctr"):  # ctr's flags come through the merge key
        assert binary(config.component("containerd"), name).ldflags == (
            "-X github.com/containerd/containerd/v2/version.Version={version}",
            "-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2",
        )
    assert binary(config.component("compose"), "docker-compose").ldflags == ("-X github.com/docker/compose/v5/internal.Version={version}",)
    assert binary(config.component("rootlesskit"), "rootlesskit").ldflags == ("-X github.com/rootless-containers/rootlesskit/v3/pkg/version.Version={version}",)
    assert load_toolchains(root / "toolchains").go["1.10.2"].sums == {"linux-amd64": sums["golang.org/toolchain@v0.0.1-go1.10.2.linux-amd64"]}

    after = (root / "buildcfg.yaml").read_text(encoding="utf-8")
    # The anchor is rewritten once and still shared; the modfile line goes with its comment; the tag's evidence is noted.
    assert after.count("&moby_version") == 1 and after.count("*moby_version") == 1 and after.count(f"{MOBY}/dockerversion.Version") == 1
    assert "# moby 28 has no go.mod" not in after and "# docker/cli keeps its module file as vendor.mod.\n      modfile: vendor.mod\n" in after
    assert "      version: v2.0.0-beta.2  # docker-v29.1.0: releases/versions.yaml next: 29.1.0, tagged 30m after the CLI's v29.1.0\n" in after
    assert len(after.splitlines()) == len(text_before.splitlines()) - 2
    assert "engine/0001-a.patch: applies to 29.1.0" in out  # the moby v2 tree, with its own go.mod
    assert "engine/0002-sctp.patch: no longer applied (versions=<29 excludes 29.1.0)" in out

    again = run_dock32(root, "bump", "29.1.0", "--dry-run", env=moby_releases.env)
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout and "the pinned tag; the evidence agrees" in again.stdout

    # From one moby v2 release to the next: the tag moves on, and so does the comment beside it.
    newer = run_dock32(root, "bump", "29.2.0", env=moby_releases.env)
    assert newer.returncode == 0, newer.stderr
    config = load_config(root / "buildcfg.yaml")
    assert (config.component("engine").source.version, config.component("engine").commit) == ("v2.0.0-beta.3", "docker-v29.2.0")  # type: ignore[union-attr]
    assert config.component("containerd").version == "v2.1.1"
    text = (root / "buildcfg.yaml").read_text(encoding="utf-8")
    assert "version: v2.0.0-beta.3  # docker-v29.2.0: releases/versions.yaml next: 29.2.0, tagged 3h after the CLI's v29.2.0\n" in text
    assert "engine: the proxy records no commit" not in newer.stdout  # the pin is a tag already: it becomes the next one


def binary(component: Component, name: str) -> GoBinary:
    found = next(b for b in component.binaries if b.name == name)
    assert isinstance(found, GoBinary)
    return found


def test_check_lists_the_newer_releases_then_says_plainly_there_are_none(moby_releases: MobyReleases) -> None:
    root = moby_releases.root
    before = (root / "buildcfg.yaml").read_bytes()
    current = load_config(root / "buildcfg.yaml").release.version
    check = run_dock32(root, "bump", "--check", env=moby_releases.env)
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    assert lines[0] == f"dock32 bump --check: pinned Docker {current} (github.com/docker/docker@v{current}+incompatible)"
    assert lines[1].startswith("newer releases the proxy can give (asked the proxy for v2.0.0-beta.1 to v2.0.0-beta.7")
    assert lines[2].startswith(f"  29.2.0  {MOBY}@v2.0.0-beta.3: releases/versions.yaml next: 29.2.0, tagged 3h after")
    assert lines[2].endswith("[dock32 bump 29.2.0]")
    assert lines[3].startswith(f"  29.1.0  {MOBY}@v2.0.0-beta.2: releases/versions.yaml next: 29.1.0")
    assert "  29.2.1: named by v2.0.0-beta.4; the proxy has no github.com/docker/cli@v29.2.1+incompatible" in check.stdout
    assert "newer tags matched to no release: beta.1, beta.4 (" in check.stdout
    assert (root / "buildcfg.yaml").read_bytes() == before

    assert run_dock32(root, "bump", "29.2.0", env=moby_releases.env).returncode == 0
    after = run_dock32(root, "bump", "--check", env=moby_releases.env)
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[:2] == [
        f"dock32 bump --check: pinned Docker 29.2.0 ({MOBY}@v2.0.0-beta.3)",
        "no newer release: the proxy gives no engine newer than 29.2.0 "
        "(asked the proxy for v2.0.0-beta.4 to v2.0.0-beta.7: beta.5 to beta.7 not served (" + after.stdout.split("not served (", 1)[1].split("\n")[0],
    ]


def test_engine_version_names_the_tag_by_hand_and_says_where_the_evidence_differs(moby_releases: MobyReleases) -> None:
    dry = run_dock32(moby_releases.root, "bump", "29.1.0", "--dry-run", "--engine-version", "v2.0.0-beta.1", env=moby_releases.env)
    assert dry.returncode == 0, dry.stderr
    assert f"engine 29.1.0: {MOBY}@v2.0.0-beta.1 is docker-v29.1.0: --engine-version" in dry.stdout
    assert "engine: --engine-version v2.0.0-beta.1 kept, but the evidence points at v2.0.0-beta.2" in dry.stdout
    missing = run_dock32(moby_releases.root, "bump", "29.3.0", env=moby_releases.env)
    assert missing.returncode == 3 and len(missing.stderr.strip().splitlines()) == 1
    assert missing.stderr.startswith("error: engine: cannot find Docker 29.3.0's github.com/moby/moby/v2 tag: the proxy has no github.com/docker/cli@v29.3.0")
