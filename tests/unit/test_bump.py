"""dock32 bump's pure parts: the refusal table, reading moby's build ARGs, version forms, and rewriting YAML in place
(the resolution through GOPROXY runs the go command: see tests/integration/test_bump.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dock32.bump import (
    Change,
    append_go_pin,
    apply_changes,
    commit_for,
    dockerfile_args,
    installer_defaults,
    module_path,
    module_version,
    newest_before,
    refusal,
    upstream_arg,
)
from dock32.config import ArchiveSource, Component, GoModuleSource
from dock32.errors import ConfigError


@pytest.mark.parametrize("version", ["29.0.0", "29.0.1", "29.0.4", "29.4.2", "28.0.0"])
def test_known_broken_versions_are_refused_with_a_reason(version: str) -> None:
    reason = refusal(version)
    assert reason is not None and reason.startswith("refused: ")
    assert ("known broken on 386 (" in reason) or ("listed as broken on 386 in dock32's bump table" in reason)


def test_other_versions_pass() -> None:
    assert [refusal(v) for v in ("28.5.2", "29.1.0", "29.4.1", "29.4.20", "28.0.1")] == [None] * 5
    assert "sctp.FileListener" in (refusal("29.0.2") or "")
    assert refusal("29.4.2") == "refused: listed as broken on 386 in dock32's bump table"


DOCKERFILE = """\
# syntax=docker/dockerfile:1

ARG GO_VERSION=1.24.9
ARG BASE_DEBIAN_DISTRO="bookworm"
ARG GOLANG_IMAGE="golang:${GO_VERSION}-${BASE_DEBIAN_DISTRO}"
ARG BUILDX_VERSION=0.24.0
FROM base AS containerd-src
ARG CONTAINERD_VERSION=v1.7.28
  ARG TINI_VERSION='v0.19.0'
ARG CONTAINERD_VERSION
ARG CONTAINERD_VERSION=v9.9.9
"""


def test_dockerfile_args_take_the_first_literal_default() -> None:
    args = dockerfile_args(DOCKERFILE)
    assert args["GO_VERSION"] == "1.24.9"
    assert args["CONTAINERD_VERSION"] == "v1.7.28"
    assert args["TINI_VERSION"] == "v0.19.0"
    assert args["BASE_DEBIAN_DISTRO"] == "bookworm"
    assert "GOLANG_IMAGE" not in args  # not a literal


def test_installer_defaults_and_precedence(tmp_path: Path) -> None:
    script = '#!/bin/sh\n: "${RUNC_VERSION:=v1.3.3}"\n: ${DOCKERCLI_VERSION:=18.06.3-ce}\n'
    assert installer_defaults(script) == {"RUNC_VERSION": "v1.3.3", "DOCKERCLI_VERSION": "18.06.3-ce"}
    (tmp_path / "hack/dockerfile/install").mkdir(parents=True)
    (tmp_path / "hack/dockerfile/install/runc.installer").write_text(script)
    (tmp_path / "Dockerfile").write_text("ARG RUNC_VERSION=v1.4.0\n")
    assert upstream_arg(tmp_path, "RUNC_VERSION") == ("v1.4.0", "moby Dockerfile: ARG RUNC_VERSION")
    assert upstream_arg(tmp_path, "DOCKERCLI_VERSION") == ("18.06.3-ce", "moby hack/dockerfile/install/runc.installer: DOCKERCLI_VERSION")
    assert upstream_arg(tmp_path, "NOPE") is None


def _component(name: str, version: str, commit: str, source: GoModuleSource | ArchiveSource) -> Component:
    return Component(name, version, commit, source, (), False, ())


def test_module_versions_and_paths_keep_the_pins_form() -> None:
    engine = GoModuleSource("github.com/docker/docker", "v28.5.2+incompatible", "h1:x", "vendor.mod")
    assert module_version(engine, "28.5.2", "28.5.3") == "v28.5.3+incompatible"
    assert module_path(engine, "v29.0.0+incompatible") == "github.com/docker/docker"
    containerd = GoModuleSource("github.com/containerd/containerd", "v1.7.28", "h1:x", None)
    assert module_path(containerd, "v2.1.4") == "github.com/containerd/containerd/v2"
    assert module_path(GoModuleSource("github.com/containerd/containerd/v2", "v2.1.4", "h1:x", None), "v1.7.29") == "github.com/containerd/containerd"
    assert module_path(GoModuleSource("github.com/docker/compose/v2", "v2.40.3", "h1:x", None), "v2.41.0") == "github.com/docker/compose/v2"


def test_commits_keep_the_pins_form() -> None:
    full = "0123456789abcdef0123456789abcdef01234567"
    source = GoModuleSource("example.com/x", "v1.0.0", "h1:x", None)
    assert commit_for(_component("x", "1.0.0", "abcdef1", source), "1.1.0", "v1.1.0", full) == ("0123456", None)
    assert commit_for(_component("x", "1.0.0", "abcdef12", source), "1.1.0", "v1.1.0", full) == ("01234567", None)
    assert commit_for(_component("x", "1.0.0", "f" * 40, source), "1.1.0", "v1.1.0", full) == (full, None)
    assert commit_for(_component("x", "v1.0.0", "v1.0.0", source), "v1.1.0", "v1.1.0", None) == ("v1.1.0", None)
    commit, warning = commit_for(_component("x", "1.0.0", "abcdef1", source), "1.1.0", "v1.1.0", None)
    assert commit == "v1.1.0" and warning and "no Origin.Hash" in warning


def test_newest_release_at_or_before_a_time_skips_pre_releases_and_later_backports() -> None:
    t = lambda day: datetime(2025, 11, day, tzinfo=UTC)  # noqa: E731
    versions = {"v0.29.0": t(1), "v0.29.1": t(3), "v0.30.0-rc1": t(4), "v0.30.0": t(12), "v0.29.2": t(20), "v0.28.9": None}
    assert newest_before(versions, t(5)) == "v0.29.1"
    assert newest_before(versions, t(30)) == "v0.30.0"
    assert newest_before(versions, datetime(2020, 1, 1, tzinfo=UTC)) is None


CONFIG = """\
# top comment
release:
  version: "1.0.0"   # the release
  date: "2025-11-05T14:19:32Z"

