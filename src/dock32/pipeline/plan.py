"""Plan: turn the config into the list of tasks with their inputs and outputs, without doing any of them.

Tests read this plan directly; tasks.py hands it to doit.
"""

from __future__ import annotations

import functools
import itertools
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dock32.build import steps
from dock32.checks import upgrade, upstream, verify_kernel
from dock32.checks import verify as verify_module
from dock32.core import memory as memory_kind
from dock32.core.arch import Arch, build_machine_arch
from dock32.core.errors import BuildError, Dock32Error, FetchError, PackageError, PatchError, ToolchainError, VerifyError
from dock32.core.memory import MemoryChoice
from dock32.model.config import Binary, BuildConfig, Component, DebPackage, GoBinary, GoModuleSource
from dock32.model.layout import Layout
from dock32.model.project import Project
from dock32.model.settings import Settings
from dock32.model.stages import (
    CompileInput,
    FetchInput,
    ManifestInput,
    PackageInput,
    RepositoryInput,
    SbomInput,
    SourceInput,
    ToolchainInput,
    uptodate_slice,
)
from dock32.packaging import debs as debs_module
from dock32.packaging import sbom as sbom_module
from dock32.packaging import signing


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


def plan_build(project: Project, memory: MemoryChoice | None = None, earlier: Mapping[str, float] | None = None) -> list[PlannedTask]:
    """The whole chain: toolchain, fetch, source, compile, manifest and, when packages are defined, package and
    repository; then the checks that are run only when asked for (verify, test-upstream). memory: the run's go -p,
    GOGC and GOMEMLIMIT for the compiles (none: Go's defaults), given to their actions and not to their inputs,
    since they change no output and must not make a rebuild. earlier: each task's seconds in the last run that ran
    it, which decide the order the compiles start in (rank_components) and nothing else."""
    config, toolchains, settings, layout = project.config, project.toolchains, project.settings, project.layout
    packages, upstream_suites = project.packages, project.upstream_suites
    toolchain = ToolchainInput(
        go_version=config.go_version,
        toolchains=toolchains,
        host_arch=config.host_arch,
        c_parts=tuple(c for c in config.components if c.needs_c),
        output=layout.toolchain_record,
    )
    tasks = [
        _staged(
            ("toolchain", None, "Find or provision the pinned Go and the C compiler for the host machine"),
            ToolchainError,
            steps.provision_toolchain,
            toolchain,
            settings,
            targets=(layout.toolchain_record,),
        )
    ]
    compile_targets: list[Path] = []
    for component in config.components:
        tasks += _component_tasks(config, component, settings, layout, memory)
        compile_targets += [layout.binary(b.name) for b in component.binaries]
    ranked = rank_components(config.components, earlier or {})
    tasks = _in_rank_order(tasks, ranked)
    # The manifest and the build list the compiles in that order too: what a run will do is listed (and its
    # progress counted) in the order it happens.
    compiles_first = tuple(f"compile:{b.name}" for c in ranked for b in c.binaries)
    manifest = ManifestInput(
        release=config.release,
        target=config.target,
        flavour=config.flavour,
        components=config.components,
        format=steps.MANIFEST_FORMAT,
        layout=layout,
        output=layout.manifest,
    )
    tasks.append(
        _staged(
            ("manifest", None, "Write build/<target>/manifest.json: every binary's hash, versions, go version -m and sources"),
            BuildError,
            steps.write_manifest,
            manifest,
            settings,
            # The prepared stamps too: the manifest records each tree's patches, and a patch that changes only
            # comments or tests gives the same binaries.
            file_dep=(
                *compile_targets,
                layout.toolchain_record,
                *(layout.source_record(c.name) for c in config.components),
                *(layout.prepared_stamp(c.name) for c in config.components),
            ),
            targets=(layout.manifest,),
            task_dep=compiles_first,
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
            task_dep=(*compiles_first, "repository" if packages else "manifest"),
        )
    )
    return tasks


# A compile's seconds before any run here has timed it (a cold build on 2 cores): only the order the compiles
# start in depends on it. dockerd is by far the largest; nothing else the plan sees tells the others apart.
GUESSED_SECONDS = {memory_kind.DOCKERD: 150.0, memory_kind.GO: 50.0, memory_kind.C: 1.0}


