"""buildcfg.yaml and toolchains/*.yaml, loaded once into frozen dataclasses.

Every check happens here, at load time, so a bad key fails before any work
starts, with file, line and key in the message.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from dock32.core.arch import Arch
from dock32.model.flavour import GO386_MODES, STRATEGIES, Flavour, FlavourError
from dock32.model.yamlsrc import Node, load_yaml, with_overrides

# Where `key=value` overrides of buildcfg.yaml come from, as their errors name it.
OVERRIDES_SOURCE = "DOCK32_SET"

LDFLAG_FIELDS = ("version", "commit", "build_time")
# The platforms of golang.org/toolchain modules that toolchains/go.yaml may pin.
GO_PLATFORMS = ("linux-amd64", "linux-386")


@dataclass(frozen=True)
class GoModuleSource:
    """A Go module fetched through GOPROXY and checked against its go.sum-style h1: hash."""

    module: str
    version: str
    sum: str
    modfile: str | None  # vendor.mod for moby and docker/cli, as their own build scripts use
    # Dependencies copied into the tree (_dock32/modules/<path>) and replaced there, so that a patch can change them.
    patch_modules: tuple[str, ...] = ()

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


class Built(Protocol):
    """What a release build is made of: its release, flavour and components. BuildConfig is one, and so is each
    packaging stage's input, so the code that reads them serves the plan and the tasks alike."""

    @property
    def release(self) -> Release: ...

    @property
    def flavour(self) -> Flavour: ...

    @property
    def components(self) -> tuple[Component, ...]: ...

    def component(self, name: str) -> Component: ...


def component_named(components: tuple[Component, ...], name: str) -> Component:
    for component in components:
        if component.name == name:
            return component
    raise KeyError(name)


@dataclass(frozen=True)
class BuildConfig:
    path: Path
    release: Release
    flavour: Flavour
    go_version: str
    components: tuple[Component, ...]
    packaging: Packaging

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def host_arch(self) -> Arch:
        """The flavour's (Flavour.host_arch)."""
        return self.flavour.host_arch

    @property
    def deb_arch(self) -> Arch:
        """The flavour's (Flavour.deb_arch)."""
        return self.flavour.deb_arch

    @property
    def target(self) -> str:
        """Name of this build's output folder: build/<target>/, later dist/<target>/."""
        name = self.flavour.target_name
        # Targets for other distributions get folders of their own; the default keeps the short name.
        return name if self.packaging.distro_name == DEFAULT_DISTRO else f"{name}-{self.packaging.distro_name}"

    def component(self, name: str) -> Component:
        return component_named(self.components, name)


@dataclass(frozen=True)
class GoToolchainPin:
    version: str
    sums: dict[str, str]  # "linux-amd64" -> h1: hash of golang.org/toolchain's module
    # A step of the bootstrap chain only: where the pinned Go is built from source and no Go here is new enough to
    # bootstrap it, this Go is built first (from its source) to bootstrap the next (README: "Building on the 32-bit box").
    bootstrap: bool = False


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
    host_packages: tuple[str, ...]  # toolchains/host.yaml: Debian packages every build machine needs
    test_packages: tuple[str, ...] = ()  # toolchains/host.yaml test_apt: what only the tests use (`dock32 setup --tests`)

    def c_for(self, build: Arch, host: Arch) -> CToolchain | None:
        return next((t for t in self.c if t.build is build and t.host is host), None)


