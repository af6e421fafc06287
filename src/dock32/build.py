"""The work behind each task: fetch, prepare a patched tree, compile a binary, write the manifest."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import tempfile
from pathlib import Path

from dock32 import atomic, diskspace, modes
from dock32.config import BuildConfig, CMakeBinary, Component, GoBinary, GoModuleSource, Toolchains
from dock32.errors import BuildError
from dock32.fetch import FetchedSource, fetch_archive, fetch_module, go_module_env
from dock32.layout import Layout
from dock32.patches import apply_series, read_series
from dock32.run import capture, run
from dock32.settings import Settings
from dock32.toolchain import ResolvedToolchain, c_library_record, c_runtime_record, resolve
from dock32.trees import copy_writable

STAMP = ".dock32-prepared"
# Raise when write_manifest records more (2: dependency sums and replacements, the C libraries' packages, for the SBOMs;
# 3: deb_arch, and go386 only for 386 binaries):
# the manifest task's config changes, so doit writes the manifest again.
MANIFEST_FORMAT = 3


def provision_toolchain(config: BuildConfig, toolchains: Toolchains, settings: Settings, layout: Layout) -> None:
    atomic.write_text(layout.toolchain_record, resolve(config, toolchains, settings).to_json())


def fetch_source(component: Component, settings: Settings, layout: Layout) -> None:
    if isinstance(component.source, GoModuleSource):
        go = ResolvedToolchain.from_file(layout.toolchain_record).go
        fetched = fetch_module(component.name, component.source, Path(go), settings)
    else:
        fetched = fetch_archive(component.name, component.source, settings)
    atomic.write_text(layout.source_record(component.name), json.dumps(fetched.to_json(), indent=2, sort_keys=True) + "\n")


PATCHED_MODULES_DIR = "_dock32/modules"


def _copy_patched_modules(source: GoModuleSource, tree: Path, settings: Settings, layout: Layout) -> None:
    """Copy each dependency in source.patch_modules, at the version the module file asks for, into the tree
    and replace it there, as `go mod vendor` would, but for the dependencies our patches change only.
    `go mod download` checks each against the module file's sums; the replaced copy is built from the tree."""
    go = ResolvedToolchain.from_file(layout.toolchain_record).go
    modfile = [f"-modfile={source.modfile}"] if source.modfile else []
    for module in source.patch_modules:
        result = capture([go, "mod", "download", "-json", *modfile, module], env=go_module_env(settings), cwd=tree)
        info = json.loads(result.stdout or "{}") if result.stdout.strip().startswith("{") else {}
        if result.returncode != 0 or "Dir" not in info:
            reason = info.get("Error") or (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
            raise BuildError(f"patch_modules: cannot fetch {module}: {reason}", hint="it must be a dependency in the component's module file")
        copy = tree / PATCHED_MODULES_DIR / module
        copy_writable(Path(info["Dir"]), copy)
        # `go mod edit` names its module file as an argument, not with -modfile.
        edit = [go, "mod", "edit", f"-replace={module}=./{PATCHED_MODULES_DIR}/{module}", *([source.modfile] if source.modfile else [])]
        run(edit, env=go_module_env(settings), cwd=tree, log=None, what=f"replace {module} with the tree's copy")


def prepare_source(config: BuildConfig, component: Component, settings: Settings, layout: Layout) -> None:
    """Copy the pristine tree and apply the patch series; the tree appears under its name only when complete."""
    # Fetching again right before use is a check of the cached tree (cheap unless it was touched), which
    # fetches it anew if it was altered since the fetch task ran.
    fetch_source(component, settings, layout)
    fetched = FetchedSource(**json.loads(layout.source_record(component.name).read_text(encoding="utf-8")))
    destination = layout.source_tree(component.name)
    diskspace.require(destination.parent, diskspace.tree_size(Path(fetched.tree)) + diskspace.SOURCE_TREE_MARGIN, f"the {component.name} source tree")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=component.name + ".", suffix=".partial", dir=destination.parent))
    try:
        tree = staging / "tree"
        copy_writable(Path(fetched.tree), tree)
        source = component.source
        if isinstance(source, GoModuleSource) and source.modfile and not (tree / "go.mod").exists():
            # -modfile still needs a go.mod to mark the module root; upstream's
            # hack/with-go-mod.sh writes the same stub.
            (tree / "go.mod").write_text(f"module {source.module}\n", encoding="utf-8")
        if isinstance(source, GoModuleSource) and source.patch_modules:
            _copy_patched_modules(source, tree, settings, layout)
        applied = apply_series(read_series(layout.patch_dir(component.name)), tree, component.version, config.host_arch.names.go)
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


def ldflag_values(config: BuildConfig, component: Component) -> dict[str, str]:
    return {
        "version": component.version,
        "commit": component.commit,
        "build_time": config.release.date.strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00"),
    }


def c_flags(config: BuildConfig, toolchain: ResolvedToolchain) -> str:
    """The C compiler flags for this build: the toolchain's, and for softfloat no SSE at all."""
    flags = toolchain.c_env.get("CGO_CFLAGS", "").split()
    flags = [*flags, *config.flavour.c_flags]
    # Setting CGO_CFLAGS replaces cgo's default, -O2 -g: keep it.
    return " ".join(["-O2", "-g", *flags]) if flags else ""


