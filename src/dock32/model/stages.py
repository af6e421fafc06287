"""What each stage of the build reads: one small frozen value per task, made in the plan.

A task's action is given its stage input and the machine's Settings (where the caches are, whether to go online:
never what is built), and its up-to-date check is doit's config_changed of that same input. So an action cannot
read config that its check does not see: what it is not given, it cannot read. The fields made with `where()`
are locations. doit follows their content as file_dep or targets, and they stay out of the check, so that the same
config in another checkout is not a changed config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dock32.core.arch import Arch
from dock32.model.config import (
    ArchiveSource,
    Binary,
    Component,
    DebPackage,
    GoModuleSource,
    Packaging,
    Release,
    Toolchains,
    component_named,
)
from dock32.model.flavour import Flavour
from dock32.model.layout import Layout

_WHERE = "where"


def where() -> Any:
    """A location: a path the task reads or writes, not a value its output depends on."""
    return field(metadata={_WHERE: True})


def as_data(value: Any) -> Any:
    """A config value as plain JSON-able data, for doit's config_changed; a stage input within another without its
    locations."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return uptodate_slice(value)
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Arch):
        return value.names.debian
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def uptodate_slice(inputs: Any) -> dict[str, Any]:
    """What the task's output depends on: every field of its input but the locations."""
    return {f.name: as_data(getattr(inputs, f.name)) for f in dataclasses.fields(inputs) if not f.metadata.get(_WHERE)}


@dataclass(frozen=True)
class ToolchainInput:
    go_version: str
    toolchains: Toolchains
    host_arch: Arch
    c_parts: tuple[Component, ...]  # the components that need a C compiler: their c_libraries must be there
    output: Path = where()


@dataclass(frozen=True)
class FetchInput:
    name: str
    source: GoModuleSource | ArchiveSource
    output: Path = where()  # the source record
    toolchain: Path = where()  # Go modules are fetched with the resolved go command


@dataclass(frozen=True)
class SourceInput:
    fetch: FetchInput
    version: str
    goarch: str  # patches apply by GOARCH too (goarch=386 in a series)
    patch_dir: Path = where()
    tree: Path = where()  # its stamp is the task's target


@dataclass(frozen=True)
class CompileInput:
    # The whole component: its version, commit and cgo go into the command and environment, its source's modfile
    # into the command. So a change to one binary's entry recompiles its siblings too; a compile is cheap next to a
    # check that misses what it reads.
    component: Component
    binary: Binary
    flavour: Flavour
    release_date: datetime  # build_time and SOURCE_DATE_EPOCH
    command: tuple[str, ...] | None  # go build's command line, so that a change in how dock32 calls it rebuilds
    tree: Path = where()
    toolchain: Path = where()
    work: Path = where()  # cmake's build folder
    log: Path = where()
    output: Path = where()


@dataclass(frozen=True)
class ManifestInput:
    release: Release
    target: str
    flavour: Flavour
    components: tuple[Component, ...]
    format: int
    layout: Layout = where()
    output: Path = where()


class _BuiltFields:
    """For the packaging stages' inputs, which carry what a build is made of (dock32.model.config.Built)."""

    components: tuple[Component, ...]

    def component(self, name: str) -> Component:
        return component_named(self.components, name)


@dataclass(frozen=True)
class PackageInput(_BuiltFields):
    package: DebPackage
    packaging: Packaging
    release: Release  # the changelog names the release; its date is every timestamp
    flavour: Flavour
    components: tuple[Component, ...]  # versions for the version and relations, licences for the copyright
    xz_filters: tuple[str, ...]  # how the data member is compressed (xz): packed again when dock32 changes them
    layout: Layout = where()
    output: Path = where()


@dataclass(frozen=True)
class SbomInput(_BuiltFields):
    package: DebPackage
    packaging: Packaging
    release: Release
    flavour: Flavour
    components: tuple[Component, ...]
    format: int
    tool: str
    layout: Layout = where()
    output: Path = where()


@dataclass(frozen=True)
class RepositoryInput(_BuiltFields):
    packages: tuple[DebPackage, ...]
    packaging: Packaging
    release: Release
    flavour: Flavour
    components: tuple[Component, ...]
    layout: Layout = where()
    outputs: tuple[Path, ...] = where()
