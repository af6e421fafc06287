"""Provisioning the toolchains: the Go the release pins, and a C compiler for the host machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from dock32.arch import Arch, build_machine_arch
from dock32.config import BuildConfig, CToolchain, Toolchains
from dock32.errors import ToolchainError
from dock32.fetch import go_module_env
from dock32.run import capture
from dock32.settings import Settings


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
    if pin is None or platform not in pin.sums:
        problem = f"toolchains/go.yaml has no pin for Go {config.go_version} on {platform}"
    else:
        module = toolchain_module(config.go_version, build)
        result = capture([system_go, "mod", "download", "-json", module], env=go_module_env(settings))
        info = json.loads(result.stdout or "{}") if result.stdout.strip().startswith("{") else {}
        if result.returncode != 0 or "Dir" not in info:
            problem = (info.get("Error") or result.stderr.strip() or "download failed").splitlines()[-1]
        elif info.get("Sum") != pin.sums[platform]:
            raise ToolchainError(
                f"{module}: hash mismatch: expected {pin.sums[platform]} (toolchains/go.yaml), got {info.get('Sum')}; not used",
                hint="check GOPROXY; re-pin only if you trust the new toolchain",
            )
        else:
            root = Path(info["Dir"])
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


def c_runtime_record(cc: str) -> dict[str, str]:
    """The C library the compiler links statically (libc.a) and the Debian package it came from, for the SBOM:
    libc6-dev-i386-cross for the cross compiler, libc6-dev on an i386 machine."""
    found = capture([cc, "-print-file-name=libc.a"]).stdout.strip()
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