def go_build_env(config: BuildConfig, component: Component, toolchain: ResolvedToolchain, settings: Settings) -> dict[str, str]:
    env = {
        **go_module_env(settings),
        "GOOS": "linux",
        **config.flavour.go_env,
        "CGO_ENABLED": "1" if component.cgo else "0",
        "SOURCE_DATE_EPOCH": str(config.release.epoch),
    }
    if component.cgo:
        env.update(toolchain.c_env)
        if c_flags(config, toolchain):
            env["CGO_CFLAGS"] = c_flags(config, toolchain)
    return env


def go_build_argv(config: BuildConfig, component: Component, binary: GoBinary, go: str, output: Path) -> list[str]:
    values = ldflag_values(config, component)
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


def compile_binary(config: BuildConfig, component: Component, binary: GoBinary | CMakeBinary, settings: Settings, layout: Layout) -> None:
    toolchain = ResolvedToolchain.from_file(layout.toolchain_record)
    tree = layout.source_tree(component.name)
    final = layout.binary(binary.name)
    modes.make_dirs(final.parent)
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    diskspace.require(final.parent, diskspace.COMPILE_OUTPUT_NEED, f"compiling {binary.name}")
    diskspace.require(settings.gocache, diskspace.COMPILE_CACHE_NEED, f"the Go build cache while compiling {binary.name}")
    log = layout.log(f"compile-{binary.name}")
    log.unlink(missing_ok=True)
    try:
        if isinstance(binary, GoBinary):
            env = go_build_env(config, component, toolchain, settings)
            run(go_build_argv(config, component, binary, toolchain.go, partial), env=env, cwd=tree, log=log, what=f"compile {binary.name}")
        else:
            _cmake_build(config, component, binary, toolchain, tree, partial, layout, log)
        # go build makes it what the umask leaves of 0777 (0700 under 0077); a program is 0755.
        partial.chmod(modes.PROGRAM)
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)


def _cmake_build(
    config: BuildConfig, component: Component, binary: CMakeBinary, toolchain: ResolvedToolchain, tree: Path, output: Path, layout: Layout, log: Path
) -> None:
    if toolchain.cc is None:
        raise BuildError(f"compile {binary.name}: no C compiler was resolved", hint="run `dock32 doctor`")
    work = layout.cmake_dir(component.name) / binary.name
    shutil.rmtree(work, ignore_errors=True)
    # The prefix map keeps the build folder's path out of the binary, so any checkout builds the same bytes. CMake
    # pastes CMAKE_C_FLAGS into compile commands that its generators run through a shell: a checkout whose path has
    # a space needs the map quoted (shlex.quote leaves a plain path as it is, so those builds see the same flags).
    prefix_maps = [shlex.quote(f"-ffile-prefix-map={folder}=.") for folder in (tree, work)]
    cflags = " ".join([*prefix_maps, c_flags(config, toolchain)]).strip()
    env = {"SOURCE_DATE_EPOCH": str(config.release.epoch)}
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


def parse_go_version_m(text: str) -> dict[str, object]:
    """`go version -m` output as data: the Go version, main package and module, each dependency as "module version"
    (its go.sum `h1:` in sums, where it was replaced in replace) and the build settings."""
    lines = text.splitlines()
    if not lines:
        return {}
    deps: list[str] = []
    sums: dict[str, str] = {}
    replace: dict[str, dict[str, str]] = {}
    settings: dict[str, str] = {}
    info: dict[str, object] = {"go": lines[0].split(": ", 1)[-1].strip(), "deps": deps, "sums": sums, "replace": replace, "settings": settings}
    last_dep = None
    for line in lines[1:]:
        fields = line.strip().split("\t")
        if fields[0] in ("path", "mod") and len(fields) >= 2:
            info[fields[0]] = " ".join(fields[1:3])
        elif fields[0] == "dep" and len(fields) >= 3:
            last_dep = fields[1]
            deps.append(" ".join(fields[1:3]))
            if len(fields) >= 4 and fields[3]:
                sums[fields[1]] = fields[3]
        elif fields[0] == "=>" and len(fields) >= 2 and last_dep is not None:
            # The line after a dep: what the build used instead (a local folder is "(devel)" and has no sum).
            replace[last_dep] = {"path": fields[1], **({"version": fields[2]} if len(fields) >= 3 and fields[2] else {})}
            if len(fields) >= 4 and fields[3]:
                replace[last_dep]["sum"] = fields[3]
        elif fields[0] == "build" and len(fields) >= 2 and "=" in fields[1]:
            key, value = fields[1].split("=", 1)
            settings[key] = value
    return info


def _go_version_m(go: str, binary: Path) -> dict[str, object]:
    """`go version -m`: the Go version, module and dependency versions and build settings stamped in a binary."""
    result = capture([go, "version", "-m", binary], env={"GOTOOLCHAIN": "local"})
    return parse_go_version_m(result.stdout) if result.returncode == 0 else {}


def write_manifest(config: BuildConfig, settings: Settings, layout: Layout) -> None:
    toolchain = ResolvedToolchain.from_file(layout.toolchain_record)
    components = {}
    binaries = {}
    for component in config.components:
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
                entry["go_version_m"] = _go_version_m(toolchain.go, path)
            else:
                entry["cc"] = toolchain.cc_version
            binaries[binary.name] = entry
    manifest = {
        "release": config.release.version,
        "source_date_epoch": config.release.epoch,
        "target": config.target,
        "strategy": config.flavour.strategy,
        "arch": config.host_arch.names.debian,  # the binaries'; the packages' is deb_arch
        "deb_arch": config.deb_arch.names.debian,
        **config.flavour.as_record(),  # strategy again (it stays first), and go386 where it applies
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
    atomic.write_text(layout.manifest, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
