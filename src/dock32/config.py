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


@dataclass(frozen=True)
class BuildConfig:
    path: Path
    release: Release
    strategy: str
    go386: str
    go_version: str
    components: tuple[Component, ...]
    packaging: Packaging

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
    host_packages: tuple[str, ...]  # toolchains/host.yaml: Debian packages every build machine needs

    def c_for(self, build: Arch, host: Arch) -> CToolchain | None:
        return next((t for t in self.c if t.build is build and t.host is host), None)


_GO_SUM = re.compile(r"^h1:[A-Za-z0-9+/]{43}=$")
_TREE = re.compile(r"^sha256:[0-9a-f]{64}$")
_GO_VERSION = re.compile(r"^1\.\d+(\.\d+)?$")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# A Go module path: dot-separated host, then slash-separated elements (no "..", no leading "/").
_MODULE_PATH = re.compile(r"^[a-z0-9.-]+\.[a-z]+(/[A-Za-z0-9_~+-][A-Za-z0-9._~+-]*)+$")


def load_config(path: Path) -> BuildConfig:
    root = load_yaml(path)
    top = root.mapping(allowed=("release", "strategy", "go386", "go", "components", "packaging"), required=("release", "go", "components"))
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
        packaging=_packaging(top.get("packaging")),
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
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    fields = node.mapping(allowed=("module", "version", "sum", "modfile", "patch_modules", "urls", "tree"))
    if "module" in fields:
        for archive_key in ("urls", "tree"):
            if archive_key in fields:
                raise fields[archive_key].error("a Go module source takes module, version, sum, modfile and patch_modules, not urls or tree")
        for key in ("version", "sum"):
            if key not in fields:
                raise node.error(f"missing required key {key!r}")
        return GoModuleSource(
            module=fields["module"].string("github.com/docker/cli"),
            version=fields["version"].string("v28.5.2+incompatible"),
            sum=_matching(fields["sum"], _GO_SUM, "h1:<43 base64 characters>="),
            modfile=fields["modfile"].string("vendor.mod") if "modfile" in fields else None,
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
    host = load_yaml(directory / "host.yaml").mapping(allowed=("apt",), required=("apt",))
    return Toolchains(go=pins, c=tuple(c_toolchains), host_packages=host["apt"].strings())


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
    conflicts: tuple[str, ...]
    replaces: tuple[str, ...]
    provides: tuple[str, ...]
    enhances: tuple[str, ...]
    license_from: str
    copyright: str
    scripts: tuple[str, ...]
    files: tuple[PackageFile, ...]


def _packaging(node: Node | None) -> Packaging:
    if node is None:
        return Packaging(distro_name="debian-12", compression="xz", maintainer=DEFAULT_MAINTAINER, gpg_key=None)
    fields = node.mapping(allowed=("distro", "compression", "maintainer", "gpg_key", "revision"))
    maintainer = fields["maintainer"].string("Jane Doe <jane@example.org>") if "maintainer" in fields else DEFAULT_MAINTAINER
    if not re.match(r"^[^<>]+ <[^<>@\s]+@[^<>\s]+>$", maintainer):
        raise fields["maintainer"].error(f"expected 'Name <email>', got {maintainer!r}")
    return Packaging(
        distro_name=fields["distro"].choice(DISTROS) if "distro" in fields else "debian-12",
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
        fields = node.mapping(
            allowed=(
                "version", "source", "section", "description", "pre_depends", "depends", "recommends", "conflicts", "replaces",
                "provides", "enhances", "license_from", "copyright", "scripts", "files",
            ),
            required=("version", "section", "description", "license_from", "copyright", "files"),
        )
        version = fields["version"].string("5:{engine}{distro_suffix}")
        for key in ("version", "pre_depends", "depends", "recommends", "conflicts", "replaces", "provides", "enhances"):
            if key not in fields:
                continue
            for text_node in [fields[key]] if key == "version" else fields[key].sequence():
                for placeholder in re.findall(r"{(\w+)}", text_node.string()):
                    if placeholder not in components | {"distro_suffix"}:
                        names = ", ".join(sorted(components))
                        raise text_node.error(f"unknown placeholder {{{placeholder}}}", hint=f"use a component name ({names}) or distro_suffix")
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
                if component not in components or not inner:
                    raise entry["source"].error("expected '<component>:<path in its source tree>'", hint=f"components: {', '.join(sorted(components))}")
                source = (component, inner)
            if "file" in entry and not (path.parent / "files" / entry["file"].string()).is_file():
                raise entry["file"].error(f"{path.parent / 'files' / entry['file'].value} does not exist")
            mode_text = entry["mode"].string("0755") if "mode" in entry else ("0755" if binary else "0644")
            if mode_text.lstrip("0") not in ("644", "755"):
                raise entry["mode"].error(f"expected '0644' or '0755', got {mode_text!r}", hint="Debian policy: files are 0644, programs 0755")
            to = entry["to"].string("/usr/bin/docker")
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
            if not (path.parent / "scripts" / name / script).is_file():
                raise fields["scripts"].error(f"{path.parent / 'scripts' / name / script} does not exist")

        def strings(key: str, fields: dict[str, Node] = fields) -> tuple[str, ...]:
            return fields[key].strings() if key in fields else ()

        packages.append(
            DebPackage(
                name=name,
                version=version,
                source=fields["source"].string() if "source" in fields else name,
                section=fields["section"].string("admin"),
                description=fields["description"].string("Summary line\nLong text"),
                pre_depends=strings("pre_depends"),
                depends=strings("depends"),
                recommends=strings("recommends"),
                conflicts=strings("conflicts"),
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
