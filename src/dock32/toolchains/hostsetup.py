"""`dock32 setup`: install the Debian packages the build machine's C toolchain needs, only those missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from dock32.core import atomic
from dock32.core.arch import build_machine_arch
from dock32.core.errors import CommandFailed, ToolchainError
from dock32.core.run import capture, run
from dock32.model.config import load_config, load_toolchains
from dock32.sources.fetch import apt_debian_mirror
from dock32.toolchains.toolchain import bootstrap_go_setup, c_toolchain_for


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    """Packages dpkg does not report as installed: name:arch for that architecture, a plain name for the machine's
    own (or all). dpkg-query matches a plain name in any architecture, so libseccomp-dev:i386 alone would pass for
    libseccomp-dev."""
    native = capture(["dpkg", "--print-architecture"]).stdout.strip()
    missing = []
    for package in packages:
        name, _, arch = package.partition(":")
        result = capture(["dpkg-query", "-W", "-f=${db:Status-Status} ${Architecture}\n", name])
        installed = {line.split()[1] for line in result.stdout.splitlines() if len(line.split()) == 2 and line.split()[0] == "installed"}
        if not installed & ({arch} if arch else {native, "all"}):
            missing.append(package)
    return missing


def setup_host(project_dir: Path, tests: bool = False) -> None:
    """Install what the build machine lacks for buildcfg.yaml's target and for the other strategies' too (every C
    toolchain of toolchains/c.yaml that builds on this machine), so that a matrix of targets builds without more set-up;
    with `tests`, also what only the tests use (toolchains/host.yaml test_apt)."""
    config = load_config(project_dir / "buildcfg.yaml")
    toolchains = load_toolchains(project_dir / "toolchains")
    build = build_machine_arch()
    c_toolchains = [c_toolchain_for(toolchains, build, config.host_arch), *(t for t in toolchains.c if t.build is build and t.host is not config.host_arch)]
    # Where no Go toolchain module is pinned for this machine (i386), the build makes the pinned Go from source,
    # bootstrapped by the machine's Go through the bootstrap steps of toolchains/go.yaml; the machine's Go must start
    # that chain: Debian 12's golang-go from bookworm-backports (1.23, which builds the step Go 1.24.9; an upgrade, so
    # asked for with -t even when an older golang-go is installed).
    bootstrap, suite = bootstrap_go_setup(config, toolchains, build)
    go = () if shutil.which("go") or bootstrap else ("golang-go",)
    wanted = tuple(dict.fromkeys(p for t in c_toolchains for p in t.apt_packages)) + toolchains.host_packages + go
    if tests:
        wanted = tuple(dict.fromkeys(wanted + toolchains.test_packages))
    missing = missing_packages(wanted)
    if not missing and not bootstrap:
        print(f"dock32 setup: all build{' and test' if tests else ''} packages are installed")
        return
    if shutil.which("apt-get") is None:
        raise ToolchainError(f"missing packages {' '.join(missing)} and no apt-get here", hint="install them with your package manager")
    print(f"dock32 setup: installing {' '.join(missing + list(bootstrap))}{f' ({suite})' if bootstrap and suite else ''}", flush=True)
    steps: list[list[str]] = []
    architectures = capture(["dpkg", "--print-foreign-architectures"]).stdout.split()
    for foreign in dict.fromkeys(t.foreign_arch for t in c_toolchains if t.foreign_arch):
        if foreign not in architectures:
            steps.append(["dpkg", "--add-architecture", foreign])
    if bootstrap and suite:
        enable_suite(suite)
    # A mirror caught mid-sync makes `apt-get update` exit non-zero for one index;
    # the installs after it are what must succeed, so only they are checked.
    steps.append(["apt-get", "update", "-q"])
    installs = [["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]] if missing else []
    if bootstrap:
        installs.append(["apt-get", "install", "-y", "-q", "--no-install-recommends", *(["-t", suite] if suite else []), *bootstrap])
    for step in steps:
        try:
            run(step, log=None, env={"DEBIAN_FRONTEND": "noninteractive"})
        except CommandFailed:
            pass
    for step in installs:
        run(step, log=None, env={"DEBIAN_FRONTEND": "noninteractive"})
    still = missing_packages(wanted)
    if still:
        raise ToolchainError(f"still missing after install: {' '.join(still)}")


def enable_suite(suite: str, apt_dir: Path = Path("/etc/apt")) -> None:
    """Add suite (bookworm-backports) of this machine's Debian mirror to apt's sources, unless a source names it.
    apt installs from backports only what is asked for by name (priority 100), never as an upgrade."""
    sources = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    if any(suite in path.read_text(encoding="utf-8", errors="replace").split() for path in sources if path.is_file()):
        return
    mirror = apt_debian_mirror((apt_dir,))
    if mirror is None:
        raise ToolchainError(f"no Debian mirror in apt's sources to take {suite} from", hint=f"add {suite} to apt's sources")
    target = apt_dir / "sources.list.d" / f"dock32-{suite}.list"
    print(f"dock32 setup: adding {suite} to apt's sources ({target})", flush=True)
    # 0644 whatever root's umask: apt run by a user (apt list, apt-cache policy) reads the sources too.
    atomic.write_text(target, f"deb {mirror} {suite} main\n")
