"""buildcfg.yaml and toolchains/*.yaml, loaded once into frozen dataclasses.

Every check happens here, at load time, so a bad key fails before any work
starts, with file, line and key in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dock32.arch import Arch
from dock32.yamlsrc import Node, load_yaml

STRATEGIES = ("native32",)  # multiarch64 is planned; see the README
GO386_MODES = ("sse2", "softfloat")
LDFLAG_FIELDS = ("version", "commit", "build_time")


@dataclass(frozen=True)
class GoModuleSource:
    """A Go module fetched through GOPROXY and checked against its go.sum-style h1: hash."""

    module: str
    version: str
    sum: str
    modfile: str | None  # vendor.mod for moby and docker/cli, as their own build scripts use

    @property
    def ref(self) -> str:
        return f"{self.module}@{self.version}"


@dataclass(frozen=True)
class ArchiveSource:
    """A tarball tried from each URL in turn, pinned by the hash of the tree it unpacks to."""

    urls: tuple[str, ...]
    tree: str


@dataclass(frozen=True)
class GoBinary:
    name: str
    package: str
    tags: tuple[str, ...]
    ldflags: tuple[str, ...]


@dataclass(frozen=True)
class CMakeBinary:
    name: str
    target: str
    args: tuple[str, ...]
    output: str


Binary = GoBinary | CMakeBinary


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    commit: str
    source: GoModuleSource | ArchiveSource
    binaries: tuple[Binary, ...]
    cgo: bool
    c_libraries: tuple[str, ...]

    @property
    def needs_c(self) -> bool:
        return self.cgo or any(isinstance(b, CMakeBinary) for b in self.binaries)


@dataclass(frozen=True)
class Release:
    version: str
    date: datetime

    @property
    def epoch(self) -> int:
        return int(self.date.timestamp())


@dataclass(frozen=True)
class BuildConfig:
    path: Path
    release: Release
    strategy: str
    go386: str
    go_version: str
    components: tuple[Component, ...]

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def host_arch(self) -> Arch:
        return Arch.I386

    @property
    def target(self) -> str:
        """Name of this build's output folder: build/<target>/, later dist/<target>/."""
        name = f"{self.strategy}-{self.host_arch.names.debian}"
        return name if self.go386 == "sse2" else f"{name}-{self.go386}"

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)


@dataclass(frozen=True)
class GoToolchainPin:
    version: str
    sums: dict[str, str]  # "linux-amd64" -> h1: hash of golang.org/toolchain's module


@dataclass(frozen=True)
class CToolchain:
    """How one build machine compiles C for one host machine."""

    build: Arch
    host: Arch
    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    pkg_config_libdir: str | None
    apt_packages: tuple[str, ...]
    foreign_arch: str | None


@dataclass(frozen=True)
class Toolchains:
    go: dict[str, GoToolchainPin]
    c: tuple[CToolchain, ...]

    def c_for(self, build: Arch, host: Arch) -> CToolchain | None:
        return next((t for t in self.c if t.build is build and t.host is host), None)


_GO_SUM = re.compile(r"^h1:[A-Za-z0-9+/]{43}=$")
_TREE = re.compile(r"^sha256:[0-9a-f]{64}$")
_GO_VERSION = re.compile(r"^1\.\d+(\.\d+)?$")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def load_config(path: Path) -> BuildConfig:
    root = load_yaml(path)
    top = root.mapping(allowed=("release", "strategy", "go386", "go", "components"), required=("release", "go", "components"))
    release_node = top["release"].mapping(allowed=("version", "date"), required=("version", "date"))
    release = Release(
        version=release_node["version"].string("28.5.2"),
        date=_date(release_node["date"]),
    )
    go = top["go"].mapping(allowed=("version",), required=("version",))
    go_version = _matching(go["version"], _GO_VERSION, "1.24.9")
    components = tuple(_component(name, node) for name, node in top["components"].mapping().items())
    if not components:
        raise top["components"].error("no components listed")
    seen: dict[str, str] = {}
    for component in components:
        for binary in component.binaries:
            if binary.name in seen:
                raise top["components"].error(f"binary {binary.name!r} is built by both {seen[binary.name]} and {component.name}")
            seen[binary.name] = component.name
    return BuildConfig(
        path=path.resolve(),
        release=release,
        strategy=top["strategy"].choice(STRATEGIES) if "strategy" in top else "native32",
        go386=top["go386"].choice(GO386_MODES) if "go386" in top else "sse2",
        go_version=go_version,
        components=components,
    )


def _date(node: Node) -> datetime:
    value = node.value
    if isinstance(value, datetime):  # YAML's own timestamp type, when unquoted
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(node.string("2025-11-05T14:19:32Z").replace("Z", "+00:00"))
        except ValueError:
            raise node.error("expected a date like '2025-11-05T14:19:32Z'") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _matching(node: Node, pattern: re.Pattern[str], example: str) -> str:
    text = node.string(example) if not isinstance(node.value, (int, float)) else str(node.value)
    if isinstance(node.value, float):
        raise node.error(f"expected a quoted string like {example!r} (YAML read {node.value!r} as a number)")
    if not pattern.match(text):
        raise node.error(f"expected a string like {example!r}, got {text!r}")
    return text


