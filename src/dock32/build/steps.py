"""The work behind each task: fetch, prepare a patched tree, compile a binary, write the manifest."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from dock32.core import atomic, diskspace, modes
from dock32.core.errors import BuildError, FetchError, ToolchainError
from dock32.core.memory import MemoryChoice
from dock32.core.run import run
from dock32.model.config import ArchiveSource, CMakeBinary, Component, GoBinary, GoModuleSource
from dock32.model.flavour import Flavour
from dock32.model.settings import Settings
from dock32.model.stages import CompileInput, FetchInput, ManifestInput, SourceInput, ToolchainInput
from dock32.sources import gocmd
from dock32.sources.fetch import FetchedSource, fetch_archive, fetch_module
from dock32.sources.patches import apply_series, read_series
from dock32.sources.trees import copy_writable
from dock32.toolchains.toolchain import ResolvedToolchain, c_library_record, c_runtime_record, resolve

STAMP = ".dock32-prepared"
# Raise when write_manifest records more (2: dependency sums and replacements, the C libraries' packages, for the SBOMs;
# 3: deb_arch, and go386 only for 386 binaries):
# the manifest task's config changes, so doit writes the manifest again.
MANIFEST_FORMAT = 3


def provision_toolchain(inputs: ToolchainInput, settings: Settings) -> None:
    resolved = resolve(inputs.go_version, inputs.toolchains, inputs.host_arch, inputs.c_parts, settings)
    atomic.write_text(inputs.output, resolved.to_json())


def fetch_source(inputs: FetchInput, settings: Settings) -> None:
    if isinstance(inputs.source, GoModuleSource):
        go = ResolvedToolchain.from_file(inputs.toolchain).go
        fetched = fetch_module(inputs.name, inputs.source, Path(go), settings)
    else:
        fetched = fetch_archive(inputs.name, inputs.source, settings)
    atomic.write_text(inputs.output, json.dumps(fetched.to_json(), indent=2, sort_keys=True) + "\n")


PATCHED_MODULES_DIR = "_dock32/modules"


def _copy_patched_modules(source: GoModuleSource, tree: Path, go: str, settings: Settings) -> None:
    """Copy each dependency in source.patch_modules, at the version the module file asks for, into the tree
    and replace it there, as `go mod vendor` would, but for the dependencies our patches change only.
    `go mod download` checks each against the module file's sums; the replaced copy is built from the tree."""
    modfile = (f"-modfile={source.modfile}",) if source.modfile else ()
    found = gocmd.Go(go, settings, tree, timeout=None).download_many(list(source.patch_modules), flags=modfile)
    for module in source.patch_modules:
        downloaded = found[module]
        if isinstance(downloaded, str):
            raise FetchError(f"patch_modules: cannot fetch {module}: {downloaded}", hint="it must be a dependency in the component's module file")
        copy_writable(downloaded.dir, tree / PATCHED_MODULES_DIR / module)
        # `go mod edit` names its module file as an argument, not with -modfile.
        edit = [go, "mod", "edit", f"-replace={module}=./{PATCHED_MODULES_DIR}/{module}", *([source.modfile] if source.modfile else [])]
        run(edit, env=gocmd.module_env(settings), cwd=tree, log=None, what=f"replace {module} with the tree's copy")


def prepare_tree(source: GoModuleSource | ArchiveSource, pristine: Path, tree: Path, go: str | None, settings: Settings) -> None:
    """A writable copy of a pristine tree, made ready for patches as both the build and `dock32 bump` need it: for a
    module built with -modfile a go.mod stub, and its patch_modules copied in and replaced."""
    copy_writable(pristine, tree)
    if not isinstance(source, GoModuleSource):
        return
    if source.modfile and not (tree / "go.mod").exists():
        # -modfile still needs a go.mod to mark the module root; upstream's hack/with-go-mod.sh writes the same stub.
        (tree / "go.mod").write_text(f"module {source.module}\n", encoding="utf-8")
    if source.patch_modules:
        if go is None:
            raise ToolchainError("patch_modules: no go command to fetch them with", hint="run `dock32 doctor`")
        _copy_patched_modules(source, tree, go, settings)


