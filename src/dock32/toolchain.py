"""Provisioning the toolchains: the Go the release pins, and a C compiler for the host machine."""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from dock32.arch import Arch, build_machine_arch
from dock32.cache import entry_lock
from dock32.config import BuildConfig, CToolchain, GoToolchainPin, Toolchains
from dock32.errors import ToolchainError
from dock32.fetch import go_module_env
from dock32.run import capture, run
from dock32.settings import Settings
from dock32.trees import copy_writable


@dataclass(frozen=True)
class ResolvedToolchain:
    """What the build will actually use; written to build/<target>/toolchain.json and into the manifest."""

    go: str  # path of the go binary
    go_version: str  # e.g. go1.24.9, as the binary reports it
    go_pinned: str
    go_source: str  # "system", "module golang.org/toolchain@..." or a fallback note
    cc: str | None
    cc_version: str | None
    c_env: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> ResolvedToolchain:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def go_version_of(go: str | Path) -> str | None:
    result = capture([go, "env", "GOVERSION"], env={"GOTOOLCHAIN": "local"})
    return result.stdout.strip() or None if result.returncode == 0 else None


def toolchain_module(version: str, build: Arch) -> str:
    return f"golang.org/toolchain@v0.0.1-go{version}.linux-{build.names.go}"


def _fetch_toolchain_module(go: str, module: str, pinned: str, settings: Settings) -> tuple[Path | None, str]:
    """The unpacked module golang.org/toolchain@..., checked against its pin: (its folder, "") or (None, why not)."""
    result = capture([go, "mod", "download", "-json", module], env=go_module_env(settings))
    info = json.loads(result.stdout or "{}") if result.stdout.strip().startswith("{") else {}
    if result.returncode != 0 or "Dir" not in info:
        return None, (info.get("Error") or result.stderr.strip() or "download failed").splitlines()[-1]
    if info.get("Sum") != pinned:
        raise ToolchainError(
            f"{module}: hash mismatch: expected {pinned} (toolchains/go.yaml), got {info.get('Sum')}; not used",
            hint="check GOPROXY; re-pin only if you trust the new toolchain",
        )
    return Path(info["Dir"]), ""


def resolve_go(config: BuildConfig, toolchains: Toolchains, settings: Settings, build: Arch) -> tuple[str, str, str]:
    """Return (go binary, version it reports, where it came from)."""
    wanted = f"go{config.go_version}"
    system_go = shutil.which("go")
    system_version = go_version_of(system_go) if system_go else None
    if system_go and system_version == wanted:
        return system_go, system_version, "system"
    if not system_go:
        raise ToolchainError(
            "no `go` command on PATH",
            hint="install Go (apt-get install golang-go, or `make setup`); dock32 then provisions the pinned version itself",
        )
    pin = toolchains.go.get(config.go_version)
    platform = f"linux-{build.names.go}"
    problem = None
    if pin is None or not pin.sums:
        problem = f"toolchains/go.yaml has no pin for Go {config.go_version}"
    elif platform not in pin.sums:
        # No pinned module for this machine (golang.org/toolchain has linux-386, but a mirror may not carry it):
        # the pinned Go, built here from the source that every platform's module holds.
        go_path, note = go_from_source(config.go_version, pin, build, settings, system_go)
        version = go_version_of(go_path)
        if version == wanted:
            return str(go_path), version, note
        problem = f"{go_path} reports {version}"
    else:
        module = toolchain_module(config.go_version, build)
        root, problem = _fetch_toolchain_module(system_go, module, pin.sums[platform], settings)
        if root is not None:
            # Module zips carry no file modes; the go command's own toolchain switch sets these the same way.
            for tool in [*root.glob("bin/*"), *root.glob("pkg/tool/*/*")]:
                if tool.is_file() and not os.access(tool, os.X_OK):
                    tool.chmod(tool.stat().st_mode | 0o555)
            go = root / "bin" / "go"
            version = go_version_of(go)
            if version == wanted:
                return str(go), version, f"module {module}"
            problem = f"{go} reports {version}"
    assert system_version is not None
    print(f"warning: Go {config.go_version} (pinned) cannot be had: {problem}; building with {system_version} instead", file=sys.stderr)
    return system_go, system_version, f"fallback: {problem}"