def _component(name: str, node: Node) -> Component:
    if not _NAME.match(name):
        raise node.error("component names are lower-case words like 'engine'")
    fields = node.mapping(
        allowed=("version", "commit", "source", "binaries", "cgo", "c_libraries"),
        required=("version", "commit", "source", "binaries"),
    )
    source = _source(fields["source"])
    binaries_node = fields["binaries"]
    binaries = tuple(_binary(bname, bnode, source) for bname, bnode in binaries_node.mapping().items())
    if not binaries:
        raise binaries_node.error("no binaries listed")
    return Component(
        name=name,
        version=_matching(fields["version"], re.compile(r"^v?\d+(\.\d+)+\S*$"), "1.7.28"),
        commit=fields["commit"].string("89c5e8f"),
        source=source,
        binaries=binaries,
        cgo=fields["cgo"].boolean() if "cgo" in fields else False,
        c_libraries=fields["c_libraries"].strings() if "c_libraries" in fields else (),
    )


def _source(node: Node) -> GoModuleSource | ArchiveSource:
    fields = node.mapping(allowed=("module", "version", "sum", "modfile", "urls", "tree"))
    if "module" in fields:
        for archive_key in ("urls", "tree"):
            if archive_key in fields:
                raise fields[archive_key].error("a Go module source takes module, version, sum and modfile, not urls or tree")
        for key in ("version", "sum"):
            if key not in fields:
                raise node.error(f"missing required key {key!r}")
        return GoModuleSource(
            module=fields["module"].string("github.com/docker/cli"),
            version=fields["version"].string("v28.5.2+incompatible"),
            sum=_matching(fields["sum"], _GO_SUM, "h1:<43 base64 characters>="),
            modfile=fields["modfile"].string("vendor.mod") if "modfile" in fields else None,
        )
    if "urls" in fields:
        if "tree" not in fields:
            raise node.error("missing required key 'tree'", hint="run dock32 once: the error names the tree hash it found")
        urls = fields["urls"].strings()
        if not urls:
            raise fields["urls"].error("needs at least one URL")
        return ArchiveSource(urls=urls, tree=_matching(fields["tree"], _TREE, "sha256:<64 hex digits>"))
    raise node.error("needs either 'module' (a Go module) or 'urls' (a tarball)")


def _binary(name: str, node: Node, source: GoModuleSource | ArchiveSource) -> Binary:
    if isinstance(source, GoModuleSource):
        fields = node.mapping(allowed=("package", "tags", "ldflags"), required=("package",))
        flag_nodes = fields["ldflags"].sequence() if "ldflags" in fields else []
        ldflags = tuple(flag_node.string("-X main.version={version}") for flag_node in flag_nodes)
        for flag_node, flag in zip(flag_nodes, ldflags, strict=True):
            for field in re.findall(r"{(\w+)}", flag):
                if field not in LDFLAG_FIELDS:
                    raise flag_node.error(f"unknown placeholder {{{field}}}", hint=f"use one of {', '.join('{' + f + '}' for f in LDFLAG_FIELDS)}")
        return GoBinary(
            name=name,
            package=fields["package"].string("./cmd/dockerd"),
            tags=fields["tags"].strings() if "tags" in fields else (),
            ldflags=ldflags,
        )
    fields = node.mapping(allowed=("cmake_target", "cmake_args", "output"), required=("cmake_target",))
    target = fields["cmake_target"].string("tini-static")
    return CMakeBinary(
        name=name,
        target=target,
        args=fields["cmake_args"].strings() if "cmake_args" in fields else (),
        output=fields["output"].string("tini-static") if "output" in fields else target,
    )


def load_toolchains(directory: Path) -> Toolchains:
    go_root = load_yaml(directory / "go.yaml").mapping(allowed=("go",), required=("go",))
    pins: dict[str, GoToolchainPin] = {}
    for version, node in go_root["go"].mapping().items():
        if not _GO_VERSION.match(version):
            raise node.error("keys are Go versions like '1.24.9'")
        sums = {platform: _matching(sum_node, _GO_SUM, "h1:...=") for platform, sum_node in node.mapping(allowed=("linux-amd64", "linux-386")).items()}
        pins[version] = GoToolchainPin(version=version, sums=sums)
    c_root = load_yaml(directory / "c.yaml").mapping(allowed=("c",), required=("c",))
    c_toolchains = []
    for node in c_root["c"].mapping().values():
        fields = node.mapping(
            allowed=("build", "host", "cc", "cflags", "ldflags", "pkg_config_libdir", "apt", "foreign_arch"),
            required=("build", "host", "cc", "apt"),
        )
        arch_names = [a.names.debian for a in Arch]
        c_toolchains.append(
            CToolchain(
                build=_arch(fields["build"].choice(arch_names)),
                host=_arch(fields["host"].choice(arch_names)),
                cc=fields["cc"].string("i686-linux-gnu-gcc"),
                cflags=fields["cflags"].strings() if "cflags" in fields else (),
                ldflags=fields["ldflags"].strings() if "ldflags" in fields else (),
                pkg_config_libdir=fields["pkg_config_libdir"].string() if "pkg_config_libdir" in fields else None,
                apt_packages=fields["apt"].strings(),
                foreign_arch=fields["foreign_arch"].string("i386") if "foreign_arch" in fields else None,
            )
        )
    return Toolchains(go=pins, c=tuple(c_toolchains))


def _arch(debian_name: str) -> Arch:
    return next(a for a in Arch if a.names.debian == debian_name)
