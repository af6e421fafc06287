"""`dock32 cache`: what the shared cache holds, per kind; `dock32 cache prune`: only what the pins still need.

The cache is shared by every workspace (checkout and build folder) on the machine, so each build records its
workspace in the cache (workspaces/), and a prune keeps what the pins of every recorded workspace need: their
trees and downloads, their Go modules (each component's module and what its go.sum lists), their Go toolchains,
and the Go build cache entries used since the oldest of the last compiles of their targets: Go marks an entry's
use in its mtime, to within an hour (its cache's mtimeInterval), and its own trim goes by that mark too.

Builds hold a shared lock on the cache for as long as they run; a prune takes it exclusively, so it never
removes what a running build holds, and a build that starts meanwhile waits for the prune.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dock32.core import atomic, modes
from dock32.core.diskspace import human_size
from dock32.core.errors import BusyError, ConfigError, Dock32Error
from dock32.model.config import ArchiveSource, GoModuleSource
from dock32.model.project import Project, load_project
from dock32.model.settings import Settings
from dock32.pipeline import progress
from dock32.sources import cache
from dock32.sources.trees import tree_hash_of_archive

# Go refreshes an entry's mtime when it uses it only if the mtime is older than this (cmd/go/internal/cache).
GO_MTIME_INTERVAL = 3600.0
_held: dict[Path, int] = {}

# --- who uses the cache ----------------------------------------------------------------------------


def _in_use_lock(settings: Settings) -> int:
    folder = settings.cache_dir / "locks"
    modes.make_dirs(folder)
    return os.open(folder / "in-use.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, modes.FILE)


def hold_in_use(settings: Settings) -> None:
    """For the rest of this process: a build uses the cache (a shared lock; a prune waits for it to end)."""
    if settings.cache_dir in _held:
        return
    fd = _in_use_lock(settings)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.stderr.write(f"waiting for `dock32 cache prune` to finish with {settings.cache_dir}\n")
        fcntl.flock(fd, fcntl.LOCK_SH)
    _held[settings.cache_dir] = fd


@contextlib.contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    fd = _in_use_lock(settings)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"a dock32 build is using the cache {settings.cache_dir} now; a prune could remove what it holds",
                hint="run `dock32 cache prune` again when no build is running",
            ) from None
        yield
    finally:
        os.close(fd)


def _workspace_record(settings: Settings) -> Path:
    key = hashlib.sha256(str(settings.build_dir).encode()).hexdigest()[:16]
    return settings.cache_dir / "workspaces" / f"{key}.json"


def record_use(project: Project) -> None:
    """Note in the cache that this workspace builds this target (under its workspace lock)."""
    path = _workspace_record(project.settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    targets = {str(t) for t in record.get("targets", [])} if isinstance(record.get("targets"), list) else set()
    if project.config.target in targets and record.get("project") == str(project.config.project_dir):
        return
    targets.add(project.config.target)
    record = {"project": str(project.config.project_dir), "build_dir": str(project.settings.build_dir), "targets": sorted(targets)}
    atomic.write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Workspace:
    record: Path
    project: Path
    build_dir: Path
    targets: tuple[str, ...]


def times_file_of(build_dir: Path, target: str) -> Path:
    """Where a workspace keeps its task times (tasks.times_file; the same name, from the build folder alone)."""
    return build_dir / f".doit-{target}.times.json"


def workspaces(settings: Settings) -> tuple[list[Workspace], list[Path]]:
    """The workspaces recorded in the cache whose build folder still exists, and the records of those that are gone."""
    live, gone = [], []
    for path in sorted((settings.cache_dir / "workspaces").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = Workspace(path, Path(data["project"]), Path(data["build_dir"]), tuple(str(t) for t in data["targets"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            gone.append(path)
            continue
        if found.build_dir.is_dir() and (found.project / "buildcfg.yaml").is_file():
            live.append(found)
        else:
            gone.append(path)
    return live, gone


# --- what is in it ----------------------------------------------------------------------------------


KINDS = ("downloads", "trees", "module zips", "extracted modules", "build cache", "go toolchains", "roots", "other")
DOWNLOAD_SUFFIXES = re.compile(r"^(?P<version>v.+?)\.(?P<ext>zip|ziphash|mod|info|lock|partial)$")


@dataclass
class Entry:
    kind: str
    paths: tuple[Path, ...]  # removed together: a tree and its .verified record; a module version's files
    size: int
    name: str


def disk_usage(path: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes on disk under path (as du counts them: blocks, each hard-linked file once)."""
    seen = set() if seen is None else seen
    total = 0
    try:
        st = path.lstat()
    except OSError:
        return 0
    if (st.st_dev, st.st_ino) not in seen:
        seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, names in os.walk(path):
            for name in dirs + names:
                try:
                    st = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def unescape(path: str) -> str:
    """A module path from its module cache form (upper case is escaped: !a for A)."""
    return re.sub(r"!([a-z])", lambda m: m[1].upper(), path)


