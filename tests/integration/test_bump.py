"""`dock32 bump` against a file:// GOPROXY holding two releases of a tiny moby-like project, and a real dry run of the
current release through the real proxy (skipped, with the reason, when that proxy cannot be reached)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from dock32.config import load_config, load_toolchains
from dock32.trees import tree_hash_of_archive

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

ARG GO_VERSION=1.90.1
ARG BUILDX_VERSION=0.0.9
ARG CONTAINERD_VERSION=v1.0.0
ARG RUNC_VERSION=v1.0.0
ARG TINI_VERSION=v0.1.0
"""
# Release 2 moved RUNC_VERSION to the installer script only, as moby's tree has both.
DOCKERFILE_2 = DOCKERFILE_1.replace("1.90.1", "1.90.2").replace("v1.0.0\nARG RUNC_VERSION=v1.0.0\n", "v1.1.0\n").replace("v0.1.0", "v0.2.0")
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
  version: "1.90.1"  # moby Dockerfile: ARG GO_VERSION

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
  "1.90.1":
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
    for go_version in ("1.90.1", "1.90.2"):
        for platform in ("linux-amd64", "linux-386"):
            published = publish(proxy, "golang.org/toolchain", f"v0.0.1-go{go_version}.{platform}", {"bin/go": f"go{go_version} {platform}\n"}, T1)
            (one if go_version == "1.90.1" else two)[platform] = published

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
    assert '  version: "1.90.2"  # moby Dockerfile: ARG GO_VERSION\n' in after
    assert '    version: "v1.1.0"       # moby Dockerfile: ARG CONTAINERD_VERSION\n' in after
    assert '    version: "1.0.1"        # moby Dockerfile: ARG RUNC_VERSION\n' in after

    config = load_config(root / "buildcfg.yaml")
    assert config.release.version == "2.0.0"
    assert config.release.date.strftime("%Y-%m-%dT%H:%M:%SZ") == T2
    assert config.go_version == "1.90.2"
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
    assert list(toolchains.go) == ["1.90.2"]
    assert toolchains.go["1.90.2"].sums == {"linux-amd64": new["linux-amd64"].sum, "linux-386": new["linux-386"].sum}

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
    assert "example.com/moby@v29.0.1+incompatible" in forced.stderr and "refused" not in forced.stderr
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