# Every pattern is used with fullmatch: `$` would let a trailing newline through.
_GO_SUM = re.compile(r"h1:[A-Za-z0-9+/]{43}=")
_TREE = re.compile(r"sha256:[0-9a-f]{64}")
_GO_VERSION = re.compile(r"1\.\d+(\.\d+)?")
_NAME = re.compile(r"[a-z][a-z0-9-]*")
# Config values reach programs only as argv items, never through a shell; still, values that become command-line
# words, file names and package fields are held to the characters they need, so none can carry shell syntax.
_VERSION = re.compile(r"v?\d+(\.\d+)+[A-Za-z0-9.+~-]*")  # also a Debian upstream version, which has no "_"
_WORD = re.compile(r"[A-Za-z0-9.+~_-]+")  # commits, Go module versions
_BINARY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]+")  # Debian policy 5.6.1
_SECTION = re.compile(r"[a-z0-9][a-z0-9/+-]*")  # "admin", "contrib/net"
_APT_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]+(:[a-z0-9]+)?")  # a package, optionally with :architecture
_GO_TAG = re.compile(r"[A-Za-z0-9_.]+")
_PATH_ELEMENT = r"[A-Za-z0-9_~+-][A-Za-z0-9._~+-]*"  # cannot start with ".": no "..", no hidden files
# A relative path inside a tree, such as a modfile or a CMake output.
_RELATIVE_PATH = re.compile(rf"{_PATH_ELEMENT}(/{_PATH_ELEMENT})*")
# A Go module path: dot-separated host, then slash-separated elements (no "..", no leading "/").
_MODULE_PATH = re.compile(rf"[a-z0-9.-]+\.[a-z]+(/{_PATH_ELEMENT})*")
# A Go package: "." or "./dir/..." in the module, or a full import path.
_GO_PACKAGE = re.compile(rf"\.(/{_PATH_ELEMENT})*|{_MODULE_PATH.pattern}")
# What has no business in a flag: shell syntax, backslashes and control characters. Spaces and quotes stay,
# for -X "name=value with spaces", which Go's own flag parser reads.
_FLAG_FORBIDDEN = re.compile(r"[;&|`$<>\\\x00-\x1f\x7f]")


