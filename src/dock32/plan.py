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

from dock32 import build
from dock32.config import BuildConfig, Component, GoModuleSource, Toolchains
from dock32.layout import Layout
from dock32.settings import Settings


@dataclass(frozen=True)
class PlannedTask:
    basename: str
    name: str | None  # subtask name, None for a single task
    doc: str
    action: Callable[[], None] | None
    file_dep: tuple[Path, ...] = ()
    targets: tuple[Path, ...] = ()
    task_dep: tuple[str, ...] = ()
    # The slice of config the task's output depends on: a change re-runs it.
    config: dict[str, Any] = field(default_factory=dict)
    clean: tuple[Path, ...] = ()  # folders to remove on `doit clean`, besides the targets

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


def plan_build(config: BuildConfig, toolchains: Toolchains, settings: Settings) -> list[PlannedTask]:
    layout = Layout(build_dir=settings.build_dir, target=config.target, project_dir=config.project_dir)
    tasks = [
        PlannedTask(
            basename="toolchain",
            name=None,
            doc="Find or provision the pinned Go and the C compiler for the host machine",
            action=functools.partial(build.provision_toolchain, config, toolchains, settings, layout),
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
            file_dep=(*compile_targets, layout.toolchain_record, *(layout.source_record(c.name) for c in config.components)),
            targets=(layout.manifest,),
            config={"release": _as_data(config.release), "target": config.target},
        )
    )
    tasks.append(
        PlannedTask(
            basename="build",
            name=None,
            doc="Build every binary of the release for 32-bit x86, with its manifest",
            action=None,
            task_dep=("manifest",),
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
            # Go modules are fetched with the resolved go command.
            file_dep=(layout.toolchain_record,) if go_source else (),
            targets=(layout.source_record(component.name),),
            config={"source": _as_data(component.source)},
        ),
        PlannedTask(
            basename="source",
            name=component.name,
            doc=f"Copy {component.name}'s pristine tree and apply patches/{component.name}/series",
            action=functools.partial(build.prepare_source, component, layout),
            file_dep=(layout.source_record(component.name), *layout.patch_files(component.name)),
            targets=(layout.prepared_stamp(component.name),),
            config={"version": component.version, "modfile": getattr(component.source, "modfile", None)},
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
                file_dep=(layout.prepared_stamp(component.name), layout.toolchain_record),
                targets=(layout.binary(binary.name),),
                config={
                    "binary": _as_data(binary),
                    "component": {"version": component.version, "commit": component.commit, "cgo": component.cgo},
                    "go386": config.go386,
                    "strategy": config.strategy,
                    "release_date": config.release.epoch,
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
