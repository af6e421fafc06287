"""A project, loaded once: its config, toolchain pins, packages and upstream test suites, the machine's settings,
and where this build's outputs go. Everything downstream (the plan, the doit glue, the reports, the benchmark)
takes it from here instead of loading or placing anything again."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dock32.model.config import BuildConfig, DebPackage, Toolchains, load_config, load_packages, load_toolchains
from dock32.model.layout import Layout
from dock32.model.settings import Settings, settings_from_env
from dock32.model.upstreamcfg import UpstreamSuite, load_optional


@dataclass(frozen=True)
class Project:
    config: BuildConfig
    toolchains: Toolchains
    settings: Settings
    packages: tuple[DebPackage, ...]
    upstream_suites: tuple[UpstreamSuite, ...]
    layout: Layout

    @classmethod
    def of(
        cls,
        config: BuildConfig,
        toolchains: Toolchains,
        settings: Settings,
        packages: tuple[DebPackage, ...] = (),
        upstream_suites: tuple[UpstreamSuite, ...] = (),
    ) -> Project:
        """The one place a build's outputs are placed: build/<target>/ and dist/<target>/ of these settings."""
        layout = Layout.of(settings.build_dir, settings.dist_dir, config.target, config.project_dir)
        return cls(config, toolchains, settings, packages, upstream_suites, layout)


def load_project(project_dir: Path, offline: bool | None = None, overrides: tuple[str, ...] = ()) -> Project:
    """A project without packaging/packages.yaml builds binaries only; without upstream-tests.yaml it has no test-upstream.
    overrides (`--set`) come after DOCK32_SET's."""
    settings = settings_from_env(project_dir, offline=offline)
    settings = dataclasses.replace(settings, overrides=settings.overrides + overrides)
    config = load_config(project_dir / "buildcfg.yaml", settings.overrides)
    packages_file = project_dir / "packaging" / "packages.yaml"
    return Project.of(
        config,
        load_toolchains(project_dir / "toolchains"),
        settings,
        load_packages(packages_file, config) if packages_file.is_file() else (),
        load_optional(project_dir / "upstream-tests.yaml", config),
    )