def prepare_source(inputs: SourceInput, settings: Settings) -> None:
    """Copy the pristine tree and apply the patch series; the tree appears under its name only when complete."""
    # Fetching again right before use is a check of the cached tree (cheap unless it was touched), which
    # fetches it anew if it was altered since the fetch task ran.
    fetch = inputs.fetch
    fetch_source(fetch, settings)
    fetched = FetchedSource(**json.loads(fetch.output.read_text(encoding="utf-8")))
    destination = inputs.tree
    diskspace.require(destination.parent, diskspace.tree_size(Path(fetched.tree)) + diskspace.SOURCE_TREE_MARGIN, f"the {fetch.name} source tree")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=fetch.name + ".", suffix=".partial", dir=destination.parent))
    try:
        tree = staging / "tree"
        # Only a Go module's tree asks the go command (for patch_modules); a tarball's source task runs without a toolchain.
        go = ResolvedToolchain.from_file(fetch.toolchain).go if isinstance(fetch.source, GoModuleSource) else None
        prepare_tree(fetch.source, Path(fetched.tree), tree, go, settings)
        applied = apply_series(read_series(inputs.patch_dir), tree, inputs.version, inputs.goarch)
        stamp = {
            "source": fetched.hash,
            "patches": [{"name": p.path.name, "sha256": hashlib.sha256(p.path.read_bytes()).hexdigest()} for p in applied],
        }
        (tree / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if destination.exists():
            shutil.rmtree(destination)
        tree.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ldflag_values(component: Component, release_date: datetime) -> dict[str, str]:
    return {
        "version": component.version,
        "commit": component.commit,
        "build_time": release_date.strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00"),
    }


def c_flags(flavour: Flavour, toolchain: ResolvedToolchain) -> str:
    """The C compiler flags for this build: the toolchain's, and for softfloat no SSE at all."""
    flags = toolchain.c_env.get("CGO_CFLAGS", "").split()
    flags = [*flags, *flavour.c_flags]
    # Setting CGO_CFLAGS replaces cgo's default, -O2 -g: keep it.
    return " ".join(["-O2", "-g", *flags]) if flags else ""


def go_build_env(component: Component, flavour: Flavour, release_date: datetime, toolchain: ResolvedToolchain, settings: Settings) -> dict[str, str]:
    env = {
        **gocmd.module_env(settings),
        "GOOS": "linux",
        **flavour.go_env,
        "CGO_ENABLED": "1" if component.cgo else "0",
        "SOURCE_DATE_EPOCH": str(int(release_date.timestamp())),
    }
    if component.cgo:
        env.update(toolchain.c_env)
        if flags := c_flags(flavour, toolchain):
            env["CGO_CFLAGS"] = flags
    return env


def go_build_argv(component: Component, binary: GoBinary, release_date: datetime, go: str, output: Path) -> list[str]:
    values = ldflag_values(component, release_date)
    # An empty Go build ID, as runc's own release build links (script/release_build.sh). The linker derives
    # the ID from the build IDs of every compiled package, and some packages (buildkit's frontend/gateway/pb in
    # buildx 0.37) get a different one on each cold compile of the same code, so two cold builds differed by it.
    ldflags = " ".join([*(flag.format(**values) for flag in binary.ldflags), "-buildid="])
    argv = [go, "build"]
    source = component.source
    if isinstance(source, GoModuleSource) and source.modfile:
        argv.append(f"-modfile={source.modfile}")
    argv += ["-trimpath", "-buildvcs=false", "-o", str(output)]
    if binary.tags:
        argv.append("-tags=" + ",".join(binary.tags))
    argv.append("-ldflags=" + ldflags)
    argv.append(binary.package)
    return argv


def compile_binary(inputs: CompileInput, settings: Settings, memory: MemoryChoice | None = None) -> None:
    """memory: the run's choice of go -p, GOGC and GOMEMLIMIT (core.memory); None leaves Go's defaults."""
    component, binary = inputs.component, inputs.binary
    toolchain = ResolvedToolchain.from_file(inputs.toolchain)
    tree = inputs.tree
    final = inputs.output
    modes.make_dirs(final.parent)
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    diskspace.require(final.parent, diskspace.COMPILE_OUTPUT_NEED, f"compiling {binary.name}")
    diskspace.require(settings.gocache, diskspace.COMPILE_CACHE_NEED, f"the Go build cache while compiling {binary.name}")
    log = inputs.log
    log.unlink(missing_ok=True)
    try:
        if isinstance(binary, GoBinary):
            env = go_build_env(component, inputs.flavour, inputs.release_date, toolchain, settings)
            if memory is not None:
                env = memory.go_env(env)
            run(go_build_argv(component, binary, inputs.release_date, toolchain.go, partial), env=env, cwd=tree, log=log, what=f"compile {binary.name}")
        else:
            _cmake_build(inputs, binary, toolchain, partial)
        # go build makes it what the umask leaves of 0777 (0700 under 0077); a program is 0755.
        partial.chmod(modes.PROGRAM)
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)