def load_config(path: Path, overrides: Sequence[str] = ()) -> BuildConfig:
    """buildcfg.yaml, with `key=value` overrides (DOCK32_SET, --set) laid over it before any check."""
    root = with_overrides(load_yaml(path), overrides, OVERRIDES_SOURCE)
    top = root.mapping(allowed=("release", "strategy", "go386", "go", "components", "packaging"), required=("release", "go", "components"))
    release_node = top["release"].mapping(allowed=("version", "date", "components"), required=("version", "date"))
    release = Release(
        version=release_node["version"].string("29.8.1"),
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
    if "components" in release_node:
        _check_release_components(release_node, top["components"].mapping(), release.version)
    try:
        flavour = Flavour(
            strategy=top["strategy"].choice(STRATEGIES) if "strategy" in top else Flavour.strategy,
            go386=top["go386"].choice(GO386_MODES) if "go386" in top else Flavour.go386,
        )
    except FlavourError as exc:
        raise top["go386"].error(str(exc), hint="drop go386, or use strategy native32") from None
    return BuildConfig(
        path=path.resolve(),
        release=release,
        flavour=flavour,
        go_version=go_version,
        components=components,
        packaging=_packaging(top.get("packaging")),
    )


# A version in a commit or module version: v29.8.1, docker-v29.8.1, v29.8.1+incompatible.
_RELEASE_IN = re.compile(r"(?<![0-9.])(\d+\.\d+\.\d+)(?![0-9])")
_PRERELEASE = re.compile(r"v\d+\.\d+\.\d+-[0-9A-Za-z.-]+")


def _check_release_components(release_node: dict[str, Node], components: dict[str, Node], version: str) -> None:
    """release.components names the components that are the release itself (Docker's cli and engine): their
    versions, and the versions their tags and module versions spell, must be the release's, or `docker version`
    shows one release and the packages another."""
    where = f"release.version ({release_node['version'].file.name}:{release_node['version'].line})"
    for item in release_node["components"].sequence():
        name = item.string("engine")
        if name not in components:
            raise item.error(f"no component {name!r}", hint=f"one of {', '.join(components)}")
        fields = components[name].mapping()
        spelled = [fields["version"], fields["commit"]]
        source = fields["source"].mapping()
        # moby tags its release commits as pre-releases of its /v2 module (v2.0.0-beta.N): such a version spells
        # no release, and bump identified it from the module's releases/versions.yaml.
        if "module" in source and "version" in source and not _PRERELEASE.fullmatch(source["version"].string()):
            spelled.append(source["version"])
        for node in spelled:
            text = node.string()
            found = _RELEASE_IN.search(text)
            if (node is fields["version"] and text != version) or (found and found.group(1) != version):
                raise node.error(f"{text!r} is not the release's {version!r} of {where}", hint="a release has one version: change both, or run `dock32 bump`")


def _date(node: Node) -> datetime:
    value = node.value
    try:
        # YAML's own timestamp type when unquoted, else ISO 8601 text.
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(node.string("2025-11-05T14:19:32Z").replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves the time out of years 1-9999
        raise node.error("expected a date like '2025-11-05T14:19:32Z'") from None


def _matching(node: Node, pattern: re.Pattern[str], example: str) -> str:
    text = node.string(example) if not isinstance(node.value, (int, float)) else str(node.value)
    if isinstance(node.value, float):
        raise node.error(f"expected a quoted string like {example!r} (YAML read {node.value!r} as a number)")
    if not pattern.fullmatch(text):
        raise node.error(f"expected a string like {example!r}, got {text!r}")
    return text


def _text(node: Node, pattern: re.Pattern[str], example: str) -> str:
    """Like _matching, but only a string will do: an unquoted 0123456 is the number 42798 to YAML, not a commit."""
    text = node.string(example)
    if not pattern.fullmatch(text):
        raise node.error(f"expected a string like {example!r}, got {text!r}")
    return text


def _flag(node: Node, example: str) -> str:
    """A compiler or linker flag: free text for Go's or CMake's own parser, but nothing a shell would act on."""
    text = node.string(example)
    bad = _FLAG_FORBIDDEN.search(text)
    if bad:
        raise node.error(f"{bad.group()!r} has no place in a flag: {text!r}", hint="flags go to the tools as arguments, never through a shell")
    return text


def _template(node: Node, fields: Collection[str], hint: str) -> str:
    """A string with {placeholders}, each one of fields, so that str.format fills it in later without surprises."""
    text = node.string()
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise node.error(f"unbalanced {{ or }} in {text!r}", hint="write {{ or }} for a literal brace") from None
    for _, name, spec, conversion in parts:
        if name is not None and (name not in fields or spec or conversion):
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise node.error(f"unknown placeholder {{{shown}}}", hint=hint)
    return text


def _path_in_tree(node: Node, example: str, text: str | None = None) -> str:
    """A path inside some tree (the node's text, or the given part of it): no "..", no control characters."""
    text = node.string(example) if text is None else text
    if ".." in text.split("/") or not text.isprintable():
        raise node.error(f"expected a path inside the tree like {example!r}, got {node.value!r}")
    return text


def _component(name: str, node: Node) -> Component:
    if not _NAME.fullmatch(name):
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
        version=_matching(fields["version"], _VERSION, "1.7.28"),
        commit=_text(fields["commit"], _WORD, "89c5e8f"),
        source=source,
        binaries=binaries,
        cgo=fields["cgo"].boolean() if "cgo" in fields else False,
        c_libraries=fields["c_libraries"].strings() if "c_libraries" in fields else (),
    )


def _source(node: Node) -> GoModuleSource | ArchiveSource:
    fields = node.mapping(allowed=("module", "version", "sum", "modfile", "patch_modules", "urls", "tree"))
    if "module" in fields:
        for archive_key in ("urls", "tree"):
            if archive_key in fields:
                raise fields[archive_key].error("a Go module source takes module, version, sum, modfile and patch_modules, not urls or tree")
        for key in ("version", "sum"):
            if key not in fields:
                raise node.error(f"missing required key {key!r}")
        return GoModuleSource(
            module=_text(fields["module"], _MODULE_PATH, "github.com/docker/cli"),
            version=_text(fields["version"], _WORD, "v28.5.2+incompatible"),
            sum=_matching(fields["sum"], _GO_SUM, "h1:<43 base64 characters>="),
            modfile=_text(fields["modfile"], _RELATIVE_PATH, "vendor.mod") if "modfile" in fields else None,
            patch_modules=tuple(_matching(item, _MODULE_PATH, "github.com/ishidawataru/sctp") for item in fields["patch_modules"].sequence())
            if "patch_modules" in fields
            else (),
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
    if not _BINARY_NAME.fullmatch(name):
        raise node.error("binary names are file names like 'docker-proxy'")
    if isinstance(source, GoModuleSource):
        fields = node.mapping(allowed=("package", "tags", "ldflags"), required=("package",))
        ldflags = tuple(_ldflag(flag_node) for flag_node in fields["ldflags"].sequence()) if "ldflags" in fields else ()
        return GoBinary(
            name=name,
            package=_text(fields["package"], _GO_PACKAGE, "./cmd/dockerd"),
            tags=tuple(_text(tag, _GO_TAG, "netgo") for tag in fields["tags"].sequence()) if "tags" in fields else (),
            ldflags=ldflags,
        )
    fields = node.mapping(allowed=("cmake_target", "cmake_args", "output"), required=("cmake_target",))
    target = _text(fields["cmake_target"], _BINARY_NAME, "tini-static")
    return CMakeBinary(
        name=name,
        target=target,
        args=tuple(_flag(arg, "-DCMAKE_POLICY_VERSION_MINIMUM=3.5") for arg in fields["cmake_args"].sequence()) if "cmake_args" in fields else (),
        output=_text(fields["output"], _RELATIVE_PATH, "tini-static") if "output" in fields else target,
    )


def _ldflag(node: Node) -> str:
    _template(node, LDFLAG_FIELDS, hint=f"use one of {', '.join('{' + f + '}' for f in LDFLAG_FIELDS)}")
    return _flag(node, "-X main.version={version}")


def load_toolchains(directory: Path) -> Toolchains:
    go_root = load_yaml(directory / "go.yaml").mapping(allowed=("go",), required=("go",))
    pins: dict[str, GoToolchainPin] = {}
    for version, node in go_root["go"].mapping().items():
        if not _GO_VERSION.fullmatch(version):
            raise node.error("keys are Go versions like '1.24.9'")
        fields = node.mapping(allowed=(*GO_PLATFORMS, "bootstrap"))
        sums = {platform: _matching(sum_node, _GO_SUM, "h1:...=") for platform, sum_node in fields.items() if platform in GO_PLATFORMS}
        bootstrap = fields["bootstrap"].boolean() if "bootstrap" in fields else False
        if bootstrap and not sums:
            raise fields["bootstrap"].error(
                "a bootstrap step is built from the source in a golang.org/toolchain module: it needs that module's h1:",
                hint=f"add linux-amd64: \"h1:...\" (the sum of golang.org/toolchain@v0.0.1-go{version}.linux-amd64)",
            )
        pins[version] = GoToolchainPin(version=version, sums=sums, bootstrap=bootstrap)
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
                cc=_flag(fields["cc"], "i686-linux-gnu-gcc"),
                cflags=tuple(_flag(flag, "-O2") for flag in fields["cflags"].sequence()) if "cflags" in fields else (),
                ldflags=tuple(_flag(flag, "-L/usr/lib/i386-linux-gnu") for flag in fields["ldflags"].sequence()) if "ldflags" in fields else (),
                pkg_config_libdir=_flag(fields["pkg_config_libdir"], "/usr/lib/i386-linux-gnu/pkgconfig") if "pkg_config_libdir" in fields else None,
                apt_packages=_apt_names(fields["apt"]),
                foreign_arch=_text(fields["foreign_arch"], _NAME, "i386") if "foreign_arch" in fields else None,
            )
        )
    host = load_yaml(directory / "host.yaml").mapping(allowed=("apt", "test_apt"), required=("apt",))
    return Toolchains(
        go=pins,
        c=tuple(c_toolchains),
        host_packages=_apt_names(host["apt"]),
        test_packages=_apt_names(host["test_apt"]) if "test_apt" in host else (),
    )


