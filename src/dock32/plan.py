"""Plan: turn the config into the list of tasks with their inputs and outputs, without doing any of them.

Tests read this plan directly; tasks.py hands it to doit.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dock32 import build, signing, upgrade, upstream
from dock32 import debs as debs_module
from dock32 import sbom as sbom_module
from dock32 import verify as verify_module
from dock32.config import BuildConfig, Component, DebPackage, GoBinary, GoModuleSource, Toolchains
from dock32.errors import BuildError, Dock32Error, FetchError, PackageError, PatchError, ToolchainError, VerifyError
from dock32.layout import Layout
from dock32.settings import Settings
from dock32.upstream import UpstreamSuite


@dataclass(frozen=True)
class PlannedTask:
    basename: str
    name: str | None  # subtask name, None for a single task
    doc: str
    action: Callable[[], None] | None
    # The kind, and so the exit code, of whatever fails in this task without a kind of its own: a command it runs,
    # the disk, a bug (errors.in_stage). One per stage, as README's table of exit codes lists them.
    kind: type[Dock32Error]
    file_dep: tuple[Path, ...] = ()
    targets: tuple[Path, ...] = ()
    task_dep: tuple[str, ...] = ()
    # The slice of config the task's output depends on: a change re-runs it.
    config: dict[str, Any] = field(default_factory=dict)
    clean: tuple[Path, ...] = ()  # folders to remove on `doit clean`, besides the targets
    always_run: bool = False  # a check, not a product: asking for it runs it

    @property
    def task_id(self) -> str:
        return f"{self.basename}:{self.name}" if self.name else self.basename


def _as_data(value: Any) -> Any:
    """A config dataclass as plain JSON-able data, for doit's config_changed."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_as_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_data(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def plan_build(
    config: BuildConfig,
    toolchains: Toolchains,
    settings: Settings,
    packages: tuple[DebPackage, ...] = (),
    upstream_suites: tuple[UpstreamSuite, ...] = (),
) -> list[PlannedTask]:
    """The whole chain: toolchain, fetch, source, compile, manifest and, when packages are defined, package and
    repository; then the checks that are run only when asked for (verify, test-upstream)."""
    layout = Layout.of(settings.build_dir, settings.dist_dir, config.target, config.project_dir)
    tasks = [
        PlannedTask(
            basename="toolchain",
            name=None,
            doc="Find or provision the pinned Go and the C compiler for the host machine",
            action=functools.partial(build.provision_toolchain, config, toolchains, settings, layout),
            kind=ToolchainError,
            targets=(layout.toolchain_record,),
            config={"go": config.go_version, "pins": _as_data(toolchains), "needs_c": [c.name for c in config.components if c.needs_c]},
        )
    ]
    compile_targets: list[Path] = []
    for component in config.components:
        tasks += _component_tasks(config, component, settings, layout)
        compile_targets += [layout.binary(b.name) for b in component.binaries]
    tasks.append(
        PlannedTask(
            basename="manifest",
            name=None,
            doc="Write build/<target>/manifest.json: every binary's hash, versions, go version -m and sources",
            action=functools.partial(build.write_manifest, config, settings, layout),
            kind=BuildError,
            # The prepared stamps too: the manifest records each tree's patches, and a patch that changes only
            # comments or tests gives the same binaries.
            file_dep=(
                *compile_targets,
                layout.toolchain_record,
                *(layout.source_record(c.name) for c in config.components),
                *(layout.prepared_stamp(c.name) for c in config.components),
            ),
            targets=(layout.manifest,),
            config={"release": _as_data(config.release), "target": config.target, "format": build.MANIFEST_FORMAT},
        )
    )
    if packages:
        tasks += _package_tasks(config, packages, settings, layout)
    for suite in upstream_suites:
        tasks.append(
            PlannedTask(
                basename="test-upstream",
                name=suite.component,
                doc=f"go test {' '.join(suite.packages)} of {suite.component} for {config.host_arch.names.go}, against upstream-tests.yaml's known failures",
                action=functools.partial(upstream.run_suite, config, suite, settings, layout),
                kind=BuildError,
                file_dep=(layout.prepared_stamp(suite.component), layout.toolchain_record),
                always_run=True,
            )
        )
    tasks.append(
        PlannedTask(
            basename="build",
            name=None,
            doc="Build every binary of the release for 32-bit x86, its .debs and apt repository",
            action=None,
            kind=BuildError,
            task_dep=("repository",) if packages else ("manifest",),
        )
    )
    return tasks