def _cmake_build(inputs: CompileInput, binary: CMakeBinary, toolchain: ResolvedToolchain, output: Path) -> None:
    if toolchain.cc is None:
        raise BuildError(f"compile {binary.name}: no C compiler was resolved", hint="run `dock32 doctor`")
    tree, work, log = inputs.tree, inputs.work / binary.name, inputs.log
    shutil.rmtree(work, ignore_errors=True)
    # The prefix map keeps the build folder's path out of the binary, so any checkout builds the same bytes. CMake
    # pastes CMAKE_C_FLAGS into compile commands that its generators run through a shell: a checkout whose path has
    # a space needs the map quoted (shlex.quote leaves a plain path as it is, so those builds see the same flags).
    prefix_maps = [shlex.quote(f"-ffile-prefix-map={folder}=.") for folder in (tree, work)]
    cflags = " ".join([*prefix_maps, c_flags(inputs.flavour, toolchain)]).strip()
    env = {"SOURCE_DATE_EPOCH": str(int(inputs.release_date.timestamp()))}
    # The toolchain's link flags (where the crt files, libgcc and libc come from) apply to tini as to cgo.
    link = [f"-DCMAKE_EXE_LINKER_FLAGS={toolchain.c_env['CGO_LDFLAGS']}"] if toolchain.c_env.get("CGO_LDFLAGS") else []
    run(
        ["cmake", "-S", tree, "-B", work, f"-DCMAKE_C_COMPILER={toolchain.cc}", "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_C_FLAGS={cflags}", *link, *binary.args],
        env=env,
        log=log,
        what=f"configure {binary.name}",
    )
    run(["cmake", "--build", work, "--target", binary.target], env=env, log=log, what=f"compile {binary.name}")
    shutil.copyfile(work / binary.output, output)


def write_manifest(inputs: ManifestInput, settings: Settings) -> None:
    layout = inputs.layout
    toolchain = ResolvedToolchain.from_file(layout.toolchain_record)
    components = {}
    binaries = {}
    for component in inputs.components:
        record = json.loads(layout.source_record(component.name).read_text(encoding="utf-8"))
        stamp = json.loads((layout.source_tree(component.name) / STAMP).read_text(encoding="utf-8"))
        source = component.source
        components[component.name] = {
            "version": component.version,
            "commit": component.commit,
            "source": source.ref if isinstance(source, GoModuleSource) else list(source.urls),
            "source_hash": record["hash"],
            "patches": stamp["patches"],
        }
        if component.c_libraries:
            components[component.name]["c_libraries"] = [c_library_record(lib, toolchain.c_env) for lib in component.c_libraries]
        for binary in component.binaries:
            path = layout.binary(binary.name)
            entry: dict[str, object] = {
                "path": str(path.relative_to(layout.target_dir)),
                "component": component.name,
                "version": component.version,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "size": path.stat().st_size,
            }
            if isinstance(binary, GoBinary):
                entry["go_version_m"] = gocmd.version_m(toolchain.go, path)
            else:
                entry["cc"] = toolchain.cc_version
            binaries[binary.name] = entry
    manifest = {
        "release": inputs.release.version,
        "source_date_epoch": inputs.release.epoch,
        "target": inputs.target,
        "strategy": inputs.flavour.strategy,
        "arch": inputs.flavour.host_arch.names.debian,  # the binaries'; the packages' is deb_arch
        "deb_arch": inputs.flavour.deb_arch.names.debian,
        **inputs.flavour.as_record(),  # strategy again (it stays first), and go386 where it applies
        "toolchain": {
            "go": toolchain.go_version,
            "go_pinned": toolchain.go_pinned,
            "go_source": toolchain.go_source,
            "cc": toolchain.cc_version,
            **({"libc": c_runtime_record(toolchain.cc, tuple(toolchain.c_env.get("CGO_LDFLAGS", "").split()))} if toolchain.cc else {}),
        },
        "components": components,
        "binaries": binaries,
    }
    atomic.write_text(inputs.output, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
