"""dock32 bump's pure parts: the refusal table, reading moby's build ARGs, version forms, rewriting YAML in place,
naming a 29.x release's engine tag from the evidence (moby's own history as data), and the --check listing
(the resolution through GOPROXY runs the go command: see tests/integration/test_bump.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dock32.bump.check import CheckFindings, check_report
from dock32.bump.enginetags import (
    INCOMPATIBLE_LINE,
    MOBY_V2_LINE,
    Candidate,
    VersionsFile,
    engine_line,
    first_probe,
    further_probe,
    identify,
    near,
    neighbours,
    parse_versions_file,
    span,
)
from dock32.bump.rules import RULES, refusal
from dock32.bump.upstreamfiles import dockerfile_args, installer_defaults, upstream_arg
from dock32.bump.versions import commit_for, module_path, module_version, names_module, newest_before, rewrite_module_path
from dock32.core.errors import ConfigError, FetchError
from dock32.model.config import ArchiveSource, Component, GoModuleSource, load_config
from dock32.model.yamledit import Change, append_go_pin, apply_changes, borrowed, comment_lines_naming, written_once
from dock32.sources.gocmd import tidy_error


@pytest.mark.parametrize("version", ["29.0.0", "29.0.1", "29.0.4", "29.4.2", "28.0.0"])
def test_known_broken_versions_are_refused_with_a_reason(version: str) -> None:
    reason = refusal(version)
    assert reason is not None and reason.startswith("refused: ")
    assert ("known broken on 386 (" in reason) or ("listed as broken on 386 in dock32's bump table" in reason)


def test_every_shipped_component_has_a_rule_and_rootlesskit_follows_mobys_arg() -> None:
    """bump moves every pin the shipped config has: none is left out as one "bump does not know where its version
    comes from". rootlesskit (docker-ce-rootless-extras) moves with moby's ROOTLESSKIT_VERSION, as containerd, runc and
    tini move with theirs."""
    config = load_config(Path(__file__).resolve().parents[2] / "buildcfg.yaml")
    assert [c.name for c in config.components if c.name not in RULES] == []
    assert RULES["rootlesskit"] == "ROOTLESSKIT_VERSION"


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


def test_the_engines_commit_is_its_docker_v_tag_with_a_note() -> None:
    engine = _component("engine", "28.5.2", "89c5e8f", GoModuleSource("github.com/docker/docker", "v28.5.2+incompatible", "h1:x", "vendor.mod"))
    missing = "the proxy records no commit for github.com/moby/moby/v2@v2.0.0-beta.24"
    commit, warning = commit_for(engine, "29.8.1", "v2.0.0-beta.24", None, missing, tag="docker-v29.8.1", old_tag="v28.5.2")
    assert commit == "docker-v29.8.1"
    assert warning == f"engine: {missing}; wrote the tag docker-v29.8.1 as commit: put the hash there"
    # A pin that is already the tag moves to the next tag, silently.
    tagged = _component("engine", "29.8.0", "docker-v29.8.0", GoModuleSource("github.com/moby/moby/v2", "v2.0.0-beta.23", "h1:x", None))
    assert commit_for(tagged, "29.8.1", "v2.0.0-beta.24", None, missing, tag="docker-v29.8.1", old_tag="docker-v29.8.0") == ("docker-v29.8.1", None)


def test_engine_lines() -> None:
    assert engine_line("28.5.2") is INCOMPATIBLE_LINE and engine_line("29.8.1") is MOBY_V2_LINE
    assert engine_line("28.5.2").tag("28.5.2") == "v28.5.2" and engine_line("29.8.1").tag("29.8.1") == "docker-v29.8.1"
    assert not INCOMPATIBLE_LINE.plugins_from_dockerfile and MOBY_V2_LINE.plugins_from_dockerfile


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


# --- rewriting module paths and removing entries ------------------------------------------------------------------


def test_module_paths_are_rewritten_where_they_name_the_module() -> None:
    old, new = "github.com/docker/docker", "github.com/moby/moby/v2"
    assert rewrite_module_path(f"-X {old}/dockerversion.Version={{version}}", old, new) == f"-X {new}/dockerversion.Version={{version}}"
    assert rewrite_module_path(f'-X "{old}/dockerversion.PlatformName=Docker Engine - Community"', old, new) == (
        f'-X "{new}/dockerversion.PlatformName=Docker Engine - Community"'
    )
    assert rewrite_module_path("-X github.com/docker/dockerish/x.Y=1", old, new) == "-X github.com/docker/dockerish/x.Y=1"
    assert rewrite_module_path("-X example.org/github.com/docker/docker/x.Y=1", old, new) == "-X example.org/github.com/docker/docker/x.Y=1"
    containerd, containerd2 = "github.com/containerd/containerd", "github.com/containerd/containerd/v2"
    flag = f"-X {containerd}/version.Package={containerd}"
    assert rewrite_module_path(flag, containerd, containerd2) == f"-X {containerd2}/version.Package={containerd2}"
    assert rewrite_module_path(f"-X {containerd2}/version.Version=1", containerd, containerd2) == f"-X {containerd2}/version.Version=1"  # already there
    assert rewrite_module_path("-X github.com/docker/compose/v2/internal.Version=1", "github.com/docker/compose/v2", "github.com/docker/compose/v5") == (
        "-X github.com/docker/compose/v5/internal.Version=1"
    )
    assert names_module(flag, containerd) and not names_module("-w", containerd)


ENGINE_YAML = """\
components:
  engine:
    version: "28.5.2"
    source:
      module: github.com/docker/docker
      version: v28.5.2+incompatible
      # moby 28 has no go.mod: its module file is vendor.mod.
      modfile: vendor.mod
      # Copied into the tree.
      patch_modules: [github.com/ishidawataru/sctp]
    binaries:
      dockerd:
        package: ./cmd/dockerd
        ldflags: &moby_version
          - -w
          - -X github.com/docker/docker/dockerversion.Version={version}
          - -X "github.com/docker/docker/dockerversion.PlatformName=Docker Engine - Community"
      docker-proxy:
        package: ./cmd/docker-proxy
        ldflags: *moby_version
  containerd:
    source:
      module: github.com/containerd/containerd
    binaries:
      containerd: &containerd_binary
        package: ./cmd/containerd
        ldflags: [-s, "-X github.com/containerd/containerd/version.Package=github.com/containerd/containerd"]
      ctr:
        <<: *containerd_binary
        package: ./cmd/ctr
  cli:
    binaries:
      docker:
        ldflags: *moby_version
