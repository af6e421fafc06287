"""`dock32 bump <docker-version>`: move the pins to another Docker release, found from the upstream sources themselves;
`dock32 bump --check`: list the newer releases the module proxy can give.

Everything comes through the Go module proxy (GOPROXY), with the `go` command (dock32.gocmd):

- engine: up to 28.x the module github.com/docker/docker at v<X.Y.Z>+incompatible. From 29.x the daemon is the module
  github.com/moby/moby/v2, whose release tags (docker-v29.8.1) are not module versions; moby tags the same commits
  v2.0.0-beta.N, which the proxy serves. Which beta is which release is found from the evidence (dock32.enginetags:
  the tree's releases/versions.yaml, and its time against the CLI's tag), or named with --engine-version.
  release.date is the engine tag's time in the proxy's .info.
- cli: the release itself, github.com/docker/cli v<X.Y.Z>+incompatible.
- Go, containerd, runc, tini, rootlesskit: moby's Dockerfile ARGs in the engine's tree (GO_VERSION, CONTAINERD_VERSION,
  RUNC_VERSION, TINI_VERSION, ROOTLESSKIT_VERSION), or hack/dockerfile/install/<name>.installer where the Dockerfile
  has none; a component the config does not have is named under "look at by hand".
- buildx, compose: for 29.x, moby's Dockerfile BUILDX_VERSION and COMPOSE_VERSION, which moby moves with its releases
  (29.8.1: the buildx and compose of that day), so every pin is one of moby's own. Up to 28.x those ARGs were its
  development container's, far behind what shipped; there the plugin is the newest tagged release of its module at or
  before the engine tag's time, as docker-ce-packaging built them.
- Every h1: sum from `go mod download -json`; commits from the .info's Origin.Hash where the proxy records it (else the
  tag, with a note); the Go toolchains' sums from golang.org/toolchain; tini's tree hash by downloading its tarball.

A module whose path changes (github.com/containerd/containerd/v2, github.com/docker/compose/v5, moby/moby/v2) has every
value under its binaries that names the old path rewritten, once, where it is written (an anchored list used through
an alias is rewritten at its anchor); a `modfile` the new tree no longer has (moby v2 has a go.mod) is removed.
Everything else stays byte for byte (dock32.yamledit), and the result is loaded with load_config/load_toolchains
before anything is written. The patch series of every component whose version changes are checked against the new
trees (dock32.patches.check_series).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dock32 import atomic, fetch
from dock32.build import prepare_tree
from dock32.config import ArchiveSource, BuildConfig, Component, GoBinary, GoModuleSource, load_config, load_packages, load_toolchains
from dock32.enginetags import (
    BETA_PREFIX,
    DOCKER_DOCKER,
    MOBY_V2,
    WINDOW,
    Candidate,
    EngineLine,
    Identified,
    beta,
    beta_number,
    engine_line,
    first_probe,
    further_probe,
    identify,
    near,
    neighbours,
    parse_versions_file,
    release_key,
    span,
)
from dock32.errors import ConfigError, Dock32Error, FetchError
from dock32.gocmd import Go, Module, format_time
from dock32.patches import check_series, read_series
from dock32.settings import Settings, settings_from_env
from dock32.toolchain import choose_go
from dock32.trees import tree_hash_of_archive, unpack
from dock32.yamledit import Change, Path_, append_go_pin, apply_changes, borrowed, comment_lines_naming, scalar_nodes, written_once

# Releases known not to work on 386: a version pattern (fnmatch) and the reason, or None where dock32 has only the entry.
KNOWN_BROKEN: tuple[tuple[str, str | None], ...] = (
    (
        "28.0.0",
        "dockerd does not compile: libnetwork/drivers/bridge/port_mapping_linux.go uses syscall.SYS_SETSOCKOPT, which 386 does not have "
        "(it goes through socketcall); 28.0.1 builds again (void-linux/void-packages#54525)",
    ),
    (
        "29.0.*",
        "docker-proxy does not compile: cmd/docker-proxy/main_linux.go uses sctp.FileListener, which "
        "github.com/ishidawataru/sctp leaves out on linux/386; moby/moby#51519",
    ),
    ("29.4.2", None),
)

# How each component's version is found; components not named here keep their pins.
RELEASE = "the release"
PLUGIN = "plugin"
RULES: dict[str, str] = {
    "cli": RELEASE,
    "engine": RELEASE,
    "containerd": "CONTAINERD_VERSION",
    "runc": "RUNC_VERSION",
    "tini": "TINI_VERSION",
    "rootlesskit": "ROOTLESSKIT_VERSION",
    "buildx": PLUGIN,
    "compose": PLUGIN,
}
# The plugins' ARGs in moby's Dockerfile, read where the engine line takes the plugins from it (29.x).
PLUGIN_ARGS = {"buildx": "BUILDX_VERSION", "compose": "COMPOSE_VERSION"}
ENGINE = "engine"
CLI = "cli"
CLI_MODULE = "github.com/docker/cli"
PLUGIN_BATCH = 20


def refusal(version: str) -> str | None:
    """Why version is refused (it is in KNOWN_BROKEN), or None."""
    for pattern, reason in KNOWN_BROKEN:
        if fnmatch.fnmatchcase(version, pattern):
            if reason:
                return f"refused: known broken on 386 ({reason})"
            return "refused: listed as broken on 386 in dock32's bump table"
    return None


# --- reading upstream files ------------------------------------------------------------------------------------------

_ARG = re.compile(r"^[ \t]*ARG[ \t]+([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"']+)", re.MULTILINE)
_INSTALLER = re.compile(r"^[ \t]*:[ \t]+\"?\$\{([A-Za-z_][A-Za-z0-9_]*):=([^}\s]+)\}\"?", re.MULTILINE)


def dockerfile_args(text: str) -> dict[str, str]:
    """The ARGs with a literal default (the first one of each name), quotes removed."""
    found: dict[str, str] = {}
    for name, value in _ARG.findall(text):
        value = value.strip("\"'")
        if name not in found and "$" not in value:
            found[name] = value
    return found


def installer_defaults(text: str) -> dict[str, str]:
    """The `: "${NAME:=value}"` defaults of a hack/dockerfile/install/*.installer script."""
    return {name: value for name, value in _INSTALLER.findall(text) if "$" not in value}


def upstream_arg(tree: Path, name: str) -> tuple[str, str] | None:
    """(value, where it was found) of a build ARG of moby's tree: the Dockerfile first, then the installer scripts."""
    dockerfile = tree / "Dockerfile"
    if dockerfile.is_file():
        value = dockerfile_args(dockerfile.read_text(encoding="utf-8", errors="replace")).get(name)
        if value:
            return value, f"moby Dockerfile: ARG {name}"
    for script in sorted((tree / "hack" / "dockerfile" / "install").glob("*.installer")):
        value = installer_defaults(script.read_text(encoding="utf-8", errors="replace")).get(name)
        if value:
            return value, f"moby hack/dockerfile/install/{script.name}: {name}"
    return None


# --- versions --------------------------------------------------------------------------------------------------------

_SEMVER = re.compile(r"v(\d+)\.(\d+)\.(\d+)")


def core(version: str) -> str:
    """28.5.2 of v28.5.2+incompatible, 1.7.28 of v1.7.28."""
    return version.removeprefix("v").split("+", 1)[0]


def major(version: str) -> int:
    match = re.match(r"v?(\d+)", version)
    return int(match.group(1)) if match else 0


def version_field(old: str, new_core: str) -> str:
    """The component's version in the form the pin uses: with or without the leading v."""
    return ("v" if old.startswith("v") else "") + new_core


def module_version(old: GoModuleSource, old_core: str, new_core: str) -> str:
    """The module version in the pin's form: v1.2.3, or v28.5.2+incompatible for modules without a go.mod."""
    if old_core and old_core in old.version:
        return old.version.replace(old_core, new_core, 1)
    return "v" + new_core


def module_path(old: GoModuleSource, new_version: str) -> str:
    """The module path for the new version's major: github.com/containerd/containerd/v2 from v2 on."""
    if new_version.endswith("+incompatible"):
        return old.module
    base = re.sub(r"/v\d+$", "", old.module)
    number = major(new_version)
    return f"{base}/v{number}" if number >= 2 else base


def commit_for(
    old: Component, new_version: str, new_source_version: str, origin_hash: str | None, missing: str = "", tag: str | None = None, old_tag: str | None = None
) -> tuple[str, str | None]:
    """(commit, warning) in the pin's form: a tag name where the pin is one, else a hash prefix of the pin's length.
    missing: why there is no hash (default: the proxy's .info has none); tag, old_tag: the git tags of the new and the
    old version where they are not v<version> (moby's docker-v29.8.1)."""
    old_source_version = old.source.version if isinstance(old.source, GoModuleSource) else None
    if old.commit == old_source_version:
        return new_source_version, None
    if old.commit == old.version:
        return new_version, None
    tag = tag or "v" + core(new_version)
    if old.commit in ("v" + core(old.version), old_tag):
        return tag, None
    if re.fullmatch(r"[0-9a-f]{7,40}", old.commit):
        if origin_hash and re.fullmatch(r"[0-9a-f]{40}", origin_hash):
            return origin_hash[: len(old.commit)], None
        missing = missing or f"the proxy records no commit for {tag} (its .info has no Origin.Hash)"
        return tag, f"{old.name}: {missing}; wrote the tag {tag} as commit: put the hash there"
    return tag, f"{old.name}: commit {old.commit!r} is neither a hash nor the tag; wrote the tag {tag}"


def _module_pattern(module: str) -> re.Pattern[str]:
    """module where it is a whole path or a path's start: not inside a longer word or path."""
    return re.compile(rf"(?<![\w.\-/]){re.escape(module)}(?=[/\"'\s]|$)")


def names_module(text: str, module: str) -> bool:
    return _module_pattern(module).search(text) is not None


def rewrite_module_path(text: str, old: str, new: str) -> str:
    """text with the module path old, wherever it names that module or one of its packages (old/pkg.Name, =old), as
    new: -X github.com/docker/docker/dockerversion.Version=... becomes -X github.com/moby/moby/v2/dockerversion.Version=...
    A path that already is new (new = old/v2) stays as it is."""
    pattern = _module_pattern(old)

    def replace(match: re.Match[str]) -> str:
        if new.startswith(old + "/") and re.match(re.escape(new[len(old) :]) + r"(?=[/\"'\s]|$)", text[match.end() :]):
            return match.group(0)
        return new

    return pattern.sub(replace, text)


def newest_before(versions: dict[str, datetime | None], limit: datetime) -> str | None:
    """The highest release (vX.Y.Z, no pre-release) whose time is at or before limit."""
    candidates = [(tuple(int(n) for n in m.groups()), v) for v in versions if (m := _SEMVER.fullmatch(v))]
    for _, version in sorted(candidates, reverse=True):
        when = versions[version]
        if when is not None and when <= limit:
            return version
    return None


# --- the engine's tags on the proxy ----------------------------------------------------------------------------------


class MobyTags:
    """The github.com/moby/moby/v2 v2.0.0-beta.N tags the proxy serves. Each is asked for directly, as the proxy's
    version list misses some (v2.0.0-beta.22 is served, not listed); .info times are cheap, and a tree is downloaded
    only where the times make it a candidate."""

    def __init__(self, go: Go) -> None:
        self.go = go
        self.times: dict[str, datetime] = {}
        self.refused: dict[str, str] = {}  # asked for, not served: why
        self.probed_to = 0
        self.candidates: dict[str, Candidate] = {}
        self.modules: dict[str, Module] = {}

    def probe(self, above: int = 0) -> None:
        try:
            listed = self.go.versions(MOBY_V2)
        except FetchError:
            listed = []  # the tags are asked for one by one all the same
        numbers = first_probe(listed, above)
        while numbers:
            infos = self.go.infos(MOBY_V2, [beta(n) for n in numbers])
            for version, info in infos.items():
                if info.time is not None:
                    self.times[version] = info.time
                else:
                    self.refused[version] = info.error or "no time"
            self.probed_to = numbers[-1]
            numbers = further_probe((n for v in self.times if (n := beta_number(v)) is not None), self.probed_to)

    def asked(self, above: int = 0) -> str:
        """What was asked for above `above`, in a phrase."""
        if self.probed_to <= above:
            return "asked for nothing"
        refused = [v for v in self.refused if (beta_number(v) or 0) > above]
        why = f": {_runs(refused)} not served ({self.refused[refused[-1]]})" if refused else ""
        return f"asked the proxy for {beta(above + 1)} to {beta(self.probed_to)}{why}"

    def read(self, versions: list[str]) -> list[Candidate]:
        """The candidates, with what each tree's releases/versions.yaml says (trees downloaded in one go command)."""
        missing = [v for v in versions if v not in self.candidates]
        found = self.go.download_many([f"{MOBY_V2}@{v}" for v in missing])
        for version in missing:
            module = found[f"{MOBY_V2}@{version}"]
            when = self.times[version]
            if isinstance(module, str):
                self.candidates[version] = Candidate(version, when, None, f"cannot download it: {module}")
                continue
            self.modules[version] = module
            path = module.dir / "releases" / "versions.yaml"
            says = parse_versions_file(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else None
            self.candidates[version] = Candidate(version, when, says, None if says else "no releases/versions.yaml")
        return [self.candidates[v] for v in versions]

    def identify(self, release: str, cli: str, cli_time: datetime, neighbour_times: dict[str, datetime]) -> Identified:
        nearby = near(cli_time, self.times)
        outside = sorted((v for v in self.times if v not in nearby), key=lambda v: abs(self.times[v] - cli_time))[:2]
        return identify(release, cli, cli_time, self.read(nearby), [Candidate(v, self.times[v]) for v in outside], neighbour_times)

    def module(self, version: str) -> Module:
        if version not in self.modules:
            self.modules[version] = self.go.download(f"{MOBY_V2}@{version}", "engine")
        return self.modules[version]


def _runs(versions: list[str]) -> str:
    """beta.1 to beta.14, beta.17: tag numbers in runs."""
    numbers = sorted(n for v in versions if (n := beta_number(v)) is not None)
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"beta.{run[0]}" + (f" to beta.{run[-1]}" if len(run) > 1 else "") for run in runs)


def engine_component(config: BuildConfig) -> Component:
    try:
        engine = config.component(ENGINE)
    except KeyError:
        raise ConfigError("buildcfg.yaml has no 'engine' component: bump reads the release's versions from moby's sources") from None
    if not isinstance(engine.source, GoModuleSource):
        raise ConfigError("components.engine.source: bump needs the engine as a Go module (its Dockerfile pins the other versions)")
    return engine


def cli_module(config: BuildConfig) -> str:
    try:
        source = config.component(CLI).source
    except KeyError:
        return CLI_MODULE
    return source.module if isinstance(source, GoModuleSource) else CLI_MODULE


# --- the bump itself -------------------------------------------------------------------------------------------------


@dataclass
class Bump:
    """What a bump found and will change."""

    version: str
    changes: list[Change] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # where each version came from
    notes: list[str] = field(default_factory=list)  # warnings: things to look at by hand
    patches: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # file -> new text

    def change(self, file: str, path: Path_, old: str, new: str, key: bool = False, comment: str | None = None) -> None:
        if old != new:
            self.changes.append(Change(file, path, old, new, key, comment=comment))

    def remove(self, file: str, path: Path_, old: str) -> None:
        self.changes.append(Change(file, path, old, "", remove=True))


@dataclass(frozen=True)
class NewTree:
    """A component's new pristine tree, for checking its patches."""

    component: Component  # as the new pins describe it
    source_dir: Path | None = None  # a Go module's Dir in the module cache (read-only)
    archive: Path | None = None  # a downloaded tarball


@dataclass(frozen=True)
class EnginePick:
    """The engine module of the release, and how it was found."""

    module: Module
    line: EngineLine
    origin: str  # for "versions found"
    comment: str | None = None  # for the module version's line in buildcfg.yaml


class Resolver:
    def __init__(self, project: Path, config: BuildConfig, settings: Settings, workdir: Path) -> None:
        self.project = project
        self.config = config
        self.settings = settings
        self.workdir = workdir
        go, self.go_description = choose_go(config, load_toolchains(project / "toolchains"), settings)
        self.go = Go(go, settings, workdir)
        self.tags = MobyTags(self.go)
        self.trees: list[NewTree] = []

    def run(self, version: str, engine_version: str | None = None) -> Bump:
        bump = Bump(version)
        config = self.config
        engine = engine_component(config)
        pick = self._engine(bump, engine, version, engine_version)
        engine_module = pick.module
        if engine_module.time is None:
            raise FetchError(f"{engine_module.path}@{engine_module.version}: the proxy's .info gives no Time; cannot set release.date")
        release_time = engine_module.time
        bump.change("buildcfg.yaml", ("release", "version"), config.release.version, version)
        if format_time(config.release.date) != format_time(release_time):  # the same instant keeps the text as written
            values, _ = scalar_nodes(self._text("buildcfg.yaml"))
            bump.change("buildcfg.yaml", ("release", "date"), str(values[("release", "date")].value), format_time(release_time))
        bump.sources.append(f"release.date {format_time(release_time)}: time of {engine_module.path}@{engine_module.version} in the proxy's .info")
        self._go_version(bump, engine_module.dir)
        for component in config.components:
            rule = RULES.get(component.name)
            if rule is None:
                bump.notes.append(f"{component.name}: bump does not know where its version comes from; its pins are left as they are")
                continue
            if rule == RELEASE:
                new_version, origin = version, (pick.origin if component.name == ENGINE else f"the release {version}")
            elif rule == PLUGIN and not pick.line.plugins_from_dockerfile:
                found = self._plugin_version(component, release_time)
                if found is None:
                    bump.notes.append(f"{component.name}: no release of its module at or before {format_time(release_time)}; left as it is")
                    continue
                new_version, origin = found
            else:
                name = PLUGIN_ARGS[component.name] if rule == PLUGIN else rule
                arg = upstream_arg(engine_module.dir, name)
                if arg is None:
                    bump.notes.append(f"{component.name}: moby {version} sets no {name} (Dockerfile or hack/dockerfile/install); left as it is")
                    continue
                new_version, origin = arg
            if component.name == ENGINE:
                old_tag = engine_line(core(component.version)).tag(core(component.version))
                self._component(bump, component, new_version, origin, engine_module, pick.line.tag(version), old_tag, pick.comment)
            else:
                self._component(bump, component, new_version, origin)
        self._unpinned(bump, engine_module.dir)
        return bump

    def _engine(self, bump: Bump, engine: Component, version: str, engine_version: str | None) -> EnginePick:
        """The engine module of release version, by its line: derived from the version up to 28.x, found among the
        moby/moby/v2 tags from 29.x (or named: --engine-version, or the pinned tag when the release stays)."""
        assert isinstance(engine.source, GoModuleSource)
        line = engine_line(version)
        tag = line.tag(version)
        if not line.tagged_by_beta:
            if engine_version:
                raise ConfigError(f"bump {version}: --engine-version is for 29.x releases, whose engine is a {MOBY_V2} tag")
            module_name = engine.source.module if engine.source.module != MOBY_V2 else DOCKER_DOCKER
            module = self.go.download(f"{module_name}@v{version}+incompatible", ENGINE)
            # Back from a moby v2 tag: the comment that named its docker-v tag goes with it.
            comment = f"{tag}: the release's own module version" if engine.source.module == MOBY_V2 else None
            return EnginePick(module, line, f"the release {version}: {module.path}@{module.version}", comment)
        chosen_by = "--engine-version"
        if engine_version is None and engine.source.module == MOBY_V2 and self.config.release.version == version:
            engine_version, chosen_by = engine.source.version, "the pinned tag"  # the release stays: so does its tag
        if engine_version is not None and beta_number(engine_version) is None:
            raise ConfigError(f"bump {version}: --engine-version {engine_version!r} is not a tag like {BETA_PREFIX}24")
        evidence, failure = self._evidence(version)
        if engine_version is None:
            if evidence is None:
                raise failure or FetchError(f"engine: no evidence for Docker {version}'s {MOBY_V2} tag")
            read = len(near(evidence.cli_time, self.tags.times))
            asked = f"{self.tags.asked()}; read the trees of the {read} within {span(WINDOW)} of the CLI's tag"
            module = self.tags.module(evidence.candidate.version)
            return EnginePick(module, line, f"{MOBY_V2}@{module.version} is {tag}: {evidence.how} ({asked})", evidence.comment(tag))
        origin, comment = f"{MOBY_V2}@{engine_version} is {tag}: {chosen_by}", f"{tag}: named with --engine-version"
        if evidence is not None and evidence.candidate.version == engine_version:
            origin, comment = f"{origin}; the evidence agrees: {evidence.how}", evidence.comment(tag)
        elif evidence is not None:
            bump.notes.append(f"engine: {chosen_by} {engine_version} kept, but the evidence points at {evidence.candidate.version} ({evidence.how})")
        else:
            reason = failure.message.removeprefix("engine: ") if failure else "none found"
            bump.notes.append(f"engine: {chosen_by} {engine_version} kept; the evidence alone does not settle it: {reason}")
        return EnginePick(self.tags.module(engine_version), line, origin, comment)

    def _evidence(self, version: str) -> tuple[Identified | None, FetchError | None]:
        """Which moby/moby/v2 tag the proxy's evidence names as release version, or why it names none."""
        self.tags.probe()
        if not self.tags.times:
            return None, FetchError(f"engine: the proxy serves no {MOBY_V2} tag ({self.tags.asked()})", hint="check GOPROXY and the network")
        cli = cli_module(self.config)
        wanted = [version, *neighbours(version)]
        infos = self.go.infos(cli, [f"v{release}+incompatible" for release in wanted])
        times = {release: info.time for release in wanted if (info := infos[f"v{release}+incompatible"]).time}
        if version not in times:
            return None, FetchError(
                f"engine: cannot find Docker {version}'s {MOBY_V2} tag: the proxy has no {cli}@v{version}+incompatible to date the release by "
                f"({infos[f'v{version}+incompatible'].error})",
                hint=f"check that {version} is a Docker release; or name the tag: --engine-version {BETA_PREFIX}N",
            )
        cli_time = times.pop(version)
        try:
            return self.tags.identify(version, f"{cli}@v{version}+incompatible", cli_time, times), None
        except FetchError as exc:
            return None, exc

    def _go_version(self, bump: Bump, tree: Path) -> None:
        arg = upstream_arg(tree, "GO_VERSION")
        if arg is None:
            bump.notes.append("go.version: moby's Dockerfile sets no GO_VERSION; left as it is")
            return
        new, origin = arg
        if not re.fullmatch(r"1\.\d+(\.\d+)?", new):
            raise FetchError(f"moby {bump.version}: ARG GO_VERSION={new!r} is not a Go version like 1.24.9")
        bump.sources.append(f"go {new}: {origin}")
        old = self.config.go_version
        bump.change("buildcfg.yaml", ("go", "version"), old, new)
        toolchains = load_toolchains(self.project / "toolchains")
        if new in toolchains.go:
            bump.sources.append(f"toolchains/go.yaml {new}: already pinned there; kept")
            return
        go_yaml = "toolchains/go.yaml"
        model = toolchains.go.get(old)
        platforms = list(model.sums) if model else ["linux-amd64"]
        sums = {}
        for platform in platforms:
            ref = f"golang.org/toolchain@v0.0.1-go{new}.{platform}"
            sums[platform] = self.go.download(ref, f"Go {new} for {platform}").sum
        bump.sources.append(f"toolchains/go.yaml {new}: h1 sums of golang.org/toolchain v0.0.1-go{new}.{{{','.join(platforms)}}}")
        if old in toolchains.go:
            bump.change(go_yaml, ("go", old), old, new, key=True)
            for platform, value in sums.items():
                bump.change(go_yaml, ("go", old, platform), toolchains.go[old].sums[platform], value)
        else:
            bump.texts[go_yaml] = append_go_pin(self._text(go_yaml), new, sums)

    def _unpinned(self, bump: Bump, tree: Path) -> None:
        """The versions moby pins for components the config does not build (rootlesskit): said, not added."""
        have = {component.name for component in self.config.components}
        for name, rule in RULES.items():
            if name in have or rule in (RELEASE, PLUGIN):
                continue
            arg = upstream_arg(tree, rule)
            if arg:
                bump.notes.append(f"{name}: {arg[1]} is {arg[0]}; buildcfg.yaml has no {name} component, so nothing pins it (add one to build it)")

    def _text(self, file: str) -> str:
        return (self.project / file).read_text(encoding="utf-8")

    def _plugin_version(self, component: Component, limit: datetime) -> tuple[str, str] | None:
        if not isinstance(component.source, GoModuleSource):
            return None
        module = component.source.module
        wanted_major = major(component.source.version)
        listed = [v for v in self.go.versions(module) if _SEMVER.fullmatch(v) and major(v) == wanted_major]
        listed.sort(key=lambda v: tuple(int(n) for n in v[1:].split(".")), reverse=True)
        for start in range(0, len(listed), PLUGIN_BATCH):
            batch = listed[start : start + PLUGIN_BATCH]
            chosen = newest_before(self.go.times(module, batch), limit)
            if chosen:
                return version_field(component.version, core(chosen)), f"newest tagged {module} at or before the engine tag ({format_time(limit)})"
        return None

    def _component(
        self,
        bump: Bump,
        component: Component,
        new_version_text: str,
        origin: str,
        pinned: Module | None = None,
        tag: str | None = None,
        old_tag: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Every pin of one component for its new version. pinned: the module already chosen (the engine's), with its
        git tag and the old version's; comment: what to say beside a new module version."""
        name = component.name
        new_core = core(new_version_text)
        new_version = version_field(component.version, new_core)
        unchanged = core(component.version) == new_core
        bump.sources.append(f"{name} {new_version}: {origin}")
        base = ("components", name)
        bump.change("buildcfg.yaml", (*base, "version"), component.version, new_version)
        source = component.source
        if isinstance(source, GoModuleSource):
            if pinned is not None:
                new_module, new_source_version = pinned.path, pinned.version
            else:
                new_source_version = module_version(source, core(component.version), new_core)
                new_module = module_path(source, new_source_version)
            module = pinned or self.go.download(f"{new_module}@{new_source_version}", name)
            if unchanged and new_module == source.module and new_source_version == source.version:
                if module.sum != source.sum:
                    raise FetchError(
                        f"{name}: {source.ref}: the proxy gives {module.sum}, the pin says {source.sum}",
                        hint="the same version with other content: check GOPROXY; re-pin by hand only if upstream re-tagged",
                    )
                return
            bump.change("buildcfg.yaml", (*base, "source", "module"), source.module, new_module)
            bump.change("buildcfg.yaml", (*base, "source", "version"), source.version, new_source_version, comment=comment)
            bump.change("buildcfg.yaml", (*base, "source", "sum"), source.sum, module.sum)
            modfile = self._modfile(bump, component, module)
            if new_module != source.module:
                self._rename_module(bump, component, source.module, new_module)
            self._check_packages(bump, component, module)
            missing = f"the proxy records no commit for {module.path}@{module.version} (its .info has no Origin.Hash)" if tag else ""
            commit, warning = commit_for(component, new_version, new_source_version, module.origin_hash, missing, tag, old_tag)
            bump.change("buildcfg.yaml", (*base, "commit"), component.commit, commit)
            if warning:
                bump.notes.append(warning)
            new_source = GoModuleSource(new_module, new_source_version, module.sum, modfile, source.patch_modules)
            self.trees.append(NewTree(dataclasses.replace(component, version=new_version, commit=commit, source=new_source), source_dir=module.dir))
            return
        if unchanged:
            return  # a tarball pin with the same version stays as it is
        assert isinstance(source, ArchiveSource)
        old_core = core(component.version)
        if not any(old_core in url for url in source.urls):
            raise FetchError(f"{name}: none of its source.urls holds its version {old_core}, so bump cannot derive the new ones", hint="edit them by hand")
        urls = tuple(url.replace(old_core, new_core) for url in source.urls)
        tree, archive = self._tarball(name, urls, bump)
        for index, (old_url, new_url) in enumerate(zip(source.urls, urls, strict=True)):
            bump.change("buildcfg.yaml", (*base, "source", "urls", index), old_url, new_url)
        bump.change("buildcfg.yaml", (*base, "source", "tree"), source.tree, tree)
        commit, warning = commit_for(component, new_version, new_version, None, "a tarball names no commit")
        bump.change("buildcfg.yaml", (*base, "commit"), component.commit, commit)
        if warning:
            bump.notes.append(warning)
        self.trees.append(NewTree(dataclasses.replace(component, version=new_version, commit=commit, source=ArchiveSource(urls, tree)), archive=archive))

    def _modfile(self, bump: Bump, component: Component, module: Module) -> str | None:
        """The new tree's module file: the pinned modfile while the tree has it; none (the entry removed) once the
        tree has only a go.mod, as moby v2 has. Adding one (back to moby 28's vendor.mod) is left to a person, with a note."""
        assert isinstance(component.source, GoModuleSource)
        modfile = component.source.modfile
        if modfile is None and not (module.dir / "go.mod").is_file():
            found = "vendor.mod" if (module.dir / "vendor.mod").is_file() else None
            bump.notes.append(f"{component.name}: {module.path}@{module.version} has no go.mod: add source.modfile: {found or 'its module file'} by hand")
            return found  # for checking the patches as the build will, once it is added
        if modfile is None or (module.dir / modfile).is_file():
            return modfile
        if (module.dir / "go.mod").is_file():
            bump.remove("buildcfg.yaml", ("components", component.name, "source", "modfile"), modfile)
            return None
        bump.notes.append(f"{component.name}: {module.path}@{module.version} has neither {modfile} nor a go.mod: set source.modfile by hand")
        return modfile

    def _rename_module(self, bump: Bump, component: Component, old: str, new: str) -> None:
        """Every value under the component's binaries that names the old module path (-X ldflags, import paths) names
        the new one; a list shared through an anchor changes once, at its anchor."""
        prefix: Path_ = ("components", component.name, "binaries")
        text = self._text("buildcfg.yaml")
        for path, value in written_once(text, prefix).items():
            bump.change("buildcfg.yaml", path, value, rewrite_module_path(value, old, new))
        if any(names_module(value, old) for value in borrowed(text, prefix).values()):
            bump.notes.append(f"{component.name}: its binaries name {old} through an anchor written outside them: rewrite it to {new} by hand")

    def _check_packages(self, bump: Bump, component: Component, module: Module) -> None:
        """Each binary's package is a folder of the new tree (packages move between majors)."""
        for binary in component.binaries:
            if not isinstance(binary, GoBinary):
                continue
            package = binary.package
            if package == "." or package.startswith("./"):
                folder = module.dir / package
            elif package == module.path or package.startswith(module.path + "/"):
                folder = module.dir / package[len(module.path) :].lstrip("/")
            else:
                continue
            if not folder.is_dir():
                where = f"{module.path}@{module.version}"
                bump.notes.append(f"{component.name}: {binary.name}'s package {package} is not in {where}: fix binaries.{binary.name}.package")

    def _tarball(self, name: str, urls: tuple[str, ...], bump: Bump) -> tuple[str, Path]:
        """The tree hash of the new tarball, from the first URL that gives one; the other URLs must give the same tree."""
        found: tuple[str, Path] | None = None
        failures = []
        for index, template in enumerate(urls):
            url = fetch.expand_url(template, self.settings)
            if url is None:
                failures.append(f"{template}: no Debian mirror in apt's sources (set DOCK32_DEBIAN_MIRROR)")
                continue
            destination = self.workdir / f"{name}-{index}{fetch.archive_suffix(url)}"
            try:
                fetch._download(url, destination, name)
                tree = tree_hash_of_archive(destination)
            except FetchError as exc:
                failures.append(str(exc))
                continue
            if found is None:
                found = (tree, destination)
                bump.sources.append(f"{name} tree {tree}: unpacked from {url}")
            elif tree != found[0]:
                failures.append(f"{url}: a different tree ({tree})")
        if found is None:
            raise FetchError(f"{name}: no URL gave the new tarball:\n  " + "\n  ".join(failures), hint="check the network and the URLs")
        bump.notes.extend(f"{name}: {failure}" for failure in failures)
        return found

    def check_patches(self, bump: Bump) -> None:
        for new in self.trees:
            component = new.component
            series = read_series(self.project / "patches" / component.name)
            if not series:
                continue
            if any(patch.applies_to(component.version) for patch in series):
                try:
                    tree = self._writable_tree(new)
                except Dock32Error as exc:
                    bump.patches.append(f"{component.name}: cannot prepare its {component.version} tree to check its patches: {exc}")
                    continue
            else:
                tree = self.workdir  # every patch is outside its versions=: check_series looks at no tree
            checks = check_series(series, tree, component.version)
            for check in checks:
                label = f"{component.name}/{check.patch.path.name}"
                text = {
                    "outside": f"no longer applied ({check.detail})",
                    "applies": f"applies to {component.version}",
                    "fails": f"DOES NOT APPLY to {component.version}: {check.detail}",
                    "upstream": f"already upstream in {component.version}, can be dropped ({check.detail})",
                }[check.status]
                bump.patches.append(f"{label}: {text}")
            source = component.source
            if isinstance(source, GoModuleSource) and source.patch_modules and all(check.status == "outside" for check in checks):
                bump.notes.append(
                    f"{component.name}: source.patch_modules ({', '.join(source.patch_modules)}) are copied for patches that no longer apply "
                    f"to {component.version}: drop them with those patches"
                )

    def _writable_tree(self, new: NewTree) -> Path:
        """A writable copy of the new pristine tree, prepared as the build prepares it (go.mod stub, patch_modules)."""
        tree = self.workdir / "trees" / new.component.name
        if new.archive is not None:
            unpack(new.archive, tree)
            return tree
        assert new.source_dir is not None
        prepare_tree(new.component.source, new.source_dir, tree, self.go.go, self.settings)
        return tree


# --- bump --check ----------------------------------------------------------------------------------------------------


@dataclass
class CheckFindings:
    """What `bump --check` found: the pinned release, the newer ones the proxy can give, and what it could not tell."""

    current: str  # the pinned release, 28.5.2
    pinned: str  # its engine module version, github.com/docker/docker@v28.5.2+incompatible
    asked: str  # what was asked of the proxy, in a phrase
    newer: list[tuple[str, str, str]] = field(default_factory=list)  # (release, engine module@version, how it was found)
    unidentified: list[str] = field(default_factory=list)  # one line each: a release named by a tag, not settled
    other_tags: list[str] = field(default_factory=list)  # newer tags that are no release found here (rcs, dev commits)
    cli_only: list[str] = field(default_factory=list)  # newer docker/cli releases without any engine tag found


def check_report(found: CheckFindings) -> str:
    lines = [f"dock32 bump --check: pinned Docker {found.current} ({found.pinned})"]
    if found.newer:
        lines.append(f"newer releases the proxy can give ({found.asked}):")
        width = max(len(release) for release, _, _ in found.newer)
        for release, ref, how in sorted(found.newer, key=lambda entry: release_key(entry[0]), reverse=True):
            refused = refusal(release)
            tail = f"  [{refused.split(' (', 1)[0]}: dock32 bump {release} --force]" if refused else f"  [dock32 bump {release}]"
            lines.append(f"  {release.ljust(width)}  {ref}: {how}{tail}")
    else:
        lines.append(f"no newer release: the proxy gives no engine newer than {found.current} ({found.asked})")
    if found.unidentified:
        lines.append("named by a newer tag, but not found or not settled:")
        lines.extend(f"  {entry}" for entry in found.unidentified)
    if found.other_tags:
        lines.append(
            f"newer tags matched to no release: {_runs(found.other_tags)} "
            "(release candidates, development commits, trees without releases/versions.yaml, or not settled above)"
        )
    if found.cli_only:
        lines.append(f"docker/cli lists newer releases with no engine tag on the proxy: {', '.join(found.cli_only)}")
    return "\n".join(lines) + "\n"


def check_project(project: Path, settings: Settings | None = None) -> str:
    """`dock32 bump --check`: the newer releases the proxy can give, each with its engine module version."""
    config = load_config(project / "buildcfg.yaml")
    settings = settings or settings_from_env(project)
    engine = engine_component(config)
    assert isinstance(engine.source, GoModuleSource)
    current, cli = config.release.version, cli_module(config)
    with tempfile.TemporaryDirectory(prefix="dock32-bump.") as scratch:
        go = Go(choose_go(config, load_toolchains(project / "toolchains"), settings)[0], settings, Path(scratch))
        found = CheckFindings(current, engine.source.ref, "")
        if engine.source.module != MOBY_V2:
            found.newer.extend(_newer_module_versions(go, engine.source.module, current))
        above = (beta_number(engine.source.version) or 0) if engine.source.module == MOBY_V2 else 0
        _newer_tags(found, MobyTags(go), cli, above)
        found.cli_only = _cli_only(go, cli, [current, *(release for release, _, _ in found.newer)])
    return check_report(found)


def _newer_module_versions(go: Go, module: str, current: str) -> list[tuple[str, str, str]]:
    """28.x releases newer than current, where the engine still is github.com/docker/docker v<X>+incompatible."""
    newer = []
    for version in go.versions(module):
        release = core(version)
        if version.endswith("+incompatible") and release_key(release) and release_key(current) < release_key(release) < (29,):
            newer.append((release, f"{module}@{version}", "a module version of the release"))
    return newer


def _newer_tags(found: CheckFindings, tags: MobyTags, cli: str, above: int) -> None:
    """The releases that the moby/moby/v2 tags above the pinned one name, each found by identify()'s rule."""
    tags.probe()  # from the first tag: an older one can be a rival of a newer release's tag
    found.asked = tags.asked(above)
    newer_tags = sorted((v for v in tags.times if (beta_number(v) or 0) > above), key=lambda v: beta_number(v) or 0)
    named: dict[str, list[str]] = {}
    for candidate in tags.read(newer_tags):
        for release in candidate.says.releases() if candidate.says else []:
            if release_key(release) > release_key(found.current):
                named.setdefault(release, []).append(candidate.version)
    wanted = sorted({r for release in named for r in [release, *neighbours(release)]})
    infos = tags.go.infos(cli, [f"v{release}+incompatible" for release in wanted])
    times = {release: info.time for release in wanted if (info := infos[f"v{release}+incompatible"]).time}
    matched: set[str] = set()
    for release in sorted(named, key=release_key, reverse=True):
        if release not in times:
            error = infos[f"v{release}+incompatible"].error
            found.unidentified.append(f"{release}: named by {', '.join(named[release])}; the proxy has no {cli}@v{release}+incompatible ({error})")
            continue
        around = {other: times[other] for other in neighbours(release) if other in times}
        try:
            identified = tags.identify(release, f"{cli}@v{release}+incompatible", times[release], around)
        except FetchError as exc:
            found.unidentified.append(f"{release}: {exc.message.removeprefix('engine: ')}")
            continue
        matched.add(identified.candidate.version)
        found.newer.append((release, f"{MOBY_V2}@{identified.candidate.version}", identified.how))
    found.other_tags = [v for v in newer_tags if v not in matched]


def _cli_only(go: Go, cli: str, known: list[str]) -> list[str]:
    """The CLI's listed releases newer than every release known to have an engine: their engines are not served."""
    try:
        listed = go.versions(cli)
    except FetchError:
        return []
    newest = max(release_key(release) for release in known)
    return sorted({core(v) for v in listed if v.endswith("+incompatible") and release_key(core(v)) > newest}, key=release_key)


# --- putting it together ---------------------------------------------------------------------------------------------

FILES = ("buildcfg.yaml", "toolchains/go.yaml")


def new_texts(project: Path, bump: Bump) -> dict[str, str]:
    """The rewritten files (only those that change), checked by loading them the way a build does."""
    texts: dict[str, str] = {}
    for file in FILES:
        old = (project / file).read_text(encoding="utf-8")
        text = bump.texts.get(file, old)
        changes = [c for c in bump.changes if c.file == file]
        if changes:
            text = apply_changes(text, changes)
        if text != old:
            texts[file] = text
    return texts


def stale_comments(bump: Bump, old_version: str, texts: dict[str, str]) -> None:
    """Comments that still name the old release: prose a bump does not rewrite, named for a person to."""
    text = texts.get("buildcfg.yaml")
    if text is None or old_version == bump.version:
        return
    lines = comment_lines_naming(text, old_version)
    if lines:
        where = f"line {lines[0]}" if len(lines) == 1 else f"lines {', '.join(map(str, lines))}"
        bump.notes.append(f"buildcfg.yaml: the comments at {where} still name {old_version}")


def validate(project: Path, texts: dict[str, str], workdir: Path) -> None:
    """Load the new files (in a scratch copy) with the same loaders a build uses."""
    scratch = workdir / "validate"
    (scratch / "toolchains").mkdir(parents=True, exist_ok=True)
    for item in (project / "toolchains").iterdir():
        if item.is_file():
            shutil.copyfile(item, scratch / "toolchains" / item.name)
    shutil.copyfile(project / "buildcfg.yaml", scratch / "buildcfg.yaml")
    for file, text in texts.items():
        (scratch / file).write_text(text, encoding="utf-8")
    try:
        config = load_config(scratch / "buildcfg.yaml")
        load_toolchains(scratch / "toolchains")
        packages = project / "packaging" / "packages.yaml"
        if packages.is_file():
            load_packages(packages, config)
    except ConfigError as exc:
        raise ConfigError(f"the rewritten files do not load: {exc.message}", hint="nothing was written; this is a bug in dock32 bump") from None


def report(bump: Bump, old_version: str, texts: dict[str, str], dry_run: bool, go: str = "") -> str:
    lines = [f"dock32 bump: Docker {old_version} -> {bump.version}"]
    if go:
        lines.append(f"go command: {go}")
    lines.append("versions found:")
    lines.extend(f"  {source}" for source in bump.sources)
    if bump.changes or texts:
        lines.append("changes:" if not dry_run else "changes (dry run, not written):")
        for file in FILES:
            for change in (c for c in bump.changes if c.file == file):
                lines.append(f"  {file}: {change.describe()}")
            if file in bump.texts:
                lines.append(f"  {file}: a new Go toolchain pin appended")
    else:
        lines.append("no changes: the pins already match this release")
    if bump.patches:
        lines.append("patches:")
        lines.extend(f"  {entry}" for entry in bump.patches)
    if bump.notes:
        lines.append("look at by hand:")
        lines.extend(f"  {note}" for note in bump.notes)
    if texts:
        lines.append("dry run: nothing written" if dry_run else f"wrote {', '.join(sorted(texts))}")
    return "\n".join(lines) + "\n"


def bump_project(
    project: Path, version: str, *, dry_run: bool = False, force: bool = False, settings: Settings | None = None, engine_version: str | None = None
) -> str:
    """Resolve, rewrite (unless dry_run) and return the report. Raises ConfigError for a refused or malformed version."""
    version = version.removeprefix("v")
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ConfigError(f"bump: {version!r} is not a Docker release like 28.5.2")
    refused = refusal(version)
    if refused and not force:
        raise ConfigError(f"bump {version}: {refused}; use --force to try anyway")
    config = load_config(project / "buildcfg.yaml")
    settings = settings or settings_from_env(project)
    with tempfile.TemporaryDirectory(prefix="dock32-bump.") as scratch:
        workdir = Path(scratch)
        resolver = Resolver(project, config, settings, workdir)
        bump = resolver.run(version, engine_version)
        if refused:
            bump.notes.insert(0, f"{version} is {refused.removeprefix('refused: ')}; going on because of --force")
        texts = new_texts(project, bump)
        validate(project, texts, workdir)
        stale_comments(bump, config.release.version, texts)
        resolver.check_patches(bump)
        if not dry_run:
            for file, text in texts.items():
                atomic.write_text(project / file, text)
            load_config(project / "buildcfg.yaml")
        return report(bump, config.release.version, texts, dry_run, resolver.go_description)


def command(project: Path, argv: list[str], settings: Settings | None = None) -> int:
    """`dock32 bump VERSION [--dry-run] [--force] [--engine-version V]`, `dock32 bump --check`."""
    parser = argparse.ArgumentParser(prog="dock32 bump", description="Move the pins to another Docker release, resolved through GOPROXY.")
    parser.add_argument("--dry-run", action="store_true", help="print the changes it would make; write nothing")
    parser.add_argument("--force", action="store_true", help="bump even to a release listed as broken on 386")
    parser.add_argument("--check", action="store_true", help="list the newer releases the module proxy can give, with their engine tags; change nothing")
    parser.add_argument(
        "--engine-version", metavar="TAG",
        help=f"29.x: the {MOBY_V2} tag ({BETA_PREFIX}N) that is the release, where bump cannot tell it from the evidence",
    )
    parser.add_argument("version", nargs="?", help="the Docker release, like 29.8.1")
    args = parser.parse_args(argv)
    if args.check:
        if args.version or args.dry_run or args.force or args.engine_version:
            parser.error("--check takes no version and no other option")
        sys.stdout.write(check_project(project, settings))
        return 0
    if not args.version:
        parser.error("the Docker release to bump to is missing (or --check)")
    sys.stdout.write(bump_project(project, args.version, dry_run=args.dry_run, force=args.force, settings=settings, engine_version=args.engine_version))
    return 0