def _with_record(path: Path) -> tuple[Path, ...]:
    record = path.with_name(path.name + ".verified")
    return (path, record) if record.exists() else (path,)


def module_versions(gomodcache: Path) -> Iterator[tuple[str, str, list[Path]]]:
    """(module, version, its files) for each version in the module cache's download folder."""
    download = gomodcache / "cache" / "download"
    for folder, dirs, _ in os.walk(download):
        dirs[:] = [d for d in dirs if not (Path(folder) == download and d == "sumdb")]
        if Path(folder).name != "@v":
            continue
        dirs[:] = []
        module = unescape(Path(folder).parent.relative_to(download).as_posix())
        versions: dict[str, list[Path]] = {}
        for name in sorted(os.listdir(folder)):
            match = DOWNLOAD_SUFFIXES.match(name)
            if match:
                versions.setdefault(match["version"], []).append(Path(folder) / name)
        for version, files in sorted(versions.items()):
            yield module, version, files


def extracted_modules(gomodcache: Path) -> Iterator[tuple[str, str, Path]]:
    """(module, version, folder) for each unpacked module: <escaped path>@<version> folders outside cache/."""
    for folder, dirs, _ in os.walk(gomodcache):
        if Path(folder) == gomodcache:
            dirs[:] = [d for d in dirs if d != "cache"]
        keep = []
        for name in dirs:
            if "@" in name:
                path = Path(folder) / name
                module, _, version = path.relative_to(gomodcache).as_posix().rpartition("@")
                yield unescape(module), version, path
            else:
                keep.append(name)
        dirs[:] = keep


def entries(settings: Settings) -> list[Entry]:
    """Everything in the cache, each in its kind."""
    found: list[Entry] = []
    cache_dir, gomod = settings.cache_dir, settings.gomodcache

    def add(kind: str, name: str, *paths: Path) -> None:
        found.append(Entry(kind, paths, sum(disk_usage(p) for p in paths), name))

    if settings.downloads_dir.is_dir():
        for path in sorted(settings.downloads_dir.iterdir()):
            add("downloads", path.name, path)
    if settings.trees_dir.is_dir():
        for path in sorted(settings.trees_dir.iterdir()):
            if not path.name.endswith(".verified"):
                add("trees", path.name, *_with_record(path))
    if gomod.is_dir():
        for module, version, files in module_versions(gomod):
            add("module zips", f"{module}@{version}", *files)
        for module, version, path in extracted_modules(gomod):
            add("extracted modules", f"{module}@{version}", *_with_record(path))
    if settings.gocache.is_dir():
        add("build cache", "go build cache", settings.gocache)
    toolchains = cache_dir / "go" / "toolchains"
    if toolchains.is_dir():
        for path in sorted(toolchains.iterdir()):
            add("go toolchains", path.name, path)
    roots = cache_dir / "roots"
    if roots.is_dir():
        for path in sorted(roots.iterdir()):
            add("roots", path.name, path)
    known = {settings.downloads_dir, settings.trees_dir, cache_dir / "go", roots}
    if cache_dir.is_dir():
        for path in sorted(cache_dir.iterdir()):
            if path not in known:
                add("other", path.name, path)
        go_other = [p for p in sorted((cache_dir / "go").iterdir()) if p not in (gomod, settings.gocache, toolchains)] if (cache_dir / "go").is_dir() else []
        for path in go_other:
            add("other", f"go/{path.name}", path)
    return found


def listing(settings: Settings, found: list[Entry]) -> list[str]:
    """Per kind: its size and how many entries; then the total."""
    lines = [f"dock32 cache in {settings.cache_dir}:"]
    for kind in KINDS:
        mine = [e for e in found if e.kind == kind]
        size = sum(e.size for e in mine)
        count = "" if kind == "build cache" else f"  {len(mine)} {'entry' if len(mine) == 1 else 'entries'}"
        if kind == "other" and mine:
            count += f" ({', '.join(e.name for e in mine)})"
        lines.append(f"  {kind:<18} {human_size(size):>9}{count}")
    lines.append(f"  {'total':<18} {human_size(sum(e.size for e in found)):>9}")
    return lines


# --- what the pins need -------------------------------------------------------------------------------