"""


def _renames(text: str, component: str, old: str, new: str) -> list[Change]:
    prefix = ("components", component, "binaries")
    found = written_once(text, prefix)
    return [Change("buildcfg.yaml", path, value, rewrite_module_path(value, old, new)) for path, value in found.items() if names_module(value, old)]


def test_anchored_ldflags_are_rewritten_once_at_their_anchor_and_modfile_is_removed_with_its_comment() -> None:
    changes = _renames(ENGINE_YAML, "engine", "github.com/docker/docker", "github.com/moby/moby/v2")
    assert [c.path for c in changes] == [("components", "engine", "binaries", "dockerd", "ldflags", i) for i in (1, 2)]  # not docker-proxy's alias
    changes += _renames(ENGINE_YAML, "containerd", "github.com/containerd/containerd", "github.com/containerd/containerd/v2")
    changes.append(Change("buildcfg.yaml", ("components", "engine", "source", "modfile"), "vendor.mod", "", remove=True))
    changes.append(Change("buildcfg.yaml", ("components", "engine", "source", "module"), "github.com/docker/docker", "github.com/moby/moby/v2"))
    text = apply_changes(ENGINE_YAML, changes)
    assert text == (
        ENGINE_YAML.replace("      # moby 28 has no go.mod: its module file is vendor.mod.\n      modfile: vendor.mod\n", "")
        .replace("github.com/docker/docker", "github.com/moby/moby/v2")
        .replace('"-X github.com/containerd/containerd/version.Package=github.com/containerd/containerd"',
                 '"-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"')
    )
    loaded = yaml.safe_load(text)["components"]
    assert "modfile" not in loaded["engine"]["source"] and loaded["engine"]["source"]["patch_modules"] == ["github.com/ishidawataru/sctp"]
    proxy_flags = loaded["engine"]["binaries"]["docker-proxy"]["ldflags"]
    assert proxy_flags == loaded["engine"]["binaries"]["dockerd"]["ldflags"] and proxy_flags[1] == "-X github.com/moby/moby/v2/dockerversion.Version={version}"
    assert loaded["containerd"]["binaries"]["ctr"]["ldflags"][1].endswith("=github.com/containerd/containerd/v2")  # through the merge key
    # The cli uses the engine's anchor: its binaries borrow it, and a rename of the cli's own module would not touch it.
    assert written_once(ENGINE_YAML, ("components", "cli", "binaries")) == {}
    assert list(borrowed(ENGINE_YAML, ("components", "cli", "binaries")).values())[1].startswith("-X github.com/docker/docker/")


def test_removing_refuses_what_is_not_a_one_line_entry() -> None:
    with pytest.raises(ConfigError, match="cannot remove components.engine.source.patch_modules: its value is not one scalar"):
        apply_changes(ENGINE_YAML, [Change("buildcfg.yaml", ("components", "engine", "source", "patch_modules"), "x", "", remove=True)])
    with pytest.raises(ConfigError, match="expected 'go.mod'"):
        apply_changes(ENGINE_YAML, [Change("buildcfg.yaml", ("components", "engine", "source", "modfile"), "go.mod", "", remove=True)])


def test_a_comment_is_set_beside_a_rewritten_value() -> None:
    change = Change("buildcfg.yaml", ("components", "engine", "source", "version"), "v28.5.2+incompatible", "v2.0.0-beta.24", comment="docker-v29.8.1: why")
    text = apply_changes(ENGINE_YAML, [change])
    assert "      version: v2.0.0-beta.24  # docker-v29.8.1: why\n" in text
    again = Change("buildcfg.yaml", change.path, "v2.0.0-beta.24", "v2.0.0-beta.25", comment="docker-v29.8.2: why")
    assert "      version: v2.0.0-beta.25  # docker-v29.8.2: why\n" in apply_changes(text, [again])  # replaced, not added
    assert apply_changes(text, [again]).count("#") == text.count("#")


def test_comments_naming_the_old_release() -> None:
    text = '# Release: Docker 28.5.2.\nrelease:\n  version: "28.5.2"  # not 28.5.20\n# 5:28.5.2-1~debian\n# 128.5.2 or 28.5.21\n'
    assert comment_lines_naming(text, "28.5.2") == [1, 4]


# --- which moby/moby/v2 tag is which release: moby's own history ------------------------------------------------

# Each v2.0.0-beta.N: its .info time, its releases/versions.yaml (last, next; None: the file is absent), and the
# docker-v tag on the same commit (None: no release). From moby's git history and the module proxy; beta.10 and
# beta.15 call `last` `current`; beta.11 is the release 29.4.1 but says `next: 29.4.2`.
BETAS: dict[int, tuple[str, tuple[str | None, str | None] | None, str | None]] = {
    1: ("2025-10-31T18:30:04Z", None, "29.0.0-rc.2"),
    2: ("2025-11-07T00:32:37Z", None, "29.0.0-rc.3"),
    3: ("2025-11-10T21:31:38Z", None, "29.0.0"),
    4: ("2025-11-27T14:12:11Z", None, None),
    5: ("2025-11-27T16:38:00Z", None, "29.1.0"),
    6: ("2026-01-26T19:21:31Z", None, "29.2.0"),
    7: ("2026-03-05T14:05:47Z", None, "29.3.0"),
    8: ("2026-03-25T15:47:11Z", None, "29.3.1"),
    9: ("2026-04-03T14:27:01Z", None, "29.4.0-rc.1"),
    10: ("2026-04-20T15:41:19Z", ("29.4.0", "29.4.1"), None),
    11: ("2026-04-20T16:24:17Z", (None, "29.4.2"), "29.4.1"),
    12: ("2026-05-11T17:57:51Z", (None, "29.5.0"), "29.5.0-rc.1"),
    13: ("2026-05-14T14:37:42Z", (None, "29.5.0"), "29.5.0"),
    14: ("2026-05-18T14:58:43Z", (None, "29.5.2"), "29.5.1"),
    15: ("2026-05-20T11:20:19Z", ("29.5.1", "29.5.2"), "29.5.2"),
    16: ("2026-06-03T16:39:40Z", ("29.5.2", "29.5.3"), "29.5.3"),
    17: ("2026-06-12T17:54:23Z", ("29.5.3", "29.6.0"), "29.6.0-rc.1"),
    18: ("2026-06-18T19:46:07Z", ("29.5.3", "29.6.0"), "29.6.0"),
    19: ("2026-07-27T18:56:57Z", ("29.6.2", "29.7.0"), "29.7.0-rc.1"),
    20: ("2026-07-30T19:47:54Z", ("29.6.2", "29.7.0"), "29.7.0"),
    21: ("2026-07-31T17:03:30Z", ("29.7.0", "29.7.1"), "29.7.1"),
    22: ("2026-09-03T20:55:28Z", ("29.7.2", "29.8.0"), None),  # one of these two is 29.8.0; the history here does not say which
    23: ("2026-09-03T21:10:09Z", ("29.7.2", "29.8.0"), None),
    24: ("2026-09-15T15:28:34Z", ("29.8.0", "29.8.1"), "29.8.1"),
}
# github.com/docker/cli v<X>+incompatible: the .info times the proxy gives.
CLI_TIMES = {
    "29.0.0": "2025-11-10T21:42:38Z", "29.1.0": "2025-11-27T17:34:32Z", "29.2.0": "2026-01-26T19:20:51Z",
    "29.3.0": "2026-03-05T15:31:21Z", "29.3.1": "2026-03-25T14:22:32Z", "29.4.0-rc.1": "2026-04-03T14:24:17Z",
    "29.4.0": "2026-04-03T14:24:17Z", "29.4.1": "2026-04-20T14:57:44Z", "29.4.2": "2026-04-20T14:57:44Z",
    "29.5.0-rc.1": "2026-05-11T16:36:08Z", "29.5.0": "2026-05-14T14:33:29Z", "29.5.1": "2026-05-15T18:33:23Z",
    "29.5.2": "2026-05-20T14:33:30Z", "29.5.3": "2026-06-03T17:16:33Z", "29.6.0-rc.1": "2026-06-12T17:31:17Z",
    "29.6.0": "2026-06-18T19:53:10Z", "29.6.1": "2026-06-25T20:08:24Z", "29.6.2": "2026-07-16T16:09:24Z",
    "29.7.0": "2026-07-30T20:16:32Z", "29.7.1": "2026-07-31T17:03:37Z", "29.7.2": "2026-08-05T17:34:15Z",
    "29.8.0-rc.1": "2026-08-28T10:41:48Z", "29.8.0": "2026-09-03T21:47:32Z", "29.8.1": "2026-09-15T11:21:13Z",
    "29.8.2": "2026-09-23T09:45:10Z",
}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _candidates() -> dict[str, Candidate]:
    found = {}
    for number, (when, says, _) in BETAS.items():
        version = f"v2.0.0-beta.{number}"
        found[version] = Candidate(version, _when(when), VersionsFile(*says) if says else None, None if says else "no releases/versions.yaml")
    return found


def _identify(release: str) -> str:
    """What bump does with the table: the tag's number, or the first words of its refusal."""
    candidates = _candidates()
    cli_time = _when(CLI_TIMES[release])
    nearby = near(cli_time, {v: c.time for v, c in candidates.items()})
    around = {r: _when(CLI_TIMES[r]) for r in neighbours(release) if r in CLI_TIMES}
    try:
        found = identify(release, f"github.com/docker/cli@v{release}+incompatible", cli_time, [candidates[v] for v in nearby], [], around)
    except FetchError as exc:
        assert exc.hint and "--engine-version v2.0.0-beta.N" in exc.hint and "\n" not in str(exc)
        return exc.message.removeprefix("engine: ")
    return found.candidate.version.rsplit(".", 1)[-1]


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("29.8.1", "24"),
        ("29.7.1", "21"),
        ("29.7.0", "20"),  # beta.21 says last: 29.7.0 too, but is 20 hours farther from the CLI
        ("29.6.0", "18"),  # beta.17 (rc.1) says next: 29.6.0 too, six days earlier
        ("29.5.3", "16"),
        ("29.5.2", "15"),
        ("29.5.0", "13"),  # beta.12 (rc.1) shares next: 29.5.0, three days earlier
        ("29.8.0", "cannot tell which"),  # beta.22 and beta.23, 15 minutes apart, both say next: 29.8.0
        ("29.4.1", "the CLI's tags of 29.4.1 and 29.4.2 are less than 6h apart"),  # and beta.10 says next: 29.4.1
        ("29.4.2", "the CLI's tags of 29.4.2 and 29.4.1"),  # beta.11 says next: 29.4.2, but it is 29.4.1
        ("29.4.0", "the CLI's tags of 29.4.0 and 29.4.0-rc.1"),
        ("29.5.1", "no github.com/moby/moby/v2 tag the proxy serves is within 24h"),  # beta.14 is 2d20h from the CLI
        ("29.3.1", "no github.com/moby/moby/v2 tag within 24h of github.com/docker/cli@v29.3.1+incompatible (2026-03-25T14:22:32Z) has a releases"),
        ("29.1.0", "has a releases/versions.yaml naming 29.1.0: v2.0.0-beta.5 (56m before the CLI: no releases/versions.yaml), v2.0.0-beta.4"),
        ("29.6.2", "no github.com/moby/moby/v2 tag the proxy serves"),
        ("29.8.2", "no github.com/moby/moby/v2 tag the proxy serves"),
    ],
)
def test_identifying_the_engine_tag_of_a_release(release: str, expected: str) -> None:
    got = _identify(release)
    assert got == expected if expected.isdigit() else expected in got