# --- the pinned Go built from source, where no module is pinned for the build machine ----------------------------

BUILT_MARKER = ".dock32-built"
# Debian's Go packages that can bootstrap the build, by the build machine's release (os-release VERSION_CODENAME),
# with the suite they come from: bookworm's own golang-go (1.19) is older than Go 1.24's make.bash accepts (1.22.6),
# bookworm-backports' is 1.23 (and, as the machine's `go`, new enough for the tests' modules too). Elsewhere the
# release's golang-go is taken (trixie: 1.24).
BOOTSTRAP_GO_PACKAGES: dict[str, tuple[str, str]] = {"bookworm": ("golang-go", "bookworm-backports")}


def _version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"(?:go)?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def bootstrap_minimum(goroot: Path) -> tuple[int, ...]:
    """The oldest Go that can bootstrap the Go in goroot, as its make.bash says (bootgo=1.22.6); () if it does not say."""
    make = goroot / "src" / "make.bash"
    match = re.search(r"^bootgo=(\d+(?:\.\d+)+)\s*$", make.read_text(encoding="utf-8"), re.MULTILINE) if make.is_file() else None
    return _version_tuple(match.group(1)) if match else ()


def bootstrap_candidates() -> list[str]:
    """Go commands on this machine, the one on PATH first, then Debian's versioned packages, newest first."""
    found = [shutil.which("go"), *sorted(glob.glob("/usr/lib/go-1.*/bin/go"), key=lambda p: _version_tuple(p.split("/go-")[-1]), reverse=True)]
    return list(dict.fromkeys(go for go in found if go))


def find_bootstrap_go(minimum: tuple[int, ...]) -> tuple[str, str] | None:
    """(GOROOT, version) of the first Go here that is at least minimum."""
    for go in bootstrap_candidates():
        version = go_version_of(go)
        if version and _version_tuple(version) >= minimum:
            goroot = capture([go, "env", "GOROOT"], env={"GOTOOLCHAIN": "local"}).stdout.strip()
            if goroot and (Path(goroot) / "bin" / "go").is_file():
                return goroot, version
    return None


def likely_bootstrap_minimum(version: str) -> tuple[int, ...]:
    """Go 1.N's make.bash asks for Go 1.(N-2).6 (1.24: 1.22.6); the exact minimum is in the source, read when it is here."""
    major, minor = (_version_tuple(version) + (0, 0))[:2]
    return (major, max(minor - 2, 0), 6)


def bootstrap_go_setup(config: BuildConfig, toolchains: Toolchains, build: Arch) -> tuple[tuple[str, ...], str | None]:
    """What `make setup` installs so that the pinned Go can be built here: (Debian packages, the suite they need, if
    not the release's own); nothing where a module is pinned for this machine or a Go new enough is already here."""
    pin = toolchains.go.get(config.go_version)
    if pin is None or f"linux-{build.names.go}" in pin.sums:
        return (), None
    # The machine's `go` itself must do (not only some Go in /usr/lib): the tests build their modules with it.
    system_go = shutil.which("go")
    system_version = go_version_of(system_go) if system_go else None
    if system_version and _version_tuple(system_version) >= likely_bootstrap_minimum(config.go_version):
        return (), None
    try:
        codename = platform.freedesktop_os_release().get("VERSION_CODENAME", "")
    except OSError:
        codename = ""
    package, suite = BOOTSTRAP_GO_PACKAGES.get(codename, ("golang-go", ""))
    return (package,), suite or None


