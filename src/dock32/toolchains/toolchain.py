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
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from dock32.core.arch import Arch, build_machine_arch
from dock32.core.errors import Dock32Error, ToolchainError
from dock32.core.run import capture, run
from dock32.model.config import BuildConfig, Component, CToolchain, GoModuleSource, GoToolchainPin, Toolchains
from dock32.model.settings import Settings
from dock32.sources import gocmd
from dock32.sources.cache import entry_lock
from dock32.sources.fetch import fetch_module
from dock32.sources.trees import copy_writable


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


def toolchain_module(version: str, build: Arch) -> str:
    return f"golang.org/toolchain@v0.0.1-go{version}.linux-{build.names.go}"


def _fetch_toolchain_module(go: str, module: str, pinned: str, settings: Settings) -> tuple[Path | None, str]:
    """The unpacked module golang.org/toolchain@..., checked against its pin: (its folder, "") or (None, why not)."""
    found = gocmd.Go(go, settings, None, timeout=None).download_many([module])[module]
    if isinstance(found, str):
        return None, found
    if found.sum != pinned:
        raise ToolchainError(
            f"{module}: hash mismatch: expected {pinned} (toolchains/go.yaml), got {found.sum}; not used",
            hint="check GOPROXY; re-pin only if you trust the new toolchain",
        )
    return found.dir, ""


def resolve_go(go_pinned: str, toolchains: Toolchains, settings: Settings, build: Arch) -> tuple[str, str, str]:
    """Return (go binary, version it reports, where it came from)."""
    wanted = f"go{go_pinned}"
    system_go = shutil.which("go")
    system_version = gocmd.version_of(system_go) if system_go else None
    if system_go and system_version == wanted:
        return system_go, system_version, "system"
    if not system_go:
        raise ToolchainError(
            "no `go` command on PATH",
            hint="install Go (apt-get install golang-go, or `make setup`); dock32 then provisions the pinned version itself",
        )
    pin = toolchains.go.get(go_pinned)
    platform = f"linux-{build.names.go}"
    problem = None
    if pin is None or not pin.sums:
        problem = f"toolchains/go.yaml has no pin for Go {go_pinned}"
    elif platform not in pin.sums:
        # No pinned module for this machine (golang.org/toolchain has linux-386, but a mirror may not carry it):
        # the pinned Go, built here from the source that every platform's module holds.
        go_path, note = go_from_source(go_pinned, toolchains, build, settings, system_go)
        version = gocmd.version_of(go_path)
        if version == wanted:
            return str(go_path), version, note
        problem = f"{go_path} reports {version}"
    else:
        module = toolchain_module(go_pinned, build)
        root, problem = _fetch_toolchain_module(system_go, module, pin.sums[platform], settings)
        if root is not None:
            # Module zips carry no file modes; the go command's own toolchain switch sets these the same way.
            for tool in [*root.glob("bin/*"), *root.glob("pkg/tool/*/*")]:
                if tool.is_file() and not os.access(tool, os.X_OK):
                    tool.chmod(tool.stat().st_mode | 0o555)
            go = root / "bin" / "go"
            version = gocmd.version_of(go)
            if version == wanted:
                return str(go), version, f"module {module}"
            problem = f"{go} reports {version}"
    assert system_version is not None
    print(f"warning: Go {go_pinned} (pinned) cannot be had: {problem}; building with {system_version} instead", file=sys.stderr)
    return system_go, system_version, f"fallback: {problem}"


# --- the pinned Go built from source, where no module is pinned for the build machine ----------------------------

BUILT_MARKER = ".dock32-built"
# Debian's Go packages that can start the bootstrap chain, by the build machine's release (os-release
# VERSION_CODENAME), with the suite they come from: bookworm's own golang-go (1.19) can build none of the Gos
# toolchains/go.yaml pins (Go 1.24 needs 1.22.6), bookworm-backports' 1.23 builds its bootstrap step Go 1.24.9, which
# builds the pinned Go (and, as the machine's `go`, it is new enough for the tests' modules too). Elsewhere the
# release's golang-go is taken (trixie: 1.24, which builds Go 1.24.9 too).
BOOTSTRAP_GO_PACKAGES: dict[str, tuple[str, str]] = {"bookworm": ("golang-go", "bookworm-backports")}


