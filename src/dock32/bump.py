"""`dock32 bump <docker-version>`: move the pins to another Docker release, found from the upstream sources themselves.

Everything comes through the Go module proxy (GOPROXY), with the `go` command:

- cli, engine: the release itself (github.com/docker/cli and github.com/docker/docker at v<X.Y.Z>+incompatible);
  release.date is the engine tag's time in the proxy's .info.
- Go, containerd, runc, tini: moby's Dockerfile ARGs in the engine's module zip (GO_VERSION, CONTAINERD_VERSION,
  RUNC_VERSION, TINI_VERSION), or hack/dockerfile/install/<name>.installer where the Dockerfile has none.
- buildx, compose: Docker releases the plugins on their own; docker-ce-packaging builds the newest plugin release of
  the day (the release pipeline sets DOCKER_BUILDX_REF and DOCKER_COMPOSE_REF). So: the newest tagged release of the
  pinned plugin module at or before the engine tag's time. (moby's Dockerfile BUILDX_VERSION and COMPOSE_VERSION are
  its development container's versions, not what shipped.)
- Every h1: sum from `go mod download -json`; commits from the .info's Origin.Hash where the proxy records it; the
  Go toolchains' sums from golang.org/toolchain; tini's tree hash by downloading its tarball from its URLs.

Only scalar values change, in place, at the positions the YAML parser reports: comments, order, quoting and
formatting stay. The result is loaded with load_config/load_toolchains before anything is written. The patch series
of every component whose version changes are checked against the new trees (dock32.patches.check_series).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dock32 import atomic, fetch
from dock32.config import ArchiveSource, BuildConfig, Component, GoModuleSource, load_config, load_packages, load_toolchains
from dock32.errors import ConfigError, Dock32Error, FetchError, ToolchainError
from dock32.patches import check_series, read_series
from dock32.run import capture
from dock32.settings import Settings, settings_from_env
from dock32.trees import copy_writable, tree_hash_of_archive, unpack

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
    "buildx": PLUGIN,
    "compose": PLUGIN,
}
ENGINE = "engine"
GO_TIMEOUT = 900  # seconds for one go command: a toolchain zip is about 70 MB
PLUGIN_BATCH = 20

Path_ = tuple[str | int, ...]


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


def commit_for(old: Component, new_version: str, new_source_version: str, origin_hash: str | None, missing: str = "") -> tuple[str, str | None]:
    """(commit, warning) in the pin's form: a tag name where the pin is one, else a hash prefix of the pin's length.
    missing: why there is no hash (default: the proxy's .info has none)."""
    old_source_version = old.source.version if isinstance(old.source, GoModuleSource) else None
    if old.commit == old_source_version:
        return new_source_version, None
    if old.commit == old.version:
        return new_version, None
    tag = "v" + core(new_version)
    if old.commit == "v" + core(old.version):
        return tag, None
    if re.fullmatch(r"[0-9a-f]{7,40}", old.commit):
        if origin_hash and re.fullmatch(r"[0-9a-f]{40}", origin_hash):
            return origin_hash[: len(old.commit)], None
        missing = missing or f"the proxy records no commit for {tag} (its .info has no Origin.Hash)"
        return tag, f"{old.name}: {missing}; wrote the tag {tag} as commit: put the hash there"
    return tag, f"{old.name}: commit {old.commit!r} is neither a hash nor the tag; wrote the tag {tag}"


def newest_before(versions: dict[str, datetime | None], limit: datetime) -> str | None:
    """The highest release (vX.Y.Z, no pre-release) whose time is at or before limit."""
    candidates = [(tuple(int(n) for n in m.groups()), v) for v in versions if (m := _SEMVER.fullmatch(v))]
    for _, version in sorted(candidates, reverse=True):
        when = versions[version]
        if when is not None and when <= limit:
            return version
    return None


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- editing YAML in place -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One scalar to rewrite: a value at path, or (key=True) the key of the mapping entry at path."""

    file: str  # relative to the project: buildcfg.yaml, toolchains/go.yaml
    path: Path_
    old: str
    new: str
    key: bool = False

    @property
    def where(self) -> str:
        return dotted(self.path) + (" (key)" if self.key else "")


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def scalar_nodes(text: str) -> tuple[dict[Path_, yaml.ScalarNode], dict[Path_, yaml.ScalarNode]]:
    """Every scalar value and every mapping key by path, as composed (with their marks); merge keys are not followed."""
    values: dict[Path_, yaml.ScalarNode] = {}
    keys: dict[Path_, yaml.ScalarNode] = {}

    def walk(node: yaml.Node, path: Path_, depth: int) -> None:
        if depth > 64:
            return
        if isinstance(node, yaml.ScalarNode):
            values[path] = node
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = (*path, str(key_node.value))
                keys[child] = key_node
                walk(value_node, child, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index), depth + 1)

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, (), 0)
    return values, keys


def render(node: yaml.ScalarNode, value: str) -> str:
    """value written the way node was: double-quoted, single-quoted, or plain where YAML reads it back as that text."""
    if node.style == "'":
        return "'" + value.replace("'", "''") + "'"
    if node.style is None and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+/@~-]*(:[A-Za-z0-9._+/@~-]+)*", value):
        if yaml.safe_load(value) == value:
            return value
    if node.style in (None, '"'):
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    raise ConfigError(f"cannot rewrite a block scalar ({node.style}) at line {node.start_mark.line + 1}", hint="write the value on one line")


def apply_changes(text: str, changes: list[Change]) -> str:
    """text with each change's scalar replaced at its position; everything else byte for byte as it was."""
    values, keys = scalar_nodes(text)
    spans: dict[int, tuple[int, str]] = {}
    for change in changes:
        node = (keys if change.key else values).get(change.path)
        if node is None:
            raise ConfigError(f"{change.file}: no {change.where} to rewrite")
        if str(node.value) != change.old:
            raise ConfigError(f"{change.file}:{node.start_mark.line + 1}: {change.where} is {node.value!r}, expected {change.old!r}")
        spans[node.start_mark.index] = (node.end_mark.index, render(node, change.new))
    for start in sorted(spans, reverse=True):
        end, replacement = spans[start]
        text = text[:start] + replacement + text[end:]
    # Read back: every change landed where it should, as the text it should be (keys renamed on the way).
    renamed = {c.path: (*c.path[:-1], c.new) for c in changes if c.key}
    new_values, new_keys = scalar_nodes(text)
    loader = yaml.SafeLoader("")
    for change in changes:
        path = change.path
        for old_prefix, new_prefix in renamed.items():
            if path[: len(old_prefix)] == old_prefix:
                path = new_prefix + path[len(old_prefix) :]
        node = (new_keys if change.key else new_values).get(path)
        got = None if node is None else node.value if change.key else loader.construct_object(node)
        if got != change.new:
            raise ConfigError(f"{change.file}: rewriting {change.where} gave {got!r}, not {change.new!r}")
    return text


def append_go_pin(text: str, version: str, sums: dict[str, str]) -> str:
    """A new entry at the end of toolchains/go.yaml's go: mapping, indented like its other entries."""
    values, keys = scalar_nodes(text)
    entries = [node for path, node in keys.items() if len(path) == 2 and path[0] == "go"]
    indent = entries[0].start_mark.column if entries else 2
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    go = next((v for k, v in root.value if k.value == "go"), None) if isinstance(root, yaml.MappingNode) else None
    if not isinstance(go, yaml.MappingNode) or go.flow_style:
        raise ConfigError("toolchains/go.yaml: its go: mapping is not in block style; add the pin by hand")
    lines = [" " * indent + json.dumps(version) + ":"] + [" " * (indent + 2) + f"{p}: {json.dumps(s)}" for p, s in sums.items()]
    end = go.end_mark.index
    before = text[:end]
    if not before.endswith("\n"):
        before += "\n"
    return before + "\n".join(lines) + "\n" + text[end:]


# --- the go command --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str
    dir: Path
    time: datetime | None
    origin_hash: str | None


def _json_stream(text: str) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    index = 0
    text = text.strip()
    while index < len(text):
        value, end = decoder.raw_decode(text, index)
        if isinstance(value, dict):
            yield value
        index = end
        while index < len(text) and text[index].isspace():
            index += 1


class Go:
    """The go command with dock32's module cache and the user's GOPROXY/GOSUMDB, run outside any module."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        found = shutil.which("go")
        if not found:
            raise ToolchainError("no `go` command on PATH", hint="install Go (apt-get install golang-go, or `make setup`)")
        self.go = found
        self.settings = settings
        self.workdir = workdir

    def run_json(self, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        result = capture([self.go, *args], env=fetch.go_module_env(self.settings), cwd=self.workdir, timeout=GO_TIMEOUT)
        try:
            objects = list(_json_stream(result.stdout))
        except json.JSONDecodeError:
            objects = []
        return result.returncode, objects, result.stderr.strip()

    def download(self, ref: str, what: str) -> Module:
        code, objects, stderr = self.run_json("mod", "download", "-json", ref)
        info = objects[0] if objects else {}
        if code != 0 or "Error" in info or "Dir" not in info or "Sum" not in info:
            detail = str(info.get("Error") or stderr or f"exit code {code}").strip().splitlines()
            raise FetchError(f"{what}: go mod download {ref}: {detail[-1] if detail else 'failed'}", hint="check GOPROXY and the network")
        recorded: dict[str, Any] = {}
        if info.get("Info"):
            try:
                recorded = json.loads(Path(info["Info"]).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                recorded = {}
        origin = recorded.get("Origin") or info.get("Origin") or {}
        when = recorded.get("Time") or info.get("Time")
        return Module(
            path=info.get("Path", ref.split("@")[0]),
            version=info.get("Version", ref.split("@")[-1]),
            sum=info["Sum"],
            dir=Path(info["Dir"]),
            time=parse_time(when) if isinstance(when, str) else None,
            origin_hash=origin.get("Hash") if isinstance(origin, dict) else None,
        )

    def versions(self, module: str) -> list[str]:
        code, objects, stderr = self.run_json("list", "-m", "-versions", "-json", module)
        if code != 0 or not objects or objects[0].get("Error"):
            reason = (objects[0].get("Error", {}) or {}).get("Err") if objects else None
            raise FetchError(f"go list -m -versions {module}: {(reason or stderr or 'failed').splitlines()[-1]}", hint="check GOPROXY and the network")
        return list(objects[0].get("Versions") or [])

    def times(self, module: str, versions: list[str]) -> dict[str, datetime | None]:
        """Each version's time from the proxy's .info (None where the proxy has none)."""
        if not versions:
            return {}
        code, objects, stderr = self.run_json("list", "-m", "-e", "-json", *(f"{module}@{v}" for v in versions))
        if code != 0 and not objects:
            raise FetchError(f"go list -m {module}: {(stderr or 'failed').splitlines()[-1]}", hint="check GOPROXY and the network")
        found: dict[str, datetime | None] = dict.fromkeys(versions)
        for item in objects:
            if item.get("Version") in found and isinstance(item.get("Time"), str) and not item.get("Error"):
                found[item["Version"]] = parse_time(item["Time"])
        return found


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

    def change(self, file: str, path: Path_, old: str, new: str, key: bool = False) -> None:
        if old != new:
            self.changes.append(Change(file, path, old, new, key))


@dataclass(frozen=True)
class NewTree:
    """A component's new pristine tree, for checking its patches."""

    component: Component  # as the new pins describe it
    source_dir: Path | None = None  # a Go module's Dir in the module cache (read-only)
    archive: Path | None = None  # a downloaded tarball


class Resolver:
    def __init__(self, project: Path, config: BuildConfig, settings: Settings, workdir: Path) -> None:
        self.project = project
        self.config = config
        self.settings = settings
        self.workdir = workdir
        self.go = Go(settings, workdir)
        self.trees: list[NewTree] = []

    def run(self, version: str) -> Bump:
        bump = Bump(version)
        config = self.config
        engine = self._engine_component()
        engine_module = self._download_engine(engine, version)
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
                new_version, origin = version, f"the release {version}"
            elif rule == PLUGIN:
                found = self._plugin_version(component, release_time)
                if found is None:
                    bump.notes.append(f"{component.name}: no release of its module at or before {format_time(release_time)}; left as it is")
                    continue
                new_version, origin = found
            else:
                arg = upstream_arg(engine_module.dir, rule)
                if arg is None:
                    bump.notes.append(f"{component.name}: moby {version} sets no {rule} (Dockerfile or hack/dockerfile/install); left as it is")
                    continue
                new_version, origin = arg[0], arg[1]
            self._component(bump, component, new_version, origin, engine_module if component.name == ENGINE else None)
        return bump

    def _engine_component(self) -> Component:
        try:
            engine = self.config.component(ENGINE)
        except KeyError:
            raise ConfigError("buildcfg.yaml has no 'engine' component: bump reads the release's versions from moby's sources") from None
        if not isinstance(engine.source, GoModuleSource):
            raise ConfigError("components.engine.source: bump needs the engine as a Go module (its Dockerfile pins the other versions)")
        return engine

    def _download_engine(self, engine: Component, version: str) -> Module:
        assert isinstance(engine.source, GoModuleSource)
        new_source_version = module_version(engine.source, core(engine.version), version)
        ref = f"{engine.source.module}@{new_source_version}"
        try:
            return self.go.download(ref, "engine")
        except FetchError as exc:
            if major(version) >= 29 and engine.source.module == "github.com/docker/docker":
                probe = f"github.com/moby/moby/v2@docker-v{version}"
                code, objects, stderr = self.go.run_json("list", "-m", "-e", "-json", probe)
                said = ((objects[0].get("Error") or {}).get("Err") if objects else None) or stderr or f"exit code {code}"
                said = said.strip().splitlines()[-1].strip().removeprefix("server response:").strip()
                raise FetchError(
                    f"engine: Docker {version}'s daemon is the module github.com/moby/moby/v2, released as the git tag docker-v{version}, "
                    f"not as a module version; {ref} does not exist, and the proxy does not serve {probe} (it answered: {said})",
                    hint="dock32 pins tagged module versions only (README: What gets built)",
                ) from None
            raise exc

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

    def _component(self, bump: Bump, component: Component, new_version_text: str, origin: str, engine_module: Module | None) -> None:
        name = component.name
        new_core = core(new_version_text)
        new_version = version_field(component.version, new_core)
        unchanged = core(component.version) == new_core
        bump.sources.append(f"{name} {new_version}: {origin}")
        base = ("components", name)
        bump.change("buildcfg.yaml", (*base, "version"), component.version, new_version)
        source = component.source
        if isinstance(source, GoModuleSource):
            new_source_version = module_version(source, core(component.version), new_core)
            new_module = module_path(source, new_source_version)
            module = engine_module or self.go.download(f"{new_module}@{new_source_version}", name)
            if unchanged and new_module == source.module and new_source_version == source.version:
                if module.sum != source.sum:
                    raise FetchError(
                        f"{name}: {source.ref}: the proxy gives {module.sum}, the pin says {source.sum}",
                        hint="the same version with other content: check GOPROXY; re-pin by hand only if upstream re-tagged",
                    )
                return
            bump.change("buildcfg.yaml", (*base, "source", "module"), source.module, new_module)
            if new_module != source.module:
                bump.notes.append(f"{name}: the module path is now {new_module}: check its binaries' package paths and -X ldflags by hand")
            bump.change("buildcfg.yaml", (*base, "source", "version"), source.version, new_source_version)
            bump.change("buildcfg.yaml", (*base, "source", "sum"), source.sum, module.sum)
            commit, warning = commit_for(component, new_version, new_source_version, module.origin_hash)
            bump.change("buildcfg.yaml", (*base, "commit"), component.commit, commit)
            if warning:
                bump.notes.append(warning)
            new_source = GoModuleSource(new_module, new_source_version, module.sum, source.modfile, source.patch_modules)
            self.trees.append(NewTree(_with(component, new_version, commit, new_source), source_dir=module.dir))
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
        self.trees.append(NewTree(_with(component, new_version, commit, ArchiveSource(urls, tree)), archive=archive))

    def _tarball(self, name: str, urls: tuple[str, ...], bump: Bump) -> tuple[str, Path]:
        """The tree hash of the new tarball, from the first URL that gives one; the other URLs must give the same tree."""
        found: tuple[str, Path] | None = None
        failures = []
        for index, template in enumerate(urls):
            url = fetch.expand_url(template, self.settings)
            if url is None:
                failures.append(f"{template}: no Debian mirror in apt's sources (set DOCK32_DEBIAN_MIRROR)")
                continue
            destination = self.workdir / f"{name}-{index}{_suffix(url)}"
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
            try:
                tree = self._writable_tree(new)
            except Dock32Error as exc:
                bump.patches.append(f"{component.name}: cannot prepare its {component.version} tree to check its patches: {exc}")
                continue
            for check in check_series(series, tree, component.version):
                label = f"{component.name}/{check.patch.path.name}"
                text = {
                    "outside": f"no longer applied ({check.detail})",
                    "applies": f"applies to {component.version}",
                    "fails": f"DOES NOT APPLY to {component.version}: {check.detail}",
                    "upstream": f"already upstream in {component.version}, can be dropped ({check.detail})",
                }[check.status]
                bump.patches.append(f"{label}: {text}")

    def _writable_tree(self, new: NewTree) -> Path:
        """A writable copy of the new pristine tree, prepared as the build prepares it (go.mod stub, patch_modules)."""
        from dock32.build import _copy_patched_modules
        from dock32.layout import Layout
        from dock32.toolchain import ResolvedToolchain, go_version_of

        component = new.component
        tree = self.workdir / "trees" / component.name
        if new.archive is not None:
            unpack(new.archive, tree)
            return tree
        assert new.source_dir is not None and isinstance(component.source, GoModuleSource)
        copy_writable(new.source_dir, tree)
        source = component.source
        if source.modfile and not (tree / "go.mod").exists():
            (tree / "go.mod").write_text(f"module {source.module}\n", encoding="utf-8")
        if source.patch_modules:
            layout = Layout.of(self.workdir / "layout", self.workdir / "dist", "bump", self.project)
            version = go_version_of(self.go.go) or "unknown"
            atomic.write_text(
                layout.toolchain_record,
                ResolvedToolchain(go=self.go.go, go_version=version, go_pinned=version, go_source="system", cc=None, cc_version=None, c_env={}).to_json(),
            )
            _copy_patched_modules(source, tree, self.settings, layout)
        return tree


def _with(component: Component, version: str, commit: str, source: GoModuleSource | ArchiveSource) -> Component:
    return Component(component.name, version, commit, source, component.binaries, component.cgo, component.c_libraries)


def _suffix(url: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar"):
        if url.endswith(suffix):
            return suffix
    return ".tar.gz"


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


def report(bump: Bump, old_version: str, texts: dict[str, str], dry_run: bool) -> str:
    lines = [f"dock32 bump: Docker {old_version} -> {bump.version}"]
    lines.append("versions found:")
    lines.extend(f"  {source}" for source in bump.sources)
    if bump.changes or texts:
        lines.append("changes:" if not dry_run else "changes (dry run, not written):")
        for file in FILES:
            for change in (c for c in bump.changes if c.file == file):
                lines.append(f"  {file}: {change.where}: {change.old} -> {change.new}")
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


def bump_project(project: Path, version: str, *, dry_run: bool = False, force: bool = False, settings: Settings | None = None) -> str:
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
        bump = resolver.run(version)
        if refused:
            bump.notes.insert(0, f"{version} is {refused.removeprefix('refused: ')}; going on because of --force")
        texts = new_texts(project, bump)
        validate(project, texts, workdir)
        resolver.check_patches(bump)
        if not dry_run:
            for file, text in texts.items():
                atomic.write_text(project / file, text)
            load_config(project / "buildcfg.yaml")
        return report(bump, config.release.version, texts, dry_run)


def command(project: Path, argv: list[str], settings: Settings | None = None) -> int:
    """`dock32 bump VERSION [--dry-run] [--force]`."""
    parser = argparse.ArgumentParser(prog="dock32 bump", description="Move the pins to another Docker release, resolved through GOPROXY.")
    parser.add_argument("version", help="the Docker release, like 28.5.2")
    parser.add_argument("--dry-run", action="store_true", help="print the changes it would make; write nothing")
    parser.add_argument("--force", action="store_true", help="bump even to a release listed as broken on 386")
    args = parser.parse_args(argv)
    sys.stdout.write(bump_project(project, args.version, dry_run=args.dry_run, force=args.force, settings=settings))
    return 0
