"""The other flavours' whole chain on the real release (make test-all): GO386=softfloat and multiarch64 each build,
pass lintian, install into a clean i386 Debian and pass `dock32 verify`, in the same workspace as the default."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import SETTINGS, dock32

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# (the --set that makes the target, its folder, the binaries' ELF class and machine, what `docker version` says)
FLAVOURS = [
    ("go386=softfloat", "native32-i386-softfloat", (1, 3), "linux/386"),
    ("strategy=multiarch64", "multiarch64-i386", (2, 62), "linux/amd64"),
]


@pytest.mark.parametrize(("setting", "target", "elf", "platform"), FLAVOURS, ids=[f[1] for f in FLAVOURS])
def test_flavour_builds_installs_and_verifies(setting: str, target: str, elf: tuple[int, int], platform: str) -> None:
    built = dock32("build", "--set", setting)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    binaries = sorted((SETTINGS.build_dir / target / "bin").iterdir())
    assert len(binaries) == 10
    for binary in binaries:
        header = binary.read_bytes()[:20]
        assert (header[4], int.from_bytes(header[18:20], "little")) == elf, binary.name

    manifest = json.loads((SETTINGS.build_dir / target / "manifest.json").read_text())
    for name, entry in manifest["binaries"].items():
        settings = entry.get("go_version_m", {}).get("settings")
        if settings:  # Go programs; docker-init is C
            assert settings["GOARCH"] == platform.split("/")[1], name
            if setting == "go386=softfloat":
                assert settings["GO386"] == "softfloat", name

    debs = sorted((SETTINGS.dist_dir / target).glob("*.deb"))
    assert len(debs) == 5
    suffix = "~softfloat" if setting == "go386=softfloat" else "+multiarch64"
    assert all(f"{suffix}_i386.deb" in deb.name for deb in debs), [d.name for d in debs]
    lintian = subprocess.run(["lintian", "--fail-on", "error,warning", *map(str, debs)], capture_output=True, text=True, check=False)
    assert lintian.returncode == 0, lintian.stdout + lintian.stderr

    verified = dock32("verify", "--set", setting)
    report = json.loads((SETTINGS.build_dir / target / "verify.json").read_text())
    results = {s["name"]: (s["status"], s["detail"]) for s in report["scenarios"]}
    assert verified.returncode == 0, results
    assert results[f"docker version: client and server {platform}"][0] == "pass"
    assert {status for status, _ in results.values()} <= {"pass", "skipped"}, results
    if setting == "go386=softfloat":
        assert results["softfloat: no SSE outside the runtime's CPU checks"][0] == "pass"