def test_identification_never_names_a_wrong_tag() -> None:
    """Over moby's whole history: either the tag of the release, or a refusal; never another tag."""
    truth = {release: f"{number}" for number, (_, _, release) in BETAS.items() if release}
    for release in CLI_TIMES:
        if "-rc." in release:
            continue
        got = _identify(release)
        assert not got.isdigit() or truth.get(release) == got, (release, got)


def test_an_unreadable_candidate_near_the_best_one_makes_it_ambiguous() -> None:
    candidates = _candidates()
    cli_time = _when(CLI_TIMES["29.7.1"])
    unread = Candidate("v2.0.0-beta.99", cli_time + timedelta(hours=2), None, "cannot download it: 404 Not Found")
    with pytest.raises(FetchError, match=r"v2.0.0-beta.21 \(7s before the CLI: last 29.7.0, next 29.7.1\), v2.0.0-beta.99 \(2h after the CLI: cannot download"):
        identify("29.7.1", "cli", cli_time, [candidates["v2.0.0-beta.21"], unread])
    # One that rules itself out (next is before the release) does not.
    other = Candidate("v2.0.0-beta.98", cli_time + timedelta(hours=2), VersionsFile("29.6.2", "29.7.0"))
    assert identify("29.7.1", "cli", cli_time, [candidates["v2.0.0-beta.21"], other]).candidate.version == "v2.0.0-beta.21"