def _package_tasks(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout) -> list[PlannedTask]:
    packaging = config.packaging
    arch = config.deb_arch.names.debian
    tasks = []
    debs = []
    for package in packages:
        deb = layout.dist_dir / debs_module.deb_filename(package, debs_module.package_version(package, config, packaging), arch)
        debs.append(deb)
        binaries = [f.binary or f.run[0] for f in package.files if f.binary or f.run]  # type: ignore[index]
        components = {f.source[0] for f in package.files if f.source} | {package.license_from}
        if "docker-init" in binaries:
            components.add("tini")  # its licence text goes into the copyright file
        packaging_dir = layout.project_dir / "packaging"
        inputs = [packaging_dir / "scripts" / package.name / s for s in package.scripts]
        if config.flavour.preinst:
            inputs.append(packaging_dir / config.flavour.preinst)
        inputs += [packaging_dir / "files" / f.file for f in package.files if f.file]
        overrides = packaging_dir / "lintian" / package.name
        if overrides.is_file():
            inputs.append(overrides)
        tasks.append(
            PlannedTask(
                basename="package",
                name=package.name,
                doc=f"Pack {package.name} as an {arch} .deb with dpkg-deb ({config.host_arch.names.debian} binaries)",
                action=functools.partial(debs_module.build_deb, package, config, packaging, layout),
                kind=PackageError,
                file_dep=(
                    *(layout.binary(b) for b in sorted(set(binaries))),
                    *(layout.prepared_stamp(c) for c in sorted(components)),
                    *inputs,
                ),
                targets=(deb,),
                config={
                    "package": _as_data(package),
                    "packaging": _as_data(packaging),
                    "versions": {c.name: c.version for c in config.components},
                    "release_date": config.release.epoch,
                    "flavour": _as_data(config.flavour),
                },
            )
        )
    # Each SBOM names its .deb's hash, so it follows the .deb; the repository lists it in SHA256SUMS.
    sboms = []
    for package, deb in zip(packages, debs, strict=True):
        sbom = layout.dist_dir / debs_module.sbom_filename(package, debs_module.package_version(package, config, packaging), arch)
        sboms.append(sbom)
        shipped = {f.binary for f in package.files if f.binary}
        patched = sorted(c.name for c in config.components if any(b.name in shipped for b in c.binaries))
        tasks.append(
            PlannedTask(
                basename="sbom",
                name=package.name,
                doc=f"Write {package.name}'s SPDX 2.3 SBOM: Go modules, toolchains, C sources and libraries, patches",
                action=functools.partial(sbom_module.write_sbom, package, config, packaging, layout),
                kind=PackageError,
                file_dep=(deb, layout.manifest, *(p for c in patched for p in layout.patch_files(c))),
                targets=(sbom,),
                config={"format": sbom_module.SBOM_FORMAT, "tool": sbom_module.TOOL_VERSION, "packaging": _as_data(packaging), "release": config.release.epoch},
            )
        )
    # Checks of the installed packages, run only when asked for: each needs the repository and writes its report.
    checks = (
        ("verify", "Install the .debs into a clean Debian root, start the daemons from it and run real containers", verify_module.verify),
        ("verify-upgrade", "Install an earlier release's .debs (--from DIR), make state, upgrade to these and check it is all kept", upgrade.verify_upgrade),
    )
    for basename, doc, check in checks:
        tasks.append(
            PlannedTask(
                basename=basename,
                name=None,
                doc=doc,
                action=functools.partial(check, config, packages, settings, layout),
                kind=VerifyError,
                file_dep=(*debs, layout.dist_dir / "Packages"),
                targets=(layout.target_dir / f"{basename}.json",),
                task_dep=("repository",),
                always_run=True,
            )
        )
    index_files: tuple[str, ...] = ("Packages", "Packages.gz", "Release", "SHA256SUMS", "manifest.json")
    if packaging.gpg_key:
        index_files += (*signing.SIGNATURES, signing.KEYRING)
    tasks.append(
        PlannedTask(
            basename="repository",
            name=None,
            doc="Write the apt repository index, SHA256SUMS and manifest into dist/<target>/",
            action=functools.partial(debs_module.write_repository, packages, config, packaging, layout),
            kind=PackageError,
            file_dep=(*debs, *sboms, layout.manifest),
            targets=tuple(layout.dist_dir / name for name in index_files),
            config={"packaging": _as_data(packaging), "release": _as_data(config.release)},
        )
    )
    return tasks


def _component_tasks(config: BuildConfig, component: Component, settings: Settings, layout: Layout) -> list[PlannedTask]:
    go_source = isinstance(component.source, GoModuleSource)
    tasks = [
        PlannedTask(
            basename="fetch",
            name=component.name,
            doc=f"Download {component.name} {component.version} and check it against its pinned hash",
            action=functools.partial(build.fetch_source, component, settings, layout),
            kind=FetchError,
            # Go modules are fetched with the resolved go command.
            file_dep=(layout.toolchain_record,) if go_source else (),
            targets=(layout.source_record(component.name),),
            config={"source": _as_data(component.source)},
        ),
        PlannedTask(
            basename="source",
            name=component.name,
            doc=f"Copy {component.name}'s pristine tree and apply patches/{component.name}/series",
            action=functools.partial(build.prepare_source, config, component, settings, layout),
            kind=PatchError,
            # Copying patch_modules asks the resolved go command.
            file_dep=(layout.source_record(component.name), *layout.patch_files(component.name), *((layout.toolchain_record,) if go_source else ())),
            targets=(layout.prepared_stamp(component.name),),
            # The series applies by GOARCH too (goarch=386).
            config={"version": component.version, "source": _as_data(component.source), "goarch": config.host_arch.names.go},
            clean=(layout.source_tree(component.name),),
        ),
    ]
    for binary in component.binaries:
        tasks.append(
            PlannedTask(
                basename="compile",
                name=binary.name,
                doc=f"Compile {binary.name} ({component.name}) for {config.host_arch.names.debian}",
                action=functools.partial(build.compile_binary, config, component, binary, settings, layout),
                kind=BuildError,
                file_dep=(layout.prepared_stamp(component.name), layout.toolchain_record),
                targets=(layout.binary(binary.name),),
                config={
                    "binary": _as_data(binary),
                    "component": {"version": component.version, "commit": component.commit, "cgo": component.cgo},
                    "flavour": _as_data(config.flavour),
                    "release_date": config.release.epoch,
                    # The command line itself, so that a change in how dock32 calls go build rebuilds.
                    "command": build.go_build_argv(config, component, binary, "go", Path(binary.name)) if isinstance(binary, GoBinary) else None,
                },
                clean=(layout.cmake_dir(component.name),) if not go_source else (),
            )
        )
    return tasks


def remove_folders(folders: tuple[Path, ...], dryrun: bool) -> None:
    """doit clean action for folders a task fills (a patched tree, a cmake build folder)."""
    for folder in folders:
        if folder.exists():
            print(f"removing folder {folder}")
            if not dryrun:
                shutil.rmtree(folder)
