"""Every target the project can build, planned side by side in one workspace, and what multiarch64 changes: the
binaries' architecture, not the packages'; versions that say which flavour is installed; a preinst for the kernel."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from dock32.build.steps import go_build_env
from dock32.core.arch import Arch
from dock32.core.errors import ConfigError, PatchError
from dock32.model.config import load_config, load_packages, load_toolchains
from dock32.model.flavour import MULTIARCH64_PREINST
from dock32.model.layout import Layout
from dock32.model.project import Project
from dock32.model.settings import settings_from_env
from dock32.packaging.debs import package_version, stage_package
from dock32.pipeline.plan import plan_build
from dock32.sources.patches import read_series
from dock32.toolchains.toolchain import ResolvedToolchain

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_config(ROOT / "buildcfg.yaml")
# docker-ce's epoch, upstream version and Debian revision, from whatever buildcfg.yaml pins; what the distribution
# and the flavour add is spelled out below.
DOCKER_CE = f"5:{SHIPPED.component('engine').version.removeprefix('v')}-{SHIPPED.packaging.revision}"

# (overrides, target folder, docker-ce's version, GOARCH)
TARGETS = [
    ((), "native32-i386", f"{DOCKER_CE}~debian.12~bookworm", "386"),
    (("go386=softfloat",), "native32-i386-softfloat", f"{DOCKER_CE}~debian.12~bookworm~softfloat", "386"),
    (("packaging.distro=debian-13",), "native32-i386-debian-13", f"{DOCKER_CE}~debian.13~trixie", "386"),
    (("strategy=multiarch64",), "multiarch64-i386", f"{DOCKER_CE}~debian.12~bookworm+multiarch64", "amd64"),
    (("strategy=multiarch64", "packaging.distro=debian-13"), "multiarch64-i386-debian-13", f"{DOCKER_CE}~debian.13~trixie+multiarch64", "amd64"),
]


def plan_target(overrides: tuple[str, ...], tmp_path: Path):  # type: ignore[no-untyped-def]
    config = load_config(ROOT / "buildcfg.yaml", overrides)
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "cache"), "DOCK32_BUILD_DIR": str(tmp_path / "build"), "DOCK32_DIST_DIR": str(tmp_path / "dist")}
    settings = settings_from_env(ROOT, env=env)
    packages = load_packages(ROOT / "packaging" / "packages.yaml", config)
    return config, settings, packages, plan_build(Project.of(config, load_toolchains(ROOT / "toolchains"), settings, packages))


@pytest.mark.parametrize(("overrides", "target", "version", "goarch"), TARGETS, ids=[t[1] for t in TARGETS])
def test_every_target_plans_into_its_own_folders(tmp_path: Path, overrides: tuple[str, ...], target: str, version: str, goarch: str) -> None:
    config, _, packages, tasks = plan_target(overrides, tmp_path)
    assert config.target == target
    assert config.host_arch.names.go == goarch
    assert config.deb_arch is Arch.I386  # every flavour is installed by a 32-bit dpkg
    by_id = {t.task_id: t for t in tasks}
    assert by_id["package:docker-ce"].targets == (tmp_path / "dist" / target / f"docker-ce_{version.split(':')[1]}_i386.deb",)
    assert by_id["toolchain"].targets == (tmp_path / "build" / target / "toolchain.json",)
    assert package_version(next(p for p in packages if p.name == "docker-ce"), config, config.packaging) == version
    outputs = [path for t in tasks for path in t.targets]
    # Only the fetch records (the pristine sources, the same for every target) live outside the target's folders.
    shared = {p for p in outputs if not (p.is_relative_to(tmp_path / "build" / target) or p.is_relative_to(tmp_path / "dist" / target))}
    assert shared == {tmp_path / "build" / "sources" / f"{c.name}.json" for c in config.components}


def test_a_matrix_of_targets_shares_only_the_fetch_records(tmp_path: Path) -> None:
    """What one target writes, no other does; each target keeps its own doit state (tasks.doit_config)."""
    owners: dict[Path, str] = {}
    for overrides, target, _, _ in TARGETS:
        for task in plan_target(overrides, tmp_path)[3]:
            for path in task.targets:
                if path.parent.name != "sources":
                    assert path not in owners, f"{path} is written by {owners.get(path)} and {target}"
                    owners[path] = target
    assert len(set(owners.values())) == len(TARGETS)


def test_multiarch64_compiles_amd64_without_go386_and_keeps_i386_packages(tmp_path: Path) -> None:
    config, settings, _, tasks = plan_target(("strategy=multiarch64",), tmp_path)
    go = f"go{config.go_version}"
    toolchain = ResolvedToolchain(go="go", go_version=go, go_pinned=go, go_source="system", cc="gcc", cc_version="gcc", c_env={"CC": "gcc"})
    runc = config.component("runc")
    env = go_build_env(runc, config.flavour, config.release.date, toolchain, settings)
    assert (env["GOARCH"], env["CGO_ENABLED"], env["CC"]) == ("amd64", "1", "gcc")
    assert "GO386" not in env
    by_id = {t.task_id: t for t in tasks}
    assert by_id["source:engine"].config["goarch"] == "amd64"  # the series applies by GOARCH: another tree
    assert "(amd64 binaries)" in by_id["package:docker-ce"].doc
    assert ROOT / "packaging" / MULTIARCH64_PREINST in by_id["package:docker-ce"].file_dep


def test_multiarch64_has_no_softfloat(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^DOCK32_SET:2: go386: softfloat is for 386 binaries; strategy multiarch64 builds amd64 ones"):
        load_config(ROOT / "buildcfg.yaml", ("strategy=multiarch64", "go386=softfloat"))
    with pytest.raises(ConfigError, match=r"strategy: 'native64' is not one of native32, multiarch64"):
        load_config(ROOT / "buildcfg.yaml", ("strategy=native64",))


def test_the_386_fixes_stay_out_of_amd64_trees() -> None:
    # goarch= is checked here, versions= set aside: which patches the pinned versions take changes with a bump.
    engine, runc = SHIPPED.component("engine").version, SHIPPED.component("runc").version
    series = [dataclasses.replace(p, versions=()) for p in read_series(ROOT / "patches" / "engine")]
    assert series and all(p.applies_to(engine, "386") for p in series)
    # Every engine patch fixes 386 programs, but the personality one: it is for 386 containers, which an amd64
    # (multiarch64) dockerd runs on the same x86_64 kernel.
    assert [p.path.name for p in series if p.applies_to(engine, "amd64")] == ["0007-linux32-personality-29.patch"]
    # A patch without goarch= is for every architecture.
    assert all(dataclasses.replace(p, versions=()).applies_to(runc, "amd64") for p in read_series(ROOT / "patches" / "runc"))


def test_goarch_option_is_checked(tmp_path: Path) -> None:
    (tmp_path / "a.patch").write_text("")
    (tmp_path / "series").write_text("a.patch goarch=386,amd64\n")
    assert read_series(tmp_path)[0].goarches == ("386", "amd64")
    (tmp_path / "series").write_text("a.patch goarch=arm64\n")
    with pytest.raises(PatchError, match=r"series:1: unknown goarch 'arm64'"):
        read_series(tmp_path)


def staged_plugin(overrides: tuple[str, ...], tmp_path: Path) -> tuple[Path, str]:
    """docker-buildx-plugin of the target, staged (a stand-in file for the program): its root and version."""
    config, settings, packages, _ = plan_target(overrides, tmp_path)
    layout = Layout.of(settings.build_dir, settings.dist_dir, config.target, ROOT)
    plugin = next(p for p in packages if p.name == "docker-buildx-plugin")
    layout.binary("docker-buildx").parent.mkdir(parents=True)
    layout.binary("docker-buildx").write_bytes(b"\x7fELF stands in for the program")
    root = tmp_path / "root"
    root.mkdir()
    return root, stage_package(plugin, config, config.packaging, layout, root)


def test_a_multiarch64_package_is_i386_with_the_kernel_check(tmp_path: Path) -> None:
    root, version = staged_plugin(("strategy=multiarch64",), tmp_path)
    control = Deb822((root / "DEBIAN" / "control").read_text())
    assert (control["Architecture"], control["Version"]) == ("i386", version)
    assert version.endswith("+multiarch64")
    preinst = root / "DEBIAN" / "preinst"
    assert preinst.read_bytes() == (ROOT / "packaging" / MULTIARCH64_PREINST).read_bytes()
    assert preinst.stat().st_mode & 0o777 == 0o755
    overrides = (root / "usr/share/lintian/overrides/docker-buildx-plugin").read_text()
    assert "binary-from-other-architecture" in overrides.splitlines()


def test_native32_packages_have_no_preinst(tmp_path: Path) -> None:
    root, _ = staged_plugin((), tmp_path)
    assert not (root / "DEBIAN" / "preinst").exists()


def test_the_ci_matrix_names_each_target_as_its_settings_make_it() -> None:
    """.github/workflows/build.yml: each entry's target is the folder its `set` gives (artifacts are found by it)."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "build.yml").read_text())
    entries = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    assert {load_config(ROOT / "buildcfg.yaml", tuple(e["set"].split())).target: e["target"] for e in entries} == {e["target"]: e["target"] for e in entries}
    assert {"native32-i386", "native32-i386-softfloat", "multiarch64-i386"} <= {e["target"] for e in entries}