def test_versions_files_and_their_keys() -> None:
    assert parse_versions_file('---\ndocker:\n  last: "29.8.0"\n  next: "29.8.1"\n') == VersionsFile("29.8.0", "29.8.1")
    assert parse_versions_file('docker:\n  current: "29.5.1"\n  next: "29.5.2"\n') == VersionsFile("29.5.1", "29.5.2")
    assert parse_versions_file("docker: [1, 2]\n") is None and parse_versions_file(": : :") is None and parse_versions_file("") is None
    says = VersionsFile("29.7.0", "29.7.1")
    assert (says.names("29.7.1"), says.names("29.7.0"), says.names("29.6.0")) == ("next", "last", None)
    assert says.allows("29.7.0") and says.allows("29.7.1") and not says.allows("29.7.2") and not says.allows("29.6.9")
    assert VersionsFile(None, "29.4.2").allows("29.4.1")  # a release commit that moved next on already


def test_probing_asks_past_the_list_while_it_finds_tags() -> None:
    listed = ["v2.0.0-beta.1", "v2.0.0-beta.15", "v2.0.0-beta.24", "v2.1.0"]
    assert first_probe(listed) == list(range(1, 28))
    assert first_probe(listed, above=24) == [25, 26, 27]
    assert first_probe([], above=0) == [1, 2, 3]
    assert further_probe({1, 2, 24}, 27) == []  # nothing in 25..27: done
    assert further_probe({24, 26}, 27) == [28, 29, 30]
    assert further_probe(range(1, 1001), 1000) == []  # a proxy that answers for every number is not asked forever
    assert span(timedelta(hours=4, minutes=7, seconds=21)) == "4h07m" and span(timedelta(hours=24)) == "24h" and span(timedelta(days=3, hours=2)) == "3d02h"
    assert neighbours("29.8.0") == ["29.8.1", "29.8.0-rc.1", "29.8.0-rc.2", "29.8.0-rc.3"]
    assert neighbours("29.4.2")[:2] == ["29.4.1", "29.4.3"]