components:
  engine:
    commit: abc1234
    source:
      version: v1.0.0+incompatible
      sum: 'h1:old='
    urls: [x-1.0.0.tar.gz, "y-1.0.0.tar.gz"]
"""


def test_apply_changes_rewrites_only_the_scalars() -> None:
    changes = [
        Change("buildcfg.yaml", ("release", "version"), "1.0.0", "2.0.0"),
        Change("buildcfg.yaml", ("components", "engine", "commit"), "abc1234", "0123456"),
        Change("buildcfg.yaml", ("components", "engine", "source", "version"), "v1.0.0+incompatible", "v2.0.0+incompatible"),
        Change("buildcfg.yaml", ("components", "engine", "source", "sum"), "h1:old=", "h1:new'="),
        Change("buildcfg.yaml", ("components", "engine", "urls", 0), "x-1.0.0.tar.gz", "x-2.0.0.tar.gz"),
        Change("buildcfg.yaml", ("components", "engine", "urls", 1), "y-1.0.0.tar.gz", "y-2.0.0.tar.gz"),
    ]
    text = apply_changes(CONFIG, changes)
    assert text == (
        CONFIG.replace('"1.0.0"   #', '"2.0.0"   #')
        .replace("commit: abc1234", 'commit: "0123456"')  # plain 0123456 would be a number
        .replace("v1.0.0+incompatible", "v2.0.0+incompatible")
        .replace("'h1:old='", "'h1:new''='")
        .replace('[x-1.0.0.tar.gz, "y-1.0.0.tar.gz"]', '[x-2.0.0.tar.gz, "y-2.0.0.tar.gz"]')
    )
    assert yaml.safe_load(text)["components"]["engine"]["commit"] == "0123456"


def test_apply_changes_refuses_a_stale_value() -> None:
    with pytest.raises(ConfigError, match="expected '9.9.9'"):
        apply_changes(CONFIG, [Change("buildcfg.yaml", ("release", "version"), "9.9.9", "2.0.0")])
    with pytest.raises(ConfigError, match="no release.nope"):
        apply_changes(CONFIG, [Change("buildcfg.yaml", ("release", "nope"), "x", "y")])


GO_YAML = """\
# toolchains
go:
  "1.24.9":   # pinned
    linux-amd64: "h1:a="
    linux-386: "h1:b="
"""


def test_go_pin_key_and_sums_renamed_in_place() -> None:
    text = apply_changes(
        GO_YAML,
        [
            Change("toolchains/go.yaml", ("go", "1.24.9"), "1.24.9", "1.25.3", key=True),
            Change("toolchains/go.yaml", ("go", "1.24.9", "linux-amd64"), "h1:a=", "h1:c="),
            Change("toolchains/go.yaml", ("go", "1.24.9", "linux-386"), "h1:b=", "h1:d="),
        ],
    )
    assert text == '# toolchains\ngo:\n  "1.25.3":   # pinned\n    linux-amd64: "h1:c="\n    linux-386: "h1:d="\n'


def test_go_pin_appended() -> None:
    text = append_go_pin(GO_YAML, "1.25.3", {"linux-amd64": "h1:e="})
    assert text == GO_YAML + '  "1.25.3":\n    linux-amd64: "h1:e="\n'
    assert yaml.safe_load(text)["go"]["1.24.9"]["linux-386"] == "h1:b="
