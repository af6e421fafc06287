"""The other flavours' whole chain on the real release (make test-all): GO386=softfloat and multiarch64 each build,
pass lintian, install into a clean i386 Debian and pass `dock32 verify`, in the same workspace as the default; and the
softfloat programs run on an emulated CPU without SSE2, where the default build's are killed by SIGILL."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from dock32.model.config import GoBinary
from dock32.model.project import load_project

from ..qemu_guest import Boot, Guest, go_instruction_at, may_need_sse2, run_and_report
from .conftest import CONFIG, ROOT, SETTINGS, dock32

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
    # Every program the config builds (eleven: rootlesskit is the latest).
    assert [b.name for b in binaries] == sorted({b.name for c in CONFIG.components for b in c.binaries})
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
    # Every package of packaging/packages.yaml (six: docker-ce-rootless-extras is the latest).
    assert len(debs) == len(load_project(ROOT).packages) == 6
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


# --- GO386=softfloat on a Pentium III: Debian's 686 kernel in qemu -cpu pentium3 (SSE, no SSE2), emulated ---------

SOFTFLOAT = FLAVOURS[0][1]


def package_name(binary: str) -> str:
    """The -X .../version.Package= value the pinned ldflags give a program, which its version output names."""
    pinned = next(b for c in CONFIG.components for b in c.binaries if b.name == binary)
    assert isinstance(pinned, GoBinary), binary
    (package,) = [m.group(1) for flag in pinned.ldflags if (m := re.search(r"/version\.Package=(\S+)$", flag))]
    return package


# Each program's version flag, and what it prints with the version its manifest entry records.
VERSIONS = {
    "dockerd": ("--version", "Docker version {version}, build "),
    "docker": ("--version", "Docker version {version}, build "),
    "containerd": ("--version", f"containerd {package_name('containerd')} {{version}} "),
    "ctr": ("--version", f"ctr {package_name('ctr')} {{version}}\n"),
    "containerd-shim-runc-v2": ("-v", "  Version:  {version}\n"),
    "runc": ("--version", "runc version {version}\n"),
    "docker-proxy": ("-v", ") version {version}\n"),
    "docker-init": ("--version", "tini version {version}"),
    "docker-buildx": ("version", f"{package_name('docker-buildx')} {{version}} "),
    "docker-compose": ("version", "Docker Compose version {version}\n"),
}
PENTIUM3_MEMORY_MB = 1536  # the uncompressed initramfs (~330 MB) is in memory twice while the kernel unpacks it
PENTIUM3_TIMEOUT = 900  # seconds; it is off in about 40 on 2 busy cores


def boot_pentium3(softfloat_bin: Path, sse2_docker: Path, folder: Path) -> Boot:
    """One emulated Pentium III running each softfloat program with its version flag, then the sse2 docker's."""
    files: dict[str, bytes | Path] = {f"softfloat/{name}": softfloat_bin / name for name in VERSIONS}
    files["sse2/docker"] = sse2_docker
    init = "".join(run_and_report(f"SOFTFLOAT-{name.upper()}", f"/softfloat/{name} {flag}") for name, (flag, _) in VERSIONS.items())
    init += run_and_report("SSE2-DOCKER", "/sse2/docker --version")
    # Uncompressed: gzip would take longer here, and far longer to unpack in the emulated guest, than it saves.
    guest = Guest.fetch()
    initrd = guest.initramfs(folder / "initrd.cpio", init, files, compresslevel=None)
    try:
        return guest.boot(initrd, cpu="pentium3", memory_mb=PENTIUM3_MEMORY_MB, timeout=PENTIUM3_TIMEOUT)
    finally:
        initrd.unlink()


def test_softfloat_programs_run_on_a_pentium_iii(release_build: Path, tmp_path: Path) -> None:
    """Every softfloat program runs on a CPU without SSE2 and prints its version; the default (GO386=sse2) docker,
    the control, is killed by SIGILL at its runtime's first SSE2 instruction (Go's runtime does not check for SSE2).
    qemu's emulation refuses only some SSE2 instructions (MFENCE, not SSE2 arithmetic): that none is left in the
    softfloat programs is shown by disassembly (`dock32 verify`, above); this shows that they start and work on a CPU
    whose CPUID says no SSE2 (see tests/integration/test_softfloat_on_old_cpu.py)."""
    built = dock32("build", "--set", "go386=softfloat")  # built by the test above: a rerun finds it done
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    manifest = json.loads((SETTINGS.build_dir / SOFTFLOAT / "manifest.json").read_text())
    sse2_manifest = json.loads((release_build / "manifest.json").read_text())
    if sse2_manifest["go386"] != "sse2" or sse2_manifest["strategy"] != "native32":
        pytest.skip(f"the default target, {sse2_manifest['target']}, is no native32 sse2 build: no control")
    sse2_docker = release_build / "bin" / "docker"

    boot = boot_pentium3(SETTINGS.build_dir / SOFTFLOAT / "bin", sse2_docker, tmp_path)
    assert "sse2" not in boot.cpu_flags and "sse" in boot.cpu_flags, sorted(boot.cpu_flags)
    wrong = {}
    for name, (flag, expected) in VERSIONS.items():
        key = f"SOFTFLOAT-{name.upper()}"
        code, output = boot.value(f"{key}-EXIT"), boot.block(f"{key}-OUTPUT")
        if code != "0" or expected.format(version=manifest["binaries"][name]["version"]) not in output:
            wrong[f"{name} {flag}"] = (code, output)
    assert wrong == {}, f"on a Pentium III:\n{boot.block('DMESG')[-3000:]}"

    assert boot.value("SSE2-DOCKER-EXIT") == str(128 + signal.SIGILL), boot.console[-6000:]
    assert boot.block("SSE2-DOCKER-OUTPUT") == "Illegal instruction\n"
    (trap,) = boot.invalid_opcode_traps("docker")
    record = release_build / "toolchain.json"
    go = json.loads(record.read_text())["go"] if record.is_file() else "go"  # the Go that built it, where recorded
    function, instruction = go_instruction_at(sse2_docker, trap, go)
    assert function.startswith("runtime.") and may_need_sse2(instruction), (function, instruction)