# --- bump --check ------------------------------------------------------------------------------------------------


def test_check_lists_newer_releases_with_their_tags() -> None:
    found = CheckFindings(
        "28.5.2", "github.com/docker/docker@v28.5.2+incompatible", "asked the proxy for v2.0.0-beta.1 to v2.0.0-beta.27",
        newer=[
            ("29.7.1", "github.com/moby/moby/v2@v2.0.0-beta.21", "releases/versions.yaml next: 29.7.1"),
            ("29.8.1", "github.com/moby/moby/v2@v2.0.0-beta.24", "releases/versions.yaml next: 29.8.1"),
            ("29.4.2", "github.com/moby/moby/v2@v2.0.0-beta.11", "by hand"),
        ],
        unidentified=["29.8.0: cannot tell which"],
        other_tags=["v2.0.0-beta.1", "v2.0.0-beta.2", "v2.0.0-beta.3", "v2.0.0-beta.17", "v2.0.0-beta.22", "v2.0.0-beta.23"],
        cli_only=["29.8.2", "29.9.0"],
    )
    lines = check_report(found).splitlines()
    assert lines[0] == "dock32 bump --check: pinned Docker 28.5.2 (github.com/docker/docker@v28.5.2+incompatible)"
    assert lines[1] == "newer releases the proxy can give (asked the proxy for v2.0.0-beta.1 to v2.0.0-beta.27):"
    assert lines[2] == "  29.8.1  github.com/moby/moby/v2@v2.0.0-beta.24: releases/versions.yaml next: 29.8.1  [dock32 bump 29.8.1]"
    assert lines[3].startswith("  29.7.1  github.com/moby/moby/v2@v2.0.0-beta.21")
    assert lines[4].endswith("[refused: listed as broken on 386 in dock32's bump table: dock32 bump 29.4.2 --force]")
    assert lines[5:7] == ["named by a newer tag, but not found or not settled:", "  29.8.0: cannot tell which"]
    assert lines[7].startswith("newer tags matched to no release: beta.1 to beta.3, beta.17, beta.22 to beta.23 (")
    assert lines[8] == "docker/cli lists newer releases with no engine tag on the proxy: 29.8.2, 29.9.0"