def go_from_source(version: str, pin: GoToolchainPin, build: Arch, settings: Settings, helper_go: str) -> tuple[Path, str]:
    """The go command of Go `version` built for the build machine from the source in a pinned golang.org/toolchain
    module of another platform (each holds the whole source tree; checked against its h1: pin), cached; and a note
    on where it came from. Go's toolchain builds are reproducible, so it compiles what the released one compiles."""
    source_platform, source_sum = sorted(pin.sums.items())[0]
    source_module = f"golang.org/toolchain@v0.0.1-go{version}.{source_platform}"
    name = f"go{version}.linux-{build.names.go}"
    dest = settings.cache_dir / "go" / "toolchains" / name
    wanted = {"source": source_module, "sum": source_sum}

    def built() -> dict[str, str] | None:
        marker = dest / BUILT_MARKER
        record = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}
        return record if all(record.get(k) == v for k, v in wanted.items()) and (dest / "bin" / "go").is_file() else None

    def note(record: dict[str, str]) -> str:
        return f"source {source_module}, built for linux-{build.names.go} with {record.get('bootstrap', 'an older Go')}"

    if (record := built()) is not None:
        return dest / "bin" / "go", note(record)
    with entry_lock(settings, f"go toolchain {name}"):
        if (record := built()) is not None:
            return dest / "bin" / "go", note(record)
        if settings.offline:
            raise ToolchainError(f"offline, and the cache has no Go {version} built for linux-{build.names.go}", hint="run once online")
        source, problem = _fetch_toolchain_module(helper_go, source_module, source_sum, settings)
        if source is None:
            raise ToolchainError(f"Go {version} for linux-{build.names.go}: cannot fetch its source {source_module}: {problem}", hint="check GOPROXY")
        minimum = bootstrap_minimum(source)
        bootstrap = find_bootstrap_go(minimum)
        if bootstrap is None:
            need = ".".join(map(str, minimum)) or "an older Go"
            raise ToolchainError(
                f"Go {version} for linux-{build.names.go} is built from source here, which needs Go >= {need} to bootstrap; "
                f"found {', '.join(f'{go} ({go_version_of(go)})' for go in bootstrap_candidates()) or 'none'}",
                hint="`make setup` installs one (Debian 12: golang-go from bookworm-backports, Go 1.23)",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=name + ".", suffix=".partial", dir=dest.parent))
        try:
            goroot = staging / "go"
            # Everything but the other platform's programs (bin/, pkg/tool/), which make.bash builds anew.
            prebuilt = {(source, "bin"), (source / "pkg", "tool")}
            copy_writable(source, goroot, ignore=lambda folder, names: [n for n in names if (Path(folder), n) in prebuilt])
            # Module zips cannot hold nested go.mod files, so they carry them as _go.mod; the go command's own
            # toolchain switch renames them back the same way.
            for renamed in goroot.rglob("_go.mod"):
                shutil.copyfile(renamed, renamed.with_name("go.mod"))
            print(f"dock32: building Go {version} for linux-{build.names.go} from {source_module} with {bootstrap[1]} (once; cached)", flush=True)
            env = {
                "GOROOT_BOOTSTRAP": bootstrap[0],
                "GOOS": "linux",
                "GOARCH": build.names.go,
                "GOHOSTOS": "linux",
                "GOHOSTARCH": build.names.go,
                "GOTOOLCHAIN": "local",
                "GOENV": "off",
                "GOFLAGS": "",
                "GOCACHE": str(staging / "cache"),
                # The toolchain must run on this CPU: x87 floating point where it has no SSE2 (the compilers' output
                # does not depend on it: Go's float arithmetic is IEEE either way).
                **({"GO386": "sse2" if _has_sse2() else "softfloat"} if build is Arch.I386 else {}),
            }
            run(["bash", "make.bash"], env=env, cwd=goroot / "src", log=dest.parent / f"{name}.make.log", what=f"build Go {version}", error=ToolchainError)
            shutil.rmtree(staging / "cache", ignore_errors=True)
            record = {**wanted, "bootstrap": bootstrap[1]}
            (goroot / BUILT_MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            goroot.rename(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest / "bin" / "go", note(record)


def _has_sse2() -> bool:
    try:
        return any(line.startswith("flags") and " sse2" in line for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return True


def c_toolchain_for(toolchains: Toolchains, build: Arch, host: Arch) -> CToolchain:
    chosen = toolchains.c_for(build, host)
    if chosen is None:
        raise ToolchainError(f"toolchains/c.yaml has no C toolchain for building on {build.names.debian} for {host.names.debian}")
    return chosen


def c_env(chosen: CToolchain) -> dict[str, str]:
    env = {"CC": chosen.cc}
    if chosen.cflags:
        env["CGO_CFLAGS"] = " ".join(chosen.cflags)
    if chosen.ldflags:
        env["CGO_LDFLAGS"] = " ".join(chosen.ldflags)
    if chosen.pkg_config_libdir:
        env["PKG_CONFIG_LIBDIR"] = chosen.pkg_config_libdir
    return env


def install_command(chosen: CToolchain) -> str:
    prefix = f"dpkg --add-architecture {chosen.foreign_arch} && " if chosen.foreign_arch else ""
    return f"{prefix}apt-get update && apt-get install -y {' '.join(chosen.apt_packages)}"


def check_c(chosen: CToolchain, libraries: tuple[str, ...]) -> list[str]:
    """Problems with the C toolchain, each a sentence; empty when all is there."""
    problems = []
    if shutil.which(chosen.cc) is None:
        problems.append(f"C compiler {chosen.cc} not found")
    for tool in ("cmake", "pkg-config", "patch", "make"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found")
    env = {"PKG_CONFIG_LIBDIR": chosen.pkg_config_libdir} if chosen.pkg_config_libdir else {}
    for library in libraries:
        if shutil.which("pkg-config") and capture(["pkg-config", "--exists", library], env=env).returncode != 0:
            problems.append(f"{library} for {chosen.host.names.debian} not found by pkg-config")
    return problems


def _debian_owner(path: str) -> dict[str, str]:
    """The Debian package that installed path, and its version: {} where dpkg does not know the file."""
    owner = capture(["dpkg-query", "-S", os.path.realpath(path)])
    if owner.returncode != 0 or ": " not in owner.stdout:
        return {}
    package = owner.stdout.splitlines()[0].split(": ", 1)[0].split(", ")[0]
    query = capture(["dpkg-query", "-W", "-f", "${Version}\t${Architecture}", package])
    version, _, arch = query.stdout.strip().partition("\t")
    if query.returncode != 0 or not version:
        return {}
    try:
        vendor = platform.freedesktop_os_release().get("ID", "debian")
    except OSError:
        vendor = "debian"
    return {"deb_package": package.split(":")[0], "deb_version": version, "deb_arch": arch, "deb_vendor": vendor}


def c_library_record(library: str, c_env: dict[str, str]) -> dict[str, str]:
    """What a C library linked into a binary is: its pkg-config version and, where dpkg owns its .pc file, the
    Debian package and version it came from (libseccomp: libseccomp-dev:i386 2.5.4-1+deb12u1), for the SBOM."""
    env = {"PKG_CONFIG_LIBDIR": c_env["PKG_CONFIG_LIBDIR"]} if "PKG_CONFIG_LIBDIR" in c_env else {}
    record = {"name": library}
    version = capture(["pkg-config", "--modversion", library], env=env)
    if version.returncode == 0 and version.stdout.strip():
        record["version"] = version.stdout.strip()
    folder = capture(["pkg-config", "--variable=pcfiledir", library], env=env).stdout.strip()
    if folder:
        record.update(_debian_owner(f"{folder}/{library}.pc"))
    return record


def c_runtime_record(cc: str, ldflags: tuple[str, ...] = ()) -> dict[str, str]:
    """The C library the compiler links statically (libc.a) with the toolchain's link flags, and the Debian package it
    came from, for the SBOM: libc6-dev-i386-cross for the i386 toolchains (cross and native alike), libc6-dev elsewhere."""
    found = capture([cc, *ldflags, "-print-file-name=libc.a"]).stdout.strip()
    record = {"name": "libc"}
    if found and os.path.isabs(found):
        record.update(_debian_owner(found))
    return record


def resolve(config: BuildConfig, toolchains: Toolchains, settings: Settings) -> ResolvedToolchain:
    build = build_machine_arch()
    go, go_version, go_source = resolve_go(config, toolchains, settings, build)
    needs_c = [c for c in config.components if c.needs_c]
    cc = cc_version = None
    env: dict[str, str] = {}
    if needs_c:
        chosen = c_toolchain_for(toolchains, build, config.host_arch)
        libraries = tuple(lib for c in needs_c for lib in c.c_libraries)
        problems = check_c(chosen, libraries)
        if problems:
            raise ToolchainError("; ".join(problems), hint=f"install them: {install_command(chosen)} (or `make setup`)")
        cc = shutil.which(chosen.cc)
        cc_version = capture([chosen.cc, "--version"]).stdout.splitlines()[0]
        env = c_env(chosen)
    return ResolvedToolchain(go=go, go_version=go_version, go_pinned=f"go{config.go_version}", go_source=go_source, cc=cc, cc_version=cc_version, c_env=env)