def _apt_names(node: Node) -> tuple[str, ...]:
    """Debian package names: they go to apt-get as arguments and into the install command dock32 suggests."""
    return tuple(_text(item, _APT_NAME, "libseccomp-dev:i386") for item in node.sequence())


def _arch(debian_name: str) -> Arch:
    return next(a for a in Arch if a.names.debian == debian_name)


# --- packaging --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distro:
    """A target distribution: the version suffix and the paths that differ between releases."""

    vendor: str
    version_id: str
    codename: str
    merged_usr: bool  # systemd units live in /usr/lib/systemd/system on merged-/usr releases

    def version_suffix(self, revision: int) -> str:
        return f"-{revision}~{self.vendor}.{self.version_id}~{self.codename}"

    @property
    def unitdir(self) -> str:
        return "/usr/lib/systemd/system" if self.merged_usr else "/lib/systemd/system"


DEFAULT_DISTRO = "debian-12"
DISTROS = {
    "debian-12": Distro("debian", "12", "bookworm", merged_usr=False),
    "debian-13": Distro("debian", "13", "trixie", merged_usr=True),
    "ubuntu-22.04": Distro("ubuntu", "22.04", "jammy", merged_usr=False),
    "ubuntu-24.04": Distro("ubuntu", "24.04", "noble", merged_usr=True),
}
COMPRESSIONS = ("xz", "zstd")
DEFAULT_MAINTAINER = "dock32 builders <dock32@example.org>"