def test_check_says_plainly_when_there_is_nothing_newer() -> None:
    asked = "asked the proxy for v2.0.0-beta.25 to v2.0.0-beta.27: beta.25 to beta.27 not served (403 Forbidden)"
    found = CheckFindings("29.8.1", "github.com/moby/moby/v2@v2.0.0-beta.24", asked)
    assert check_report(found) == (
        "dock32 bump --check: pinned Docker 29.8.1 (github.com/moby/moby/v2@v2.0.0-beta.24)\n"
        "no newer release: the proxy gives no engine newer than 29.8.1 "
        "(asked the proxy for v2.0.0-beta.25 to v2.0.0-beta.27: beta.25 to beta.27 not served (403 Forbidden))\n"
    )


def test_go_errors_in_few_words() -> None:
    refused = (
        "go: github.com/moby/moby/v2@v2.0.0-beta.25: reading https://proxy.example/github.com/moby/moby/v2/@v/v2.0.0-beta.25.info: "
        "403 Forbidden\n\tserver response: This module version is not available.\n"
    )
    assert tidy_error(refused) == "403 Forbidden"
    sumdb = (
        "github.com/moby/moby/v2@v2.0.0-beta.11: verifying go.mod: github.com/moby/moby/v2@v2.0.0-beta.11/go.mod: "
        "reading https://sum.example/lookup/github.com/moby/moby/v2@v2.0.0-beta.11: 404 Not Found"
    )
    assert tidy_error(sumdb) == "verifying go.mod: 404 Not Found"