def rank_components(components: tuple[Component, ...], earlier: Mapping[str, float]) -> tuple[Component, ...]:
    """The components in the order their compiles are to start: the longest first, by the seconds their compiles
    took in the last run here that ran them, else by GUESSED_SECONDS; ties in config order. With two tasks at a
    time, a large link left for last runs alone on one core while the other waits (measured: dockerd's 90 s alone
    at the end of a cold build on 2 cores)."""
    def seconds(component: Component) -> float:
        return sum(earlier.get(f"compile:{b.name}", GUESSED_SECONDS[_binary_kind(b)]) for b in component.binaries)

    order = sorted(range(len(components)), key=lambda i: (-seconds(components[i]), i))
    return tuple(components[i] for i in order)


def _in_rank_order(tasks: list[PlannedTask], ranked: tuple[Component, ...]) -> list[PlannedTask]:
    """Each component's source task made to follow the one of the component ranked before it. doit starts a task
    as soon as the tasks it waits for are done, in no set order (its runner keeps a task's dependents in a set),
    so the order the compiles start in is the order their trees are ready. Preparing a tree takes about a second
    from the cache; its output does not change, and neither does its up-to-date check (task_dep is outside it)."""
    follows = {f"source:{later.name}": f"source:{earlier.name}" for earlier, later in itertools.pairwise(ranked)}
    return [replace(t, task_dep=(*t.task_dep, follows[t.task_id])) if t.task_id in follows else t for t in tasks]


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
        packed = PackageInput(
            package=package, packaging=packaging, release=config.release, flavour=config.flavour, components=config.components,
            xz_filters=debs_module.XZ_DATA_FILTERS, layout=layout, output=deb,
        )
        tasks.append(
            _staged(
                ("package", package.name, f"Pack {package.name} as an {arch} .deb with dpkg-deb ({config.host_arch.names.debian} binaries)"),
                PackageError,
                debs_module.pack,
                packed,
                settings,
                file_dep=(
                    *(layout.binary(b) for b in sorted(set(binaries))),
                    *(layout.prepared_stamp(c) for c in sorted(components)),
                    *inputs,
                ),
                targets=(deb,),
            )
        )
    # Each SBOM names its .deb's hash, so it follows the .deb; the repository lists it in SHA256SUMS.
    sboms = []
    for package, deb in zip(packages, debs, strict=True):
        sbom = layout.dist_dir / debs_module.sbom_filename(package, debs_module.package_version(package, config, packaging), arch)
        sboms.append(sbom)
        shipped = {f.binary for f in package.files if f.binary}
        patched = sorted(c.name for c in config.components if any(b.name in shipped for b in c.binaries))
        described = SbomInput(
            package=package,
            packaging=packaging,
            release=config.release,
            flavour=config.flavour,
            components=config.components,
            format=sbom_module.SBOM_FORMAT,
            tool=sbom_module.TOOL_VERSION,
            layout=layout,
            output=sbom,
        )
        tasks.append(
            _staged(
                ("sbom", package.name, f"Write {package.name}'s SPDX 2.3 SBOM: Go modules, toolchains, C sources and libraries, patches"),
                PackageError,
                sbom_module.write,
                described,
                settings,
                file_dep=(deb, layout.manifest, *(p for c in patched for p in layout.patch_files(c))),
                targets=(sbom,),
            )
        )
    # Checks of the installed packages, run only when asked for: each needs the repository and writes its report.
    checks = (
        ("verify", "Install the .debs into a clean Debian root booted under systemd and run real containers", verify_module.verify),
        ("verify-sysvinit", "The same under sysvinit: /etc/init.d/docker starts, stops and restarts dockerd", verify_module.verify_sysvinit),
        ("verify-i386-kernel", "The same on Debian's i686 kernel (686-pae) booted in QEMU, systemd as PID 1, without x86_64", verify_kernel.verify_i386_kernel),
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
    indexed = RepositoryInput(
        packages=packages,
        packaging=packaging,
        release=config.release,
        flavour=config.flavour,
        components=config.components,
        layout=layout,
        outputs=tuple(layout.dist_dir / name for name in index_files),
    )
    tasks.append(
        _staged(
            ("repository", None, "Write the apt repository index, SHA256SUMS and manifest into dist/<target>/"),
            PackageError,
            debs_module.index,
            indexed,
            settings,
            file_dep=(*debs, *sboms, layout.manifest),
            targets=indexed.outputs,
        )
    )
    return tasks


def _component_tasks(config: BuildConfig, component: Component, settings: Settings, layout: Layout, memory: MemoryChoice | None) -> list[PlannedTask]:
    go_source = isinstance(component.source, GoModuleSource)
    fetch = FetchInput(name=component.name, source=component.source, output=layout.source_record(component.name), toolchain=layout.toolchain_record)
    source = SourceInput(
        fetch=fetch,
        version=component.version,
        goarch=config.host_arch.names.go,
        patch_dir=layout.patch_dir(component.name),
        tree=layout.source_tree(component.name),
    )
    tasks = [
        _staged(
            ("fetch", component.name, f"Download {component.name} {component.version} and check it against its pinned hash"),
            FetchError,
            steps.fetch_source,
            fetch,
            settings,
            # Go modules are fetched with the resolved go command.
            file_dep=(layout.toolchain_record,) if go_source else (),
            targets=(fetch.output,),
        ),
        _staged(
            ("source", component.name, f"Copy {component.name}'s pristine tree and apply patches/{component.name}/series"),
            PatchError,
            steps.prepare_source,
            source,
            settings,
            # Copying patch_modules asks the resolved go command.
            file_dep=(fetch.output, *layout.patch_files(component.name), *((layout.toolchain_record,) if go_source else ())),
            targets=(layout.prepared_stamp(component.name),),
            clean=(source.tree,),
        ),
    ]
    previous: str | None = None
    for binary in component.binaries:
        compiled = CompileInput(
            component=component,
            binary=binary,
            flavour=config.flavour,
            release_date=config.release.date,
            command=tuple(steps.go_build_argv(component, binary, config.release.date, "go", Path(binary.name))) if isinstance(binary, GoBinary) else None,
            tree=source.tree,
            toolchain=layout.toolchain_record,
            work=layout.cmake_dir(component.name),
            log=layout.log(f"compile-{binary.name}"),
            output=layout.binary(binary.name),
        )
        tasks.append(
            _staged(
                ("compile", binary.name, f"Compile {binary.name} ({component.name}) for {config.host_arch.names.debian}"),
                BuildError,
                functools.partial(steps.compile_binary, memory=memory),
                compiled,
                settings,
                file_dep=(layout.prepared_stamp(component.name), layout.toolchain_record),
                targets=(compiled.output,),
                clean=(compiled.work,) if not go_source else (),
                # One component's binaries compile one after another: they share most of their packages, which the
                # later ones then find in the Go build cache; side by side each would compile them (containerd, ctr
                # and the shim: 131 s of task time at once, 47 s in turn, measured on 2 cores).
                task_dep=(previous,) if previous else (),
            )
        )
        previous = tasks[-1].task_id
    return tasks


def _staged(
    task: tuple[str, str | None, str],
    kind: type[Dock32Error],
    action: Callable[[Any, Settings], None],
    inputs: Any,
    settings: Settings,
    file_dep: tuple[Path, ...] = (),
    targets: tuple[Path, ...] = (),
    clean: tuple[Path, ...] = (),
    task_dep: tuple[str, ...] = (),
) -> PlannedTask:
    """A task (basename, name, doc) of a stage whose failures are of `kind`, whose action is given its stage input
    and the machine's settings and nothing else, and whose up-to-date check sees that same input: what the action
    can read, the check sees."""
    basename, name, doc = task
    return PlannedTask(
        basename=basename,
        name=name,
        doc=doc,
        action=functools.partial(action, inputs, settings),
        kind=kind,
        file_dep=file_dep,
        targets=targets,
        config=uptodate_slice(inputs),
        clean=clean,
        task_dep=task_dep,
    )


def remove_folders(folders: tuple[Path, ...], dryrun: bool) -> None:
    """doit clean action for folders a task fills (a patched tree, a cmake build folder)."""
    for folder in folders:
        if folder.exists():
            print(f"removing folder {folder}")
            if not dryrun:
                shutil.rmtree(folder)


def memory_kinds(project: Project, build: Arch | None = None) -> tuple[str, ...]:
    """The kind of each task of a build on the build machine (this one by default), as core.memory estimates their
    memory: building Go from source only where no toolchain module is pinned for it (as toolchains/toolchain.py
    decides), since make.bash compiles as many packages at once as there are CPUs."""
    pin = project.toolchains.go.get(project.config.go_version)
    platform = f"linux-{(build or build_machine_arch()).names.go}"
    builds_go = pin is not None and platform not in pin.sums
    kinds = [memory_kind.TOOLCHAIN if builds_go else memory_kind.SMALL, memory_kind.SMALL]
    for component in project.config.components:
        for binary in component.binaries:
            kinds.append(_binary_kind(binary))
    kinds += [memory_kind.PACKAGING] * len(project.packages)
    return tuple(kinds)


def _binary_kind(binary: Binary) -> str:
    """A compile's kind, as core.memory estimates its memory."""
    if isinstance(binary, GoBinary):
        return memory_kind.DOCKERD if binary.name == "dockerd" else memory_kind.GO
    return memory_kind.C