@dataclass
class Needs:
    trees: set[str] = field(default_factory=set)  # tree hashes (ArchiveSource.tree)
    zips: set[tuple[str, str]] = field(default_factory=set)  # module versions whose code a build uses
    go_mods: set[tuple[str, str]] = field(default_factory=set)  # module versions whose go.mod alone a build reads
    go_versions: set[str] = field(default_factory=set)  # Go toolchains pinned (1.26.8)
    build_cutoff: float | None = None  # build cache entries last used before this are not needed
    modules_unknown: list[str] = field(default_factory=list)  # why the module graph is not known: keep all modules
    build_cache_unknown: list[str] = field(default_factory=list)


def sum_file_entries(text: str) -> Iterator[tuple[str, str, bool]]:
    """(module, version, whole module?) per go.sum line: `m v h1:` is the module's code, `m v/go.mod h1:` its go.mod."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].startswith("h1:"):
            version, mod_only = (fields[1][: -len("/go.mod")], True) if fields[1].endswith("/go.mod") else (fields[1], False)
            yield fields[0], version, not mod_only


def _module_folder(gomodcache: Path, module: str, version: str) -> Path:
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    return gomodcache / f"{escaped}@{version}"


def needs_of(project: Project, settings: Settings, needs: Needs) -> None:
    """Add what project's pins need from the cache (read in settings' cache) to needs."""
    for component in project.config.components:
        source = component.source
        if isinstance(source, ArchiveSource):
            needs.trees.add(source.tree)
            continue
        assert isinstance(source, GoModuleSource)
        needs.zips.add((source.module, source.version))
        tree = _module_folder(settings.gomodcache, source.module, source.version)
        sums = tree / (source.modfile.removesuffix(".mod") + ".sum" if source.modfile else "go.sum")
        if not tree.is_dir():
            needs.modules_unknown.append(f"{project.config.project_dir}: {source.ref} is not in the cache, so neither is the list of what it needs")
            continue
        if sums.is_file():
            for module, version, whole in sum_file_entries(sums.read_text(encoding="utf-8", errors="replace")):
                (needs.zips if whole else needs.go_mods).add((module, version))
    for version in project.toolchains.go:
        needs.go_versions.add(version)


def needs(settings: Settings, current: Project) -> tuple[Needs, list[Path]]:
    """What every workspace using the cache needs, and the records of workspaces that are gone."""
    found = Needs()
    live, gone = workspaces(settings)
    projects: dict[Path, Project] = {current.config.project_dir: current}
    starts: list[float] = []
    for workspace in live:
        if workspace.project not in projects:
            try:
                projects[workspace.project] = load_project(workspace.project, offline=True)
            except Dock32Error as exc:
                raise ConfigError(
                    f"{workspace.record}: the workspace {workspace.build_dir} uses this cache, but its project cannot be read: {exc}",
                    hint=f"fix {workspace.project}, or remove {workspace.record} if that workspace is no longer used",
                ) from None
        for target in workspace.targets:
            if not (workspace.build_dir / target).is_dir():
                continue
            compiles = {f"compile:{b.name}" for c in projects[workspace.project].config.components for b in c.binaries}
            ran = {t: when for t, when in progress.load_starts(times_file_of(workspace.build_dir, target)).items() if t in compiles}
            if ran:
                starts.append(min(ran.values()))
            else:
                found.build_cache_unknown.append(f"{workspace.build_dir / target}: no compile of it is recorded")
    if not any(w.build_dir == current.settings.build_dir for w in live) and current.layout.target_dir.is_dir():
        found.build_cache_unknown.append(f"{current.layout.target_dir} was built before the cache recorded its builds")
    for project in projects.values():
        needs_of(project, settings, found)
    if starts:
        # The oldest of the last compiles: every entry one of them used was marked at most an hour before it began.
        found.build_cutoff = min(starts) - GO_MTIME_INTERVAL - 60
    else:
        found.build_cache_unknown.append("no build of any workspace is recorded in the cache")
    return found, gone


# --- pruning ----------------------------------------------------------------------------------------


@dataclass
class Removal:
    kind: str
    name: str
    paths: tuple[Path, ...]
    size: int


def _go_version_of_toolchain(name: str) -> str | None:
    """go1.26.8.linux-386 (or its .make.log) -> 1.26.8."""
    match = re.match(r"^go(\d+\.\d+(?:\.\d+)?)\.", name)
    return match[1] if match else None


def _toolchain_module_version(module: str, version: str) -> str | None:
    """golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64 -> 1.26.8."""
    if module != "golang.org/toolchain":
        return None
    match = re.match(r"^v0\.0\.1-go(\d+\.\d+(?:\.\d+)?)\.", version)
    return match[1] if match else None


def _module_needed(module: str, version: str, whole: bool, wanted: Needs) -> bool:
    go = _toolchain_module_version(module, version)
    if go is not None:
        return go in wanted.go_versions
    return (module, version) in wanted.zips or (not whole and (module, version) in wanted.go_mods)


def plan_prune(settings: Settings, found: list[Entry], wanted: Needs) -> list[Removal]:
    removals: list[Removal] = []
    for entry in found:
        gone = False
        if entry.kind == "trees":
            gone = entry.name.replace("-", ":", 1) not in wanted.trees
        elif entry.kind == "downloads":
            try:
                gone = tree_hash_of_archive(entry.paths[0]) not in wanted.trees
            except (Dock32Error, OSError):
                gone = True  # not an archive of ours: nothing reads it
        elif entry.kind == "module zips" and not wanted.modules_unknown:
            module, _, version = entry.name.rpartition("@")
            if not _module_needed(module, version, True, wanted):
                paths = entry.paths if not _module_needed(module, version, False, wanted) else tuple(
                    p for p in entry.paths if p.suffix in (".zip", ".ziphash", ".partial")
                )
                if paths:
                    removals.append(Removal(entry.kind, entry.name, paths, sum(disk_usage(p) for p in paths)))
            continue
        elif entry.kind == "extracted modules" and not wanted.modules_unknown:
            module, _, version = entry.name.rpartition("@")
            gone = not _module_needed(module, version, True, wanted)
        elif entry.kind == "go toolchains":
            go = _go_version_of_toolchain(entry.name)
            gone = go is not None and go not in wanted.go_versions
        elif entry.kind == "other":
            gone = entry.name == "quarantine"  # downloads that failed their pin, kept for a look
        if gone:
            removals.append(Removal(entry.kind, entry.name, entry.paths, entry.size))
    if wanted.build_cutoff is not None and not wanted.build_cache_unknown and settings.gocache.is_dir():
        old = list(_unused_build_entries(settings.gocache, wanted.build_cutoff))
        if old:
            removals.append(Removal("build cache", f"{len(old)} entries used by none of the last compiles", tuple(old), sum(disk_usage(p) for p in old)))
    return removals


def _unused_build_entries(gocache: Path, cutoff: float) -> Iterator[Path]:
    """The Go build cache's entries last used before cutoff, as go's own trim finds them (its 00..ff folders)."""
    for folder in sorted(gocache.iterdir()):
        if folder.is_dir() and re.fullmatch(r"[0-9a-f]{2}", folder.name):
            for path in folder.iterdir():
                try:
                    if path.lstat().st_mtime < cutoff:
                        yield path
                except OSError:
                    continue


def _remove(removal: Removal) -> None:
    for path in removal.paths:
        if path.is_dir() and not path.is_symlink():
            cache.discard(path)  # made writable first: Go's module cache and toolchains are read-only, as go clean -modcache knows
        else:
            path.unlink(missing_ok=True)


def _lock_key(removal: Removal) -> str | None:
    """The cache entry lock that fetching this entry takes (sources/cache.py entry_lock)."""
    if removal.kind == "trees":
        return removal.name.replace("-", ":", 1)
    if removal.kind in ("module zips", "extracted modules"):
        return removal.name
    return None


def prune(settings: Settings, current: Project, dry_run: bool) -> list[str]:
    """Remove what no workspace's pins need; the lines to print. A dry run removes nothing, so it needs no build to
    be idle: it only says what a prune would remove now."""
    with contextlib.nullcontext() if dry_run else _exclusive(settings):
        wanted, gone_workspaces = needs(settings, current)
        before = entries(settings)
        removals = plan_prune(settings, before, wanted)
        lines = listing(settings, before)
        for why in wanted.modules_unknown:
            lines.append(f"keeping every Go module: {why} (a build fetches it)")
        for why in wanted.build_cache_unknown:
            lines.append(f"keeping the whole Go build cache: {why} (build every target once, then prune)")
        verb = "would remove" if dry_run else "removed"
        by_kind: dict[str, list[Removal]] = {}
        for removal in removals:
            by_kind.setdefault(removal.kind, []).append(removal)
        for kind in KINDS:
            for removal in by_kind.get(kind, []):
                lines.append(f"{verb} {kind}: {removal.name} ({human_size(removal.size)})")
        if not dry_run:
            for removal in removals:
                key = _lock_key(removal)
                with cache.entry_lock(settings, key) if key else contextlib.nullcontext():
                    _remove(removal)
            for record in gone_workspaces:
                record.unlink(missing_ok=True)
        total = sum(r.size for r in removals)
        lines.append(f"{verb} {human_size(total)} in {len(removals)} entries" if removals else "nothing to remove: the pins need everything in the cache")
        if not dry_run and removals:
            lines += listing(settings, entries(settings))
        return lines