@dataclass(frozen=True)
class Packaging:
    """The packaging: section of buildcfg.yaml."""

    distro_name: str
    compression: str
    maintainer: str
    gpg_key: str | None
    revision: int = 1  # the Debian revision: a rebuild of the same release with other packaging gets the next one

    @property
    def distro(self) -> Distro:
        return DISTROS[self.distro_name]


@dataclass(frozen=True)
class PackageFile:
    """One file of a package: from a built binary, a component's tree, packaging/files/, or a built program's output."""

    to: str
    binary: str | None = None
    source: tuple[str, str] | None = None  # (component, path in its tree)
    file: str | None = None  # under packaging/files/
    run: tuple[str, ...] | None = None  # a built binary and its arguments; stdout is the file
    mode: int = 0o644
    conffile: bool = False
    replace: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str  # template: {component} and {distro_suffix}
    source: str
    section: str
    description: str
    pre_depends: tuple[str, ...]
    depends: tuple[str, ...]
    recommends: tuple[str, ...]
    suggests: tuple[str, ...]
    conflicts: tuple[str, ...]
    breaks: tuple[str, ...]
    replaces: tuple[str, ...]
    provides: tuple[str, ...]
    enhances: tuple[str, ...]
    license_from: str
    copyright: str
    scripts: tuple[str, ...]
    files: tuple[PackageFile, ...]


def _packaging(node: Node | None) -> Packaging:
    if node is None:
        return Packaging(distro_name=DEFAULT_DISTRO, compression="xz", maintainer=DEFAULT_MAINTAINER, gpg_key=None)
    fields = node.mapping(allowed=("distro", "compression", "maintainer", "gpg_key", "revision"))
    maintainer = fields["maintainer"].string("Jane Doe <jane@example.org>") if "maintainer" in fields else DEFAULT_MAINTAINER
    if not re.fullmatch(r"[^<>\x00-\x1f]+ <[^<>@\s]+@[^<>\s]+>", maintainer):  # one line: it goes into each control file
        raise fields["maintainer"].error(f"expected 'Name <email>', got {maintainer!r}")
    return Packaging(
        distro_name=fields["distro"].choice(DISTROS) if "distro" in fields else DEFAULT_DISTRO,
        compression=fields["compression"].choice(COMPRESSIONS) if "compression" in fields else "xz",
        maintainer=maintainer,
        gpg_key=fields["gpg_key"].string("0xFINGERPRINT") if "gpg_key" in fields else None,
        revision=_revision(fields["revision"]) if "revision" in fields else 1,
    )


def _revision(node: Node) -> int:
    if isinstance(node.value, bool) or not isinstance(node.value, int) or node.value < 1:
        raise node.error(f"expected a whole number from 1 up (the Debian revision), got {node.value!r}")
    return node.value


_PACKAGE_SCRIPTS = ("preinst", "postinst", "prerm", "postrm")


