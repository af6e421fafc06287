"""The real thing: the shipped buildcfg.yaml builds every Docker binary for i386, and they run here."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from dock32.sources.patches import read_series

from .conftest import CONFIG, DIST, ROOT, dock32

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def built(release_build: Path) -> Path:
    return release_build / "bin"


def version_of(binary: Path, *args: str) -> str:
    return subprocess.run([binary, *args], capture_output=True, text=True, check=True, timeout=60).stdout


def test_every_binary_is_a_32_bit_intel_executable(built: Path) -> None:
    for component in CONFIG.components:
        for binary in component.binaries:
            header = (built / binary.name).read_bytes()[:20]
            assert header[:4] == b"\x7fELF" and header[4] == 1, f"{binary.name} is not ELF32"
            assert int.from_bytes(header[18:20], "little") == 3, f"{binary.name} is not EM_386"


def test_versions_match_the_pins(built: Path) -> None:
    engine, cli = CONFIG.component("engine"), CONFIG.component("cli")
    containerd, runc, tini = CONFIG.component("containerd"), CONFIG.component("runc"), CONFIG.component("tini")
    assert version_of(built / "docker", "--version").strip() == f"Docker version {cli.version}, build {cli.commit}"
    assert version_of(built / "dockerd", "--version").strip() == f"Docker version {engine.version}, build {engine.commit}"
    assert version_of(built / "containerd", "--version").split()[2:4] == [containerd.version, containerd.commit]
    runc_out = version_of(built / "runc", "--version")
    assert f"runc version {runc.version}" in runc_out and f"commit: {runc.commit}" in runc_out
    assert f"go: go{CONFIG.go_version}" in runc_out
    assert "libseccomp: 2." in runc_out  # seccomp compiled in
    assert version_of(built / "docker-init", "--version").startswith(f"tini version {tini.version}")
    assert CONFIG.component("buildx").version in version_of(built / "docker-buildx", "version")
    assert CONFIG.component("compose").version in version_of(built / "docker-compose", "version")
    rootlesskit = CONFIG.component("rootlesskit")
    assert version_of(built / "rootlesskit", "--version").strip() == f"rootlesskit version {rootlesskit.version.removeprefix('v')}"


def test_manifest_records_hashes_go386_and_toolchain(built: Path) -> None:
    manifest = json.loads((built.parent / "manifest.json").read_text())
    assert manifest["toolchain"]["go"] == manifest["toolchain"]["go_pinned"] == f"go{CONFIG.go_version}"
    dockerd = manifest["binaries"]["dockerd"]
    assert dockerd["go_version_m"]["settings"]["GO386"] == "sse2"
    assert dockerd["go_version_m"]["settings"]["-trimpath"] == "true"
    # The patches of runc's series that are for the pinned runc (versions=) and the target's GOARCH, in order.
    runc = CONFIG.component("runc")
    applied = [p.path.name for p in read_series(ROOT / "patches" / "runc") if p.applies_to(runc.version, CONFIG.host_arch.names.go)]
    assert [p["name"] for p in manifest["components"]["runc"]["patches"]] == applied
    assert set(manifest["binaries"]) == {b.name for c in CONFIG.components for b in c.binaries}


def test_a_second_build_runs_no_task(built: Path) -> None:
    again = dock32("build")
    assert again.returncode == 0
    assert re.findall(r"^\d\d:\d\d:\d\d start (\S+)$", again.stdout, re.MULTILINE) == []
    assert "nothing to do: everything is up to date" in again.stdout


@pytest.mark.slow
def test_a_cold_rebuild_elsewhere_is_byte_identical(built: Path, tmp_path: Path) -> None:
    """Same inputs, another build folder and an empty cache: the same bytes."""
    env = {"DOCK32_BUILD_DIR": str(tmp_path / "build"), "DOCK32_CACHE_DIR": str(tmp_path / "cache"), "DOCK32_DIST_DIR": str(tmp_path / "dist")}
    result = dock32("build", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    other = tmp_path / "build" / CONFIG.target / "bin"
    different = [p.name for p in sorted(built.iterdir()) if p.read_bytes() != (other / p.name).read_bytes()]
    assert different == []
    ours, theirs = DIST, tmp_path / "dist" / CONFIG.target
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
    assert [p.name for p in sorted(ours.iterdir()) if p.read_bytes() != (theirs / p.name).read_bytes()] == []
