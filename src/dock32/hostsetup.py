"""`dock32 setup`: install the Debian packages the build machine's C toolchain needs, only those missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from dock32.arch import build_machine_arch
from dock32.config import load_config, load_toolchains
from dock32.errors import ToolchainError
from dock32.run import capture, run
from dock32.toolchain import c_toolchain_for


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    """Packages dpkg does not report as installed (name or name:arch)."""
    missing = []
    for package in packages:
        result = capture(["dpkg-query", "-W", "-f=${db:Status-Status}", package])
        if result.returncode != 0 or result.stdout.strip() != "installed":
            missing.append(package)
    return missing


def setup_host(project_dir: Path) -> None:
    config = load_config(project_dir / "buildcfg.yaml")
    toolchains = load_toolchains(project_dir / "toolchains")
    chosen = c_toolchain_for(toolchains, build_machine_arch(), config.host_arch)
    wanted = chosen.apt_packages + toolchains.host_packages + (() if shutil.which("go") else ("golang-go",))
    missing = missing_packages(wanted)
    if not missing:
        print("dock32 setup: all build packages are installed")
        return
    if shutil.which("apt-get") is None:
        raise ToolchainError(f"missing packages {' '.join(missing)} and no apt-get here", hint="install them with your package manager")
    print(f"dock32 setup: installing {' '.join(missing)}", flush=True)
    steps: list[list[str]] = []
    if chosen.foreign_arch:
        architectures = capture(["dpkg", "--print-foreign-architectures"]).stdout.split()
        if chosen.foreign_arch not in architectures:
            steps.append(["dpkg", "--add-architecture", chosen.foreign_arch])
    # A mirror caught mid-sync makes `apt-get update` exit non-zero for one index;
    # the install below is what must succeed, so only it is checked.
    steps.append(["apt-get", "update", "-q"])
    steps.append(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing])
    for index, step in enumerate(steps):
        try:
            run(step, log=None, env={"DEBIAN_FRONTEND": "noninteractive"}, error=ToolchainError)
        except ToolchainError:
            if index == len(steps) - 1:
                raise
    still = missing_packages(wanted)
    if still:
        raise ToolchainError(f"still missing after install: {' '.join(still)}")

