"""`dock32 doctor`: check the build machine and print the exact command for whatever is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from dock32.core.arch import build_machine_arch
from dock32.core.errors import ToolchainError
from dock32.model.config import load_config, load_toolchains
from dock32.model.settings import Settings
from dock32.sources import gocmd
from dock32.toolchains.hostsetup import missing_packages
from dock32.toolchains.toolchain import bootstrap_go_setup, c_toolchain_for, check_c, install_command, plan_go_here


def report(config_path: Path, settings: Settings) -> None:
    config = load_config(config_path, settings.overrides)
    toolchains = load_toolchains(config_path.parent / "toolchains")
    build = build_machine_arch()
    rows: list[tuple[str, bool, str]] = []
    fixes: list[str] = []

    go = shutil.which("go")
    version = gocmd.version_of(go) if go else None
    wanted = f"go{config.go_version}"
    if version is None:
        rows.append(("go", False, "not found"))
        fixes.append("apt-get install -y golang-go   # any Go >= 1.21; dock32 provisions the pinned one")
    elif version == wanted:
        rows.append(("go", True, f"{version} (the pinned version)"))
    else:
        pin = toolchains.go.get(config.go_version)
        platform = f"linux-{build.names.go}"
        ok = True
        if pin is not None and platform in pin.sums:
            detail = f"{version}; {wanted} will be provisioned through GOPROXY"
        elif pin is not None and pin.sums:
            try:
                chain = plan_go_here(config.go_version, toolchains, build, settings)
            except ToolchainError as exc:
                ok = False
                detail = f"{version}; no module pinned for {platform}: {exc.message}"
                packages, suite = bootstrap_go_setup(config, toolchains, build)
                if packages:
                    install = f"apt-get install -y {f'-t {suite} ' if suite else ''}{' '.join(packages)}"
                    fixes.append(install + (f"   # `make setup` adds {suite}" if suite else ""))
                else:
                    fixes.append(f"# {exc.hint}")
            else:
                if chain.steps:
                    detail = f"{version}; no module pinned for {platform}: {wanted} will be built from source, once (cached): {chain.describe()}"
                else:
                    detail = f"{version}; no module pinned for {platform}: {wanted}, built from source before (cached: {chain.start.origin})"
        else:
            detail = f"{version}; no pin for {wanted}: the build falls back to {version}"
        rows.append(("go", ok, detail))

    if any(c.needs_c for c in config.components):
        chosen = c_toolchain_for(toolchains, build, config.host_arch)
        libraries = tuple(lib for c in config.components for lib in c.c_libraries)
        problems = check_c(chosen, libraries)
        rows.append((f"C for {config.host_arch.names.debian}", not problems, "; ".join(problems) or f"{chosen.cc}, {', '.join(libraries)}"))
        if problems:
            fixes.append(install_command(chosen))

    missing = missing_packages(toolchains.host_packages)
    rows.append(("packaging tools", not missing, f"missing: {' '.join(missing)}" if missing else ", ".join(toolchains.host_packages)))
    if missing:
        fixes.append(f"apt-get install -y {' '.join(missing)}")

    rows.append(("cache", True, str(settings.cache_dir) + (" (offline)" if settings.offline else "")))
    width = max(len(name) for name, _, _ in rows)
    for name, ok, detail in rows:
        print(f"{'ok  ' if ok else 'MISSING'} {name:<{width}}  {detail}")
    if fixes:
        print("\nTo install what is missing, run as root:")
        for fix in fixes:
            print(f"  {fix}")
        raise ToolchainError("the build machine is missing tools (see above)", hint="run the commands above, or `make setup`")