def _version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"(?:go)?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def bootstrap_minimum(goroot: Path) -> tuple[int, ...]:
    """The oldest Go that can bootstrap the Go in goroot, as its make.bash says (bootgo=1.22.6); () if it does not say."""
    make = goroot / "src" / "make.bash"
    match = re.search(r"^bootgo=(\d+(?:\.\d+)+)\s*$", make.read_text(encoding="utf-8"), re.MULTILINE) if make.is_file() else None
    return _version_tuple(match.group(1)) if match else ()


def likely_bootstrap_minimum(version: str) -> tuple[int, ...]:
    """The oldest Go that can bootstrap Go `version`, by Go's rule (go.dev/doc/install/source, go.dev/issue/54265):
    Go 1.N needs Go 1.M, M = N-2 rounded down to even, at the point release its make.bash names (1.24 and 1.25:
    1.22.6; 1.26 and 1.27: 1.24.6; 1.22 and 1.23: 1.20.6); 1.20 and 1.21 need 1.17.13, 1.5 to 1.19 Go 1.4. For
    planning before the source is here: the source's make.bash (bootstrap_minimum) has the last word."""
    major, minor = (_version_tuple(version) + (0, 0))[:2]
    if (major, minor) >= (1, 22):
        return (1, (minor - 2) // 2 * 2, 6)
    if (major, minor) >= (1, 20):
        return (1, 17, 13)
    return (1, 4)


@dataclass(frozen=True)
class LocalGo:
    """A Go on this machine that can bootstrap a build from source: the machine's own, or one dock32 built and cached."""

    goroot: str
    version: str  # as it reports itself: go1.23.5
    origin: str = ""  # "" for the machine's own; for a cached build, what it was built from and with

    @property
    def note(self) -> str:
        """What the record of a Go it bootstraps says about it (no machine paths: it goes into the manifest)."""
        return f"{self.version} ({self.origin})" if self.origin else self.version


@dataclass(frozen=True)
class SourceBuild:
    """One Go built here for the build machine from the source in a pinned golang.org/toolchain module of another
    platform: each module holds the whole source tree, checked against its h1: pin."""

    version: str  # 1.24.9
    source: GoModuleSource
    build: Arch

    @property
    def go_version(self) -> str:
        return f"go{self.version}"

    @property
    def name(self) -> str:
        return f"go{self.version}.linux-{self.build.names.go}"

    @property
    def minimum(self) -> tuple[int, ...]:
        return likely_bootstrap_minimum(self.version)

    def origin(self, bootstrap: str) -> str:
        return f"source {self.source.ref}, built for linux-{self.build.names.go} with {bootstrap}"


def source_build(version: str, pin: GoToolchainPin, build: Arch) -> SourceBuild | None:
    """Go `version` built for `build` from the source in the first module pin names; None where it pins none."""
    if not pin.sums:
        return None
    platform, pinned = sorted(pin.sums.items())[0]
    module = GoModuleSource(module="golang.org/toolchain", version=f"v0.0.1-go{version}.{platform}", sum=pinned, modfile=None)
    return SourceBuild(version=version, source=module, build=build)


@dataclass(frozen=True)
class GoChain:
    """How the pinned Go is had where it is built from source: `start`, a Go here, bootstraps steps[0], each step
    bootstraps the next, and the last step is the pinned Go. No steps: `start` is the pinned Go (built before, cached)."""

    start: LocalGo
    steps: tuple[SourceBuild, ...]

    def describe(self) -> str:
        start = f"{self.start.version} ({'built here before, cached' if self.start.origin else self.start.goroot})"
        if not self.steps:
            return start
        built = [f"{step.go_version}{' (a bootstrap step)' if step is not self.steps[-1] else ''}" for step in self.steps]
        return f"{start} builds " + ", which builds ".join(built)


def plan_go_chain(target: str, pins: Mapping[str, GoToolchainPin], here: Sequence[LocalGo], build: Arch, newer_go: str = "") -> GoChain:
    """The shortest chain of builds from a Go here to Go `target`, through the Gos toolchains/go.yaml pins as bootstrap
    steps (`bootstrap: true`): each is built by the Go before it, which must meet its bootstrap minimum. `here` are the
    Gos on this machine, preferred in that order: its own, then those dock32 built before. Raises a ToolchainError
    whose hint names the pins that would make a chain, or `newer_go` (how to install a newer Go here)."""
    arch = f"linux-{build.names.go}"
    for local in here:
        if local.version == f"go{target}":
            return GoChain(start=local, steps=())
    final = source_build(target, pins[target], build) if target in pins else None
    if final is None:
        raise ToolchainError(f"toolchains/go.yaml has no pin for Go {target} to build it from source for {arch}", hint="pin its linux-amd64 module's h1:")
    have = {local.version for local in here}
    intermediates = [
        step
        for version, pin in sorted(pins.items(), key=lambda item: _version_tuple(item[0]), reverse=True)
        if pin.bootstrap and _version_tuple(version) < _version_tuple(target) and f"go{version}" not in have
        if (step := source_build(version, pin, build)) is not None
    ]
    # Breadth first: each round builds what the Gos of the round before can bootstrap, so the first chain that
    # reaches the target is a shortest one; within a round the newest Go is taken.
    made_by: dict[str, LocalGo | SourceBuild] = {}
    tools: list[LocalGo | SourceBuild] = list(here)
    while tools and final.version not in made_by:
        made = []
        for step in (final, *intermediates):
            if step.version in made_by:
                continue
            maker = next((tool for tool in tools if _version_tuple(tool.version if isinstance(tool, LocalGo) else tool.go_version) >= step.minimum), None)
            if maker is not None:
                made_by[step.version] = maker
                made.append(step)
        tools = list(made)
    if final.version in made_by:
        chain: list[SourceBuild] = []
        node: LocalGo | SourceBuild = final
        while isinstance(node, SourceBuild):
            chain.append(node)
            node = made_by[node.version]
        return GoChain(start=node, steps=tuple(reversed(chain)))

    found = ", ".join(f"{local.version} ({local.goroot})" for local in here) or "none"
    steps = ", ".join(f"{step.version} (needs {_dotted(step.minimum)})" for step in intermediates) or "none"
    best = max((_version_tuple(local.version) for local in here), default=())
    missing = _missing_steps(target, pins, best)
    releases = " and ".join(f"a Go {m[0]}.{m[1]} release >= {_dotted(m)}" for m in missing)
    fixes = [f"pin {releases} in toolchains/go.yaml with `bootstrap: true`"] if missing else []
    fixes += [f"install a newer Go ({newer_go})"] if newer_go else []
    raise ToolchainError(
        f"Go {target} for {arch} is built here from source and needs Go >= {_dotted(final.minimum)} to bootstrap; no chain of builds "
        f"reaches it from the Go here (found: {found}) through toolchains/go.yaml's bootstrap steps (pinned: {steps})",
        hint=", or ".join(fixes) or "install a Go that can bootstrap it",
    )


def _missing_steps(target: str, pins: Mapping[str, GoToolchainPin], best: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The bootstrap minimums of the Gos a chain from `best` (the newest Go here) to `target` lacks, oldest first:
    going down from the target, each step is a pinned bootstrap Go where one meets the need, else a missing one."""
    need = likely_bootstrap_minimum(target)
    missing: list[tuple[int, ...]] = []
    while best < need and need > (1, 4):
        pinned = [likely_bootstrap_minimum(v) for v, pin in pins.items() if pin.bootstrap and pin.sums and need <= _version_tuple(v) < _version_tuple(target)]
        lowest = min(pinned, default=None)
        if lowest is not None and lowest < need:
            need = lowest
        else:
            missing.append(need)
            need = likely_bootstrap_minimum(_dotted(need))
    return missing[::-1]


def bootstrap_candidates() -> list[str]:
    """Go commands on this machine, the one on PATH first, then Debian's versioned packages, newest first."""
    found = [shutil.which("go"), *sorted(glob.glob("/usr/lib/go-1.*/bin/go"), key=lambda p: _version_tuple(p.split("/go-")[-1]), reverse=True)]
    return list(dict.fromkeys(go for go in found if go))


def _local_go(go: str) -> LocalGo | None:
    version = gocmd.version_of(go)
    goroot = gocmd.env_value(go, "GOROOT") if version else ""
    return LocalGo(goroot=goroot, version=version) if version and goroot and (Path(goroot) / "bin" / "go").is_file() else None


def machine_go() -> LocalGo | None:
    """The machine's `go` (on PATH), if it runs."""
    go = shutil.which("go")
    return _local_go(go) if go else None


def machine_gos() -> list[LocalGo]:
    """The Go installations of this machine, the `go` on PATH first, then Debian's versioned packages, newest first;
    each once (/usr/bin/go is /usr/lib/go-1.23/bin/go)."""
    found: dict[str, LocalGo] = {}
    for go in bootstrap_candidates():
        local = _local_go(go)
        if local is not None and local.goroot not in found:
            found[local.goroot] = local
    return list(found.values())


def _toolchain_dir(step: SourceBuild, settings: Settings) -> Path:
    return settings.cache_dir / "go" / "toolchains" / step.name


def _built_record(step: SourceBuild, settings: Settings) -> dict[str, str] | None:
    """The record of step's build in the cache, if it is complete and of the pinned source."""
    dest = _toolchain_dir(step, settings)
    marker = dest / BUILT_MARKER
    try:
        record = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}
    except (OSError, ValueError):
        return None
    wanted = {"source": step.source.ref, "sum": step.source.sum}
    return record if isinstance(record, dict) and all(record.get(k) == v for k, v in wanted.items()) and (dest / "bin" / "go").is_file() else None


def cached_gos(toolchains: Toolchains, build: Arch, settings: Settings) -> list[LocalGo]:
    """The Gos of toolchains/go.yaml that dock32 built here from source before, each checked to report its version."""
    found = []
    for version, pin in toolchains.go.items():
        step = source_build(version, pin, build)
        record = _built_record(step, settings) if step is not None else None
        if step is not None and record is not None:
            goroot = _toolchain_dir(step, settings)
            if gocmd.version_of(goroot / "bin" / "go") == step.go_version:
                found.append(LocalGo(goroot=str(goroot), version=step.go_version, origin=step.origin(record.get("bootstrap", "an older Go"))))
    return found


def newer_go_hint() -> str:
    """How to install a newer Go on this machine, for errors; "" where dock32 knows no package for it."""
    try:
        codename = platform.freedesktop_os_release().get("VERSION_CODENAME", "")
    except OSError:
        codename = ""
    package, suite = BOOTSTRAP_GO_PACKAGES.get(codename, ("", ""))
    return f"`make setup` installs {package} from {suite}" if package else ""


def plan_go_here(version: str, toolchains: Toolchains, build: Arch, settings: Settings) -> GoChain:
    """The chain that makes Go `version` here from source, from the Gos this machine has and those dock32 built."""
    here = [*machine_gos(), *cached_gos(toolchains, build, settings)]
    return plan_go_chain(version, toolchains.go, here, build, newer_go=newer_go_hint())


def bootstrap_go_setup(config: BuildConfig, toolchains: Toolchains, build: Arch) -> tuple[tuple[str, ...], str | None]:
    """What `make setup` installs so that the pinned Go can be built here: (Debian packages, the suite they need, if
    not the release's own); nothing where a module is pinned for this machine or the machine's Go starts a chain."""
    pin = toolchains.go.get(config.go_version)
    if pin is None or f"linux-{build.names.go}" in pin.sums:
        return (), None
    # The machine's `go` itself must do (not only some Go in /usr/lib, or one built before): the tests build their
    # modules with it.
    system = machine_go()
    if system is not None:
        try:
            plan_go_chain(config.go_version, toolchains.go, [system], build)
            return (), None
        except ToolchainError:
            pass
    try:
        codename = platform.freedesktop_os_release().get("VERSION_CODENAME", "")
    except OSError:
        codename = ""
    package, suite = BOOTSTRAP_GO_PACKAGES.get(codename, ("golang-go", ""))
    return (package,), suite or None


def go_from_source(version: str, toolchains: Toolchains, build: Arch, settings: Settings, helper_go: str) -> tuple[Path, str]:
    """The go command of Go `version` built for the build machine from source (SourceBuild), through the bootstrap
    chain that plan_go_here finds; each Go of the chain is cached, so the chain runs once. Returns it and a note on
    where it came from. Go's toolchain builds are reproducible, so it compiles what the released one compiles,
    whatever Go bootstrapped it."""
    chain = plan_go_here(version, toolchains, build, settings)
    go = chain.start
    if chain.steps:
        print(f"dock32: Go {version} for linux-{build.names.go} is built from source: {chain.describe()} (once; cached)", flush=True)
    for step in chain.steps:
        go = build_go(step, go, settings, helper_go)
    # A Go of the machine's that is the pinned version (in /usr/lib/go-1.*, not on PATH) has no build record.
    return Path(go.goroot) / "bin" / "go", go.origin or f"the machine's {go.version}"


def build_go(step: SourceBuild, bootstrap: LocalGo, settings: Settings, helper_go: str) -> LocalGo:
    """Build one Go of the chain with `bootstrap` into the cache (atomically: complete under its name, or absent);
    one that is there already, of the same pinned source, is taken as it is."""
    dest = _toolchain_dir(step, settings)
    arch = f"linux-{step.build.names.go}"

    def done(record: dict[str, str]) -> LocalGo:
        version = gocmd.version_of(dest / "bin" / "go")
        if version != step.go_version:
            raise ToolchainError(f"{dest}/bin/go, built from {step.source.ref}, reports {version}", hint=f"remove {dest} to build it again")
        return LocalGo(goroot=str(dest), version=version, origin=step.origin(record.get("bootstrap", "an older Go")))

    if (record := _built_record(step, settings)) is not None:
        return done(record)
    with entry_lock(settings, f"go toolchain {step.name}"):
        if (record := _built_record(step, settings)) is not None:
            return done(record)
        if settings.offline:
            raise ToolchainError(f"offline, and the cache has no Go {step.version} built for {arch}", hint="run once online")
        # Through GOPROXY like any module, checked against its pin, and the unpacked tree against it again.
        source = fetch_module(f"Go {step.version}'s source", step.source, Path(helper_go), settings).tree
        minimum = bootstrap_minimum(source) or step.minimum
        if _version_tuple(bootstrap.version) < minimum:
            raise ToolchainError(
                f"Go {step.version}'s make.bash needs Go >= {_dotted(minimum)} to bootstrap, not {bootstrap.version} (planned by Go's rule: "
                f">= {_dotted(step.minimum)})",
                hint="pin a Go between them in toolchains/go.yaml with `bootstrap: true`",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=step.name + ".", suffix=".partial", dir=dest.parent))
        try:
            goroot = staging / "go"
            # Everything but the other platform's programs (bin/, pkg/tool/), which make.bash builds anew.
            prebuilt = {(source, "bin"), (source / "pkg", "tool")}
            copy_writable(source, goroot, ignore=lambda folder, names: [n for n in names if (Path(folder), n) in prebuilt])
            # Module zips cannot hold nested go.mod files, so they carry them as _go.mod; the go command's own
            # toolchain switch renames them back the same way.
            for renamed in goroot.rglob("_go.mod"):
                shutil.copyfile(renamed, renamed.with_name("go.mod"))
            print(f"dock32: building Go {step.version} for {arch} from {step.source.ref} with {bootstrap.version} (once; cached)", flush=True)
            env = {
                "GOROOT_BOOTSTRAP": bootstrap.goroot,
                "GOOS": "linux",
                "GOARCH": step.build.names.go,
                "GOHOSTOS": "linux",
                "GOHOSTARCH": step.build.names.go,
                "GOTOOLCHAIN": "local",
                "GOENV": "off",
                "GOFLAGS": "",
                "GOCACHE": str(staging / "cache"),
                # The toolchain must run on this CPU: x87 floating point where it has no SSE2 (the compilers' output
                # does not depend on it: Go's float arithmetic is IEEE either way). This is the build machine's CPU,
                # not the flavour's: the flavour's GO386 applies to what the toolchain compiles.
                **({"GO386": "sse2" if _has_sse2() else "softfloat"} if step.build is Arch.I386 else {}),
            }
            started = time.monotonic()
            log = dest.parent / f"{step.name}.make.log"
            run(["bash", "make.bash"], env=env, cwd=goroot / "src", log=log, what=f"build Go {step.version}")
            shutil.rmtree(staging / "cache", ignore_errors=True)
            record = {"source": step.source.ref, "sum": step.source.sum, "bootstrap": bootstrap.note}
            (goroot / BUILT_MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            goroot.rename(dest)
            elapsed = int(time.monotonic() - started)
            print(f"dock32: built Go {step.version} for {arch} in {elapsed // 60}m{elapsed % 60:02d}s", flush=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return done(record)


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


def resolve(go_pinned: str, toolchains: Toolchains, host: Arch, c_parts: Sequence[Component], settings: Settings) -> ResolvedToolchain:
    """The Go and, for the components in c_parts, the C compiler for host binaries, each checked as it is found."""
    build = build_machine_arch()
    go, go_version, go_source = resolve_go(go_pinned, toolchains, settings, build)
    cc = cc_version = None
    env: dict[str, str] = {}
    if c_parts:
        chosen = c_toolchain_for(toolchains, build, host)
        libraries = tuple(lib for c in c_parts for lib in c.c_libraries)
        problems = check_c(chosen, libraries)
        if problems:
            raise ToolchainError("; ".join(problems), hint=f"install them: {install_command(chosen)} (or `make setup`)")
        cc = shutil.which(chosen.cc)
        cc_version = capture([chosen.cc, "--version"]).stdout.splitlines()[0]
        env = c_env(chosen)
    return ResolvedToolchain(go=go, go_version=go_version, go_pinned=f"go{go_pinned}", go_source=go_source, cc=cc, cc_version=cc_version, c_env=env)


def choose_go(config: BuildConfig, toolchains: Toolchains, settings: Settings) -> tuple[str, str]:
    """(the go command bump runs, what it is). The machine's `go`, unless it is older than the Go the config pins and
    toolchains/go.yaml pins that Go for this machine: then the pinned one, provisioned and checked as a build does
    (an old system go cannot read newer modules' go.mod files). Never a Go built from source: too slow for a bump."""
    system = shutil.which("go")
    if not system:
        raise ToolchainError("no `go` command on PATH", hint="install Go (apt-get install golang-go, or `make setup`)")
    system_version = gocmd.version_of(system) or "unknown"
    pin = toolchains.go.get(config.go_version)
    build = build_machine_arch()
    if _version_tuple(system_version) >= _version_tuple(config.go_version):
        return system, f"{system_version} (the machine's go)"
    if pin is None or f"linux-{build.names.go}" not in pin.sums:
        return system, f"{system_version} (the machine's go; toolchains/go.yaml pins no Go {config.go_version} for linux-{build.names.go})"
    try:
        go, version, source = resolve_go(config.go_version, toolchains, settings, build)
    except (Dock32Error, OSError) as exc:
        return system, f"{system_version} (the machine's go: the pinned Go {config.go_version} could not be had: {exc})"
    return go, f"{version} ({source})"