def load_packages(path: Path, config: BuildConfig) -> tuple[DebPackage, ...]:
    """packaging/packages.yaml, checked against the config: every binary, component and file it names exists."""
    root = load_yaml(path).mapping(allowed=("packages",), required=("packages",))
    binaries = {b.name for c in config.components for b in c.binaries}
    components = {c.name for c in config.components}
    packages = []
    packaged: dict[str, str] = {}
    for name, node in root["packages"].mapping().items():
        if not _DEB_NAME.fullmatch(name):
            raise node.error("package names are Debian package names like 'docker-ce'")
        fields = node.mapping(
            allowed=(
                "version", "source", "section", "description", "pre_depends", "depends", "recommends", "suggests", "conflicts", "breaks", "replaces",
                "provides", "enhances", "license_from", "copyright", "scripts", "files",
            ),
            required=("version", "section", "description", "license_from", "copyright", "files"),
        )
        version = fields["version"].string("5:{engine}{distro_suffix}")
        placeholders = f"use a component name ({', '.join(sorted(components))}) or distro_suffix"
        for key in ("version", "pre_depends", "depends", "recommends", "suggests", "conflicts", "breaks", "replaces", "provides", "enhances"):
            if key not in fields:
                continue
            for text_node in [fields[key]] if key == "version" else fields[key].sequence():
                _template(text_node, components | {"distro_suffix"}, placeholders)
                if not text_node.string().isprintable():  # a newline would start a new control field
                    raise text_node.error(f"control characters in {text_node.string()!r}")
        license_from = fields["license_from"].choice(sorted(components))
        scripts = tuple(s.choice(_PACKAGE_SCRIPTS) for s in fields["scripts"].sequence()) if "scripts" in fields else ()
        files = []
        for file_node in fields["files"].sequence():
            entry = file_node.mapping(allowed=("to", "binary", "source", "file", "run", "mode", "conffile", "replace"), required=("to",))
            kinds = [k for k in ("binary", "source", "file", "run") if k in entry]
            if len(kinds) != 1:
                raise file_node.error("each file needs exactly one of binary, source, file or run")
            binary = entry["binary"].string("dockerd") if "binary" in entry else None
            run = entry["run"].strings() if "run" in entry else None
            for needed, where in ((binary, "binary"), (run[0] if run else None, "run")):
                if needed is not None and needed not in binaries:
                    raise entry[where].error(f"no binary {needed!r} is built", hint=f"built binaries: {', '.join(sorted(binaries))}")
            source = None
            if "source" in entry:
                component, _, inner = entry["source"].string("engine:contrib/init/systemd/docker.service").partition(":")
                _path_in_tree(entry["source"], "engine:contrib/init/systemd/docker.service", inner)
                if component not in components or not inner or inner.startswith("/"):
                    raise entry["source"].error("expected '<component>:<path in its source tree>'", hint=f"components: {', '.join(sorted(components))}")
                source = (component, inner)
            if "file" in entry and not _is_file(path.parent / "files" / _path_in_tree(entry["file"], "containerd.io/config.toml")):
                raise entry["file"].error(f"{path.parent / 'files' / entry['file'].value} does not exist")
            mode_text = entry["mode"].string("0755") if "mode" in entry else ("0755" if binary else "0644")
            if mode_text.lstrip("0") not in ("644", "755"):
                raise entry["mode"].error(f"expected '0644' or '0755', got {mode_text!r}", hint="Debian policy: files are 0644, programs 0755")
            to = _path_in_tree(entry["to"], "/usr/bin/docker")
            if not to.startswith(("/", "{unitdir}/")):
                raise entry["to"].error("expected an absolute path (or {unitdir}/NAME for a systemd unit)")
            if to in packaged:
                raise entry["to"].error(f"{to} is already in package {packaged[to]}")
            packaged[to] = name
            files.append(
                PackageFile(
                    to=to,
                    binary=binary,
                    source=source,
                    file=entry["file"].string() if "file" in entry else None,
                    run=run,
                    mode=int(mode_text, 8),
                    conffile=entry["conffile"].boolean() if "conffile" in entry else False,
                    replace=tuple((k, v.string()) for k, v in entry["replace"].mapping().items()) if "replace" in entry else (),
                )
            )
        for script in scripts:
            if not _is_file(path.parent / "scripts" / name / script):
                raise fields["scripts"].error(f"{path.parent / 'scripts' / name / script} does not exist")

        def strings(key: str, fields: dict[str, Node] = fields) -> tuple[str, ...]:
            return fields[key].strings() if key in fields else ()

        packages.append(
            DebPackage(
                name=name,
                version=version,
                source=_text(fields["source"], _DEB_NAME, "docker-ce") if "source" in fields else name,
                section=_text(fields["section"], _SECTION, "admin"),
                description=fields["description"].string("Summary line\nLong text"),
                pre_depends=strings("pre_depends"),
                depends=strings("depends"),
                recommends=strings("recommends"),
                suggests=strings("suggests"),
                conflicts=strings("conflicts"),
                breaks=strings("breaks"),
                replaces=strings("replaces"),
                provides=strings("provides"),
                enhances=strings("enhances"),
                license_from=license_from,
                copyright=fields["copyright"].string("2013-2025 Docker, Inc."),
                scripts=scripts,
                files=tuple(files),
            )
        )
    return tuple(packages)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say
        return False
