"""The plan: which tasks a config gives, with what inputs, outputs and config slices; nothing is built."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest

from dock32.core.arch import Arch
from dock32.core.errors import ConfigError, ToolchainError
from dock32.model.config import BuildConfig, load_config, load_toolchains
from dock32.model.flavour import Flavour
from dock32.model.project import Project
from dock32.model.settings import settings_from_env
from dock32.model.stages import uptodate_slice
from dock32.packaging.debs import XZ_DATA_FILTERS, deb_filename, package_version
from dock32.pipeline.plan import PlannedTask, plan_build
from dock32.pipeline.tasks import doit_tasks
from dock32.sources.patches import read_series

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def planned(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = load_config(ROOT / "buildcfg.yaml")
    settings = settings_from_env(ROOT, env={"DOCK32_CACHE_DIR": str(tmp_path / "cache"), "DOCK32_BUILD_DIR": str(tmp_path / "build")})
    return config, settings, {t.task_id: t for t in plan_build(Project.of(config, load_toolchains(ROOT / "toolchains"), settings))}


def test_every_binary_has_a_compile_task_writing_build_target_bin(planned) -> None:  # type: ignore[no-untyped-def]
    config, settings, tasks = planned
    binaries = {b.name for c in config.components for b in c.binaries}
    assert {t.split(":", 1)[1] for t in tasks if t.startswith("compile:")} == binaries
    assert tasks["compile:dockerd"].targets == (settings.build_dir / "native32-i386" / "bin" / "dockerd",)
    assert set(tasks["manifest"].file_dep) >= {settings.build_dir / "native32-i386" / "bin" / b for b in binaries}
    assert tasks["build"].task_dep[-1] == "manifest"


def test_the_manifest_follows_the_patched_trees(planned) -> None:  # type: ignore[no-untyped-def]
    """The manifest records each tree's patches: a patch that changes only comments or tests leaves every binary
    as it was, and the manifest must still be written again."""
    config, settings, tasks = planned
    stamps = {t.targets[0] for name, t in tasks.items() if name.startswith("source:")}
    assert len(stamps) == len(config.components)
    assert stamps <= set(tasks["manifest"].file_dep)


def test_compile_depends_on_its_own_component_only(planned) -> None:  # type: ignore[no-untyped-def]
    _, settings, tasks = planned
    dockerd = tasks["compile:dockerd"]
    assert settings.build_dir / "native32-i386" / "src" / "engine" / ".dock32-prepared" in dockerd.file_dep
    assert not any("runc" in str(p) for p in dockerd.file_dep)


def test_a_components_binaries_compile_one_after_another(planned) -> None:  # type: ignore[no-untyped-def]
    """They share most packages: in turn, the later ones find them in the Go build cache."""
    _, _, tasks = planned
    assert tasks["compile:containerd"].task_dep == ()
    assert tasks["compile:containerd-shim-runc-v2"].task_dep == ("compile:containerd",)
    assert tasks["compile:ctr"].task_dep == ("compile:containerd-shim-runc-v2",)
    assert tasks["compile:docker-proxy"].task_dep == ("compile:dockerd",)
    assert tasks["compile:runc"].task_dep == ()


def test_compiles_start_longest_first_by_the_guess_without_history(planned) -> None:  # type: ignore[no-untyped-def]
    """doit starts a task once what it waits for is done: the trees are prepared one after another, longest
    component first, so the compiles become ready in that order."""
    config, _, tasks = planned
    order = tasks["build"].task_dep[:-1]
    assert order == tasks["manifest"].task_dep
    assert sorted(order) == sorted(f"compile:{b.name}" for c in config.components for b in c.binaries)
    assert order[:2] == ("compile:dockerd", "compile:docker-proxy")  # the largest link first, its component after it
    assert order[2:5] == ("compile:containerd", "compile:containerd-shim-runc-v2", "compile:ctr")  # three Go builds
    assert order[-1] == "compile:docker-init"  # C, seconds
    assert tasks["source:engine"].task_dep == ()
    assert tasks["source:containerd"].task_dep == ("source:engine",)
    assert tasks["source:cli"].task_dep == ("source:containerd",)
    assert tasks["source:tini"].task_dep == ("source:compose",)


def test_compiles_start_in_the_order_the_last_run_timed(tmp_path: Path) -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    settings = settings_from_env(ROOT, env={"DOCK32_CACHE_DIR": str(tmp_path / "cache"), "DOCK32_BUILD_DIR": str(tmp_path / "build")})
    earlier = {"compile:docker-buildx": 122.0, "compile:dockerd": 100.0, "compile:docker-proxy": 1.0, "compile:docker-compose": 70.0}
    tasks = {t.task_id: t for t in plan_build(Project.of(config, load_toolchains(ROOT / "toolchains"), settings), earlier=earlier)}
    order = tasks["build"].task_dep
    # containerd's three untimed Go builds are guessed at 150 s in all; buildx's 122 s beats engine's 101 s.
    assert order[:4] == ("compile:containerd", "compile:containerd-shim-runc-v2", "compile:ctr", "compile:docker-buildx")
    assert order[4:6] == ("compile:dockerd", "compile:docker-proxy")
    assert order.index("compile:docker-compose") == 6
    assert tasks["source:containerd"].task_dep == () and tasks["source:buildx"].task_dep == ("source:containerd",)
    assert tasks["source:engine"].task_dep == ("source:buildx",)


def test_source_task_depends_on_every_patch_file(planned) -> None:  # type: ignore[no-untyped-def]
    _, settings, tasks = planned
    deps = tasks["source:runc"].file_dep
    assert ROOT / "patches" / "runc" / "series" in deps
    series = read_series(ROOT / "patches" / "runc")
    assert series and {p.path for p in series} <= set(deps)
    assert settings.build_dir / "sources" / "runc.json" in deps


def test_config_slices_are_narrow(planned) -> None:  # type: ignore[no-untyped-def]
    """A compile task's slice holds its binary and component data, not another component's."""
    config, _, tasks = planned
    dockerd = tasks["compile:dockerd"].config
    assert dockerd["binary"]["package"] == "./cmd/dockerd"
    assert dockerd["component"]["commit"] == config.component("engine").commit
    assert "runc" not in repr(dockerd)
    assert tasks["fetch:tini"].config["source"]["tree"].startswith("sha256:")


def test_go386_change_touches_compile_slices_only(tmp_path: Path, planned) -> None:  # type: ignore[no-untyped-def]
    config, settings, tasks = planned
    softfloat = dataclasses.replace(config, flavour=Flavour(go386="softfloat"))
    other = {t.task_id: t for t in plan_build(Project.of(softfloat, load_toolchains(ROOT / "toolchains"), settings))}
    assert other["fetch:engine"].config == tasks["fetch:engine"].config
    assert other["compile:dockerd"].config != tasks["compile:dockerd"].config
    assert other["compile:dockerd"].targets[0].parts[-3] == "native32-i386-softfloat"


def test_doit_dicts_have_docs_and_uptodate(planned) -> None:  # type: ignore[no-untyped-def]
    config, settings, _ = planned
    dicts = list(doit_tasks(Project.of(config, load_toolchains(ROOT / "toolchains"), settings)))
    assert all(d["doc"] for d in dicts)
    compile_dockerd = next(d for d in dicts if d["basename"] == "compile" and d.get("name") == "dockerd")
    assert compile_dockerd["targets"] == [str(settings.build_dir / "native32-i386" / "bin" / "dockerd")]
    assert len(compile_dockerd["uptodate"]) == 1
    assert {d["basename"] for d in dicts} >= {"toolchain", "fetch", "source", "compile", "manifest", "build", "doctor"}


def test_arch_table() -> None:
    assert Arch.from_kernel("i686") is Arch.I386 and Arch.from_kernel("x86_64") is Arch.AMD64
    assert Arch.I386.names.gnu == "i686-linux-gnu" and Arch.I386.names.go == "386"
    assert Arch.AMD64.can_run(Arch.I386) and not Arch.I386.can_run(Arch.AMD64)
    with pytest.raises(ToolchainError, match="unsupported build machine architecture 'aarch64'"):
        Arch.from_kernel("aarch64")


def test_settings_from_env(tmp_path: Path) -> None:
    settings = settings_from_env(tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "xdg"), "DOCK32_OFFLINE": "1"})
    assert settings.cache_dir == tmp_path / "xdg" / "dock32"
    assert settings.build_dir == tmp_path / "build"
    assert settings.offline
    with pytest.raises(ConfigError, match="DOCK32_OFFLINE='maybe'"):
        settings_from_env(tmp_path, env={"DOCK32_OFFLINE": "maybe"})
    with pytest.raises(ConfigError, match="DOCK32_DEBIAN_MIRROR"):
        settings_from_env(tmp_path, env={"DOCK32_DEBIAN_MIRROR": "ftp.example"})


def test_package_tasks_depend_on_their_binaries_and_trees(tmp_path: Path) -> None:
    from dock32.model.config import load_packages

    config = load_config(ROOT / "buildcfg.yaml")
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "c"), "DOCK32_BUILD_DIR": str(tmp_path / "b"), "DOCK32_DIST_DIR": str(tmp_path / "d")}
    settings = settings_from_env(ROOT, env=env)
    packages = load_packages(ROOT / "packaging" / "packages.yaml", config)
    tasks = {t.task_id: t for t in plan_build(Project.of(config, load_toolchains(ROOT / "toolchains"), settings, packages))}
    ce = tasks["package:docker-ce"]
    bin_dir = tmp_path / "b" / "native32-i386" / "bin"
    assert {bin_dir / "dockerd", bin_dir / "docker-proxy", bin_dir / "docker-init"} <= set(ce.file_dep)
    assert bin_dir / "docker" not in ce.file_dep
    assert tmp_path / "b" / "native32-i386" / "src" / "engine" / ".dock32-prepared" in ce.file_dep  # units, init script
    assert tmp_path / "b" / "native32-i386" / "src" / "tini" / ".dock32-prepared" in ce.file_dep  # tini's licence
    assert ROOT / "packaging" / "scripts" / "docker-ce" / "postinst" in ce.file_dep
    docker_ce = next(p for p in packages if p.name == "docker-ce")
    version = package_version(docker_ce, config, config.packaging)
    assert ce.targets == (tmp_path / "d" / "native32-i386" / deb_filename(docker_ce, version, "i386"),)
    cli = tasks["package:docker-ce-cli"]
    assert bin_dir / "docker" in cli.file_dep  # the completions are made by running it
    repository = tasks["repository"]
    assert set(repository.file_dep) >= {t.targets[0] for i, t in tasks.items() if i.startswith("package:")}
    assert tasks["build"].task_dep[-1] == "repository"


@pytest.fixture
def planned_with_packages(tmp_path: Path):  # type: ignore[no-untyped-def]
    from dock32.model.config import load_packages

    config = load_config(ROOT / "buildcfg.yaml")
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "c"), "DOCK32_BUILD_DIR": str(tmp_path / "b"), "DOCK32_DIST_DIR": str(tmp_path / "d")}
    settings = settings_from_env(ROOT, env=env)
    packages = load_packages(ROOT / "packaging" / "packages.yaml", config)
    toolchains = load_toolchains(ROOT / "toolchains")

    def plan(config: BuildConfig) -> dict[str, PlannedTask]:
        return {t.task_id: t for t in plan_build(Project.of(config, toolchains, settings, packages))}

    return config, settings, plan


def test_every_product_task_is_given_its_stage_input_and_its_check_sees_exactly_that(planned_with_packages) -> None:  # type: ignore[no-untyped-def]
    """An action can read what it is given and nothing else: its stage input and the machine's settings. Its
    up-to-date check is that same input without the locations, so it cannot miss what the action reads."""
    config, settings, plan = planned_with_packages
    products = [t for t in plan(config).values() if t.action is not None and not t.always_run]
    assert {t.basename for t in products} == {"toolchain", "fetch", "source", "compile", "manifest", "package", "sbom", "repository"}
    for task in products:
        # The one exception: a compile is also given the run's go -p, GOGC and GOMEMLIMIT (core.memory), which change
        # no byte of its output, so they stay out of its check and must not make a rebuild (test_memory.py).
        allowed = {"memory"} if task.basename == "compile" else set()
        assert isinstance(task.action, functools.partial) and set(task.action.keywords) <= allowed, task.task_id
        inputs, given_settings = task.action.args
        assert given_settings is settings, task.task_id
        assert dataclasses.is_dataclass(inputs) and type(inputs).__module__ == "dock32.model.stages", task.task_id
        assert task.config == uptodate_slice(inputs), task.task_id
        # Narrow: no stage is handed the whole config.
        assert not any(isinstance(getattr(inputs, f.name), BuildConfig) for f in dataclasses.fields(inputs)), task.task_id


def test_a_release_version_change_repacks_and_relinks_nothing(planned_with_packages) -> None:  # type: ignore[no-untyped-def]
    config, _, plan = planned_with_packages
    before = plan(config)
    after = plan(dataclasses.replace(config, release=dataclasses.replace(config.release, version=config.release.version + ".1")))
    changed = {task_id for task_id, task in before.items() if after[task_id].config != task.config}
    assert {t for t in before if t.startswith(("package:", "sbom:"))} | {"manifest", "repository"} <= changed
    assert not {t for t in changed if t.startswith(("toolchain", "fetch:", "source:", "compile:"))}


def test_the_packages_check_sees_how_their_data_is_compressed(planned_with_packages) -> None:  # type: ignore[no-untyped-def]
    """A dock32 that compresses differently packs again: the filters are part of what the check hashes."""
    config, _, plan = planned_with_packages
    packages = {task_id: task for task_id, task in plan(config).items() if task_id.startswith("package:")}
    assert packages and all(task.config["xz_filters"] == list(XZ_DATA_FILTERS) for task in packages.values())


def test_locations_stay_out_of_the_check(tmp_path: Path, planned_with_packages) -> None:  # type: ignore[no-untyped-def]
    """The same config built in another folder is not a changed config."""
    config, _, plan = planned_with_packages
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "c2"), "DOCK32_BUILD_DIR": str(tmp_path / "b2"), "DOCK32_DIST_DIR": str(tmp_path / "d2")}
    elsewhere = settings_from_env(ROOT, env=env)
    here = plan(config)
    there = {t.task_id: t for t in plan_build(Project.of(config, load_toolchains(ROOT / "toolchains"), elsewhere))}
    for task_id, task in there.items():
        assert task.config == here[task_id].config, task_id
