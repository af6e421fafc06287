"""Building on the 32-bit box itself: in a clean i386 Debian entered with `setarch i686` (so `uname -m` says i686 and
dock32 takes the machine for i386: the native gcc, the pinned Go built for linux-386), the README's `make build` gives
the very .debs, byte for byte, that the cross build on amd64 gives (the session's release build); and it does so in a
memory cgroup of 1 GiB without swap, as on a netbook or thin client, where dock32 reads the limit and fits the build to
it (the time, the peak of the anonymous memory and the OOM kills go to build/measurements/ for `make bench`).

What may differ, by design, is what records how the build was made: manifest.json (its "toolchain": Go from the
linux-amd64 module or built for linux-386, i686-linux-gnu-gcc or gcc), the SBOMs (which name those tools) and
SHA256SUMS (which lists the SBOMs). Everything else must be the same bytes: the eleven binaries, the six .debs,
Packages and Release.

The root gets this checkout's files (the working tree, as the release build used them), the machine's CA bundle
and resolv.conf. It shares two folders of the dock32 cache: the Go modules (verified content, to save the
downloads) and the Go toolchains (the linux-386 Gos of the bootstrap chain, built from source once: Debian 12's
Go 1.23 builds the bootstrap step of toolchains/go.yaml, which builds the pinned Go). Its Go build cache is its own: a
release toolchain's compile actions do not depend on the machine it runs on, so a shared cache would hand the native
build the cross build's objects and it would only link."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dock32.checks.rootfs import ensure_root, overlay
from dock32.core.arch import Arch, build_machine_arch
from dock32.core.memory import GiB, MiB
from dock32.model.config import load_toolchains
from dock32.toolchains.toolchain import LocalGo, plan_go_chain

from ..memory_cgroup import MemoryCgroup, memory_cgroup
from .conftest import BIN, CONFIG, DIST, ROOT, SETTINGS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What a minimal Debian lacks to run the README's commands (`make setup` does the rest).
FIRST_APT = ["make", "python3-venv"]
# Files that say how the build was made, not what it made: they name the toolchains.
RECORDS_THE_TOOLCHAIN = {"manifest.json", "SHA256SUMS"}
# The Go `make setup` installs in the root: Debian 12's golang-go from bookworm-backports.
BACKPORTS_GO = LocalGo(goroot="/usr/lib/go-1.23", version="go1.23.0")
PROJECT_DIR = "/src/dock32"
# The box the build must fit (issue 16): 1 GiB of memory and no swap, as a netbook or thin client has.
BOX_MEMORY = 1 * GiB
# What the 1 GiB build measured (its time, the peak of its anonymous memory, OOM kills), for `make bench` to show.
MEASUREMENTS = SETTINGS.build_dir / "measurements" / "native-i386-1gib.json"
CACHE_DIR = "/root/.cache/dock32"


def mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True)


@contextlib.contextmanager
def i386_root(scratch: Path, log: Path) -> Iterator[Path]:
    """A writable overlay of the cached clean i386 Debian, with /proc, /sys, /dev, /dev/pts, DNS and the CA bundle,
    this checkout at PROJECT_DIR and the shared cache folders; every mount below it is gone on exit, failed or not."""
    clean = ensure_root(CONFIG.packaging.distro, Arch.I386, SETTINGS, log)
    with overlay(clean, scratch / "overlay", log) as root:
        try:
            mount("-t", "proc", "proc", str(root / "proc"))
            mount("-t", "sysfs", "sysfs", str(root / "sys"))
            # The machine's cgroups, where dock32 in the root reads the memory limit of the cgroup it builds in;
            # a slave, so that unmounting them here unmounts nothing outside.
            mount("--rbind", "/sys/fs/cgroup", str(root / "sys" / "fs" / "cgroup"))
            mount("--make-rslave", str(root / "sys" / "fs" / "cgroup"))
            mount("--bind", "/dev", str(root / "dev"))
            mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts", str(root / "dev" / "pts"))
            # The machine's own certificate authorities: its bundle for now, and its local CAs, which the root's
            # ca-certificates keeps in the bundle it makes when apt installs it.
            bundle = Path("/etc/ssl/certs/ca-certificates.crt")
            if bundle.is_file():
                (root / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle, root / "etc" / "ssl" / "certs" / bundle.name)
            local = Path("/usr/local/share/ca-certificates")
            if local.is_dir():
                shutil.copytree(local, root / local.relative_to("/"), dirs_exist_ok=True)
            for shared in (SETTINGS.gomodcache, SETTINGS.cache_dir / "go" / "toolchains"):
                shared.mkdir(parents=True, exist_ok=True)
                inside = root / CACHE_DIR.lstrip("/") / shared.relative_to(SETTINGS.cache_dir)
                inside.mkdir(parents=True, exist_ok=True)
                mount("--bind", str(shared), str(inside))
            project = root / PROJECT_DIR.lstrip("/")
            listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
            for name in sorted(set(listed.stdout.decode().split("\0")) - {""}):
                source = ROOT / name
                if source.is_file() or source.is_symlink():
                    (project / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, project / name, follow_symlinks=False)
            yield root
        finally:
            # Deepest first; the overlay itself is overlay()'s to unmount.
            below = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(f"{root}/")]
            for point in sorted(below, key=len, reverse=True):
                subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def in_i386_root(root: Path, script: str, log: Path, cgroup: MemoryCgroup | None = None) -> subprocess.CompletedProcess[str]:
    """script in the root under `setarch i686`; in cgroup, if given, from its first process on."""
    # The machine's environment less what points at its own folders (the workspace, the venv).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCK32_", "VIRTUAL_ENV", "PYTHON", "PYTEST"))}
    env.update({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"})
    for kept in ("DOCK32_SET", "DOCK32_DEBIAN_MIRROR"):
        if kept in os.environ:
            env[kept] = os.environ[kept]
    with log.open("a", encoding="utf-8") as out:
        argv = ["setarch", "i686", "chroot", str(root), "sh", "-c", script]
        if cgroup is not None:
            argv = ["sh", "-c", f'echo $$ > {shlex.quote(str(cgroup.procs))} && exec "$@"', "sh", *argv]
        return subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, check=False)


def what_was_built(manifest_path: Path) -> dict[str, Any]:
    """The manifest less what names the toolchains: its "toolchain", the C compiler beside each C binary, and each
    package's SBOM hash (the SBOMs name the toolchains)."""
    manifest = json.loads(manifest_path.read_text())
    manifest.pop("toolchain")
    for binary in manifest["binaries"].values():
        binary.pop("cc", None)
    for package in manifest.get("packages", {}).values():
        package.pop("sbom_sha256", None)
    return dict(manifest)


def test_native_build_in_a_setarch_i686_root_gives_the_same_debs(release_build: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: overlay and bind mounts, chroot")
    if build_machine_arch() is not Arch.AMD64:
        pytest.skip("this build machine is i386 already: there is no cross build here to compare with")
    if shutil.which("setarch") is None:
        pytest.skip("setarch (util-linux) is not installed")
    log = tmp_path / "native-i386.log"
    try:
        with i386_root(tmp_path / "scratch", log) as root:
            machine = in_i386_root(root, "uname -m > /tmp/machine", log)
            assert machine.returncode == 0 and (root / "tmp" / "machine").read_text().strip() == "i686"
            prepared = in_i386_root(root, f"apt-get update -q && apt-get install -y -q {' '.join(FIRST_APT)}", log)
            assert prepared.returncode == 0, f"apt-get in the i386 root failed; see {log}:\n" + log.read_text(errors="replace")[-4000:]
            # The README's make build, as on a 1 GiB box with no swap: the memory cgroup holds it from make on.
            with memory_cgroup(BOX_MEMORY, swap=False) as cgroup:
                started = time.monotonic()
                built = in_i386_root(root, f"cd {PROJECT_DIR} && make build", log, cgroup)
                measured = {"seconds": round(time.monotonic() - started), "peak_anon_mib": cgroup.peak_anon // MiB, "oom_kills": cgroup.oom_kills()}
            with log.open("a", encoding="utf-8") as out:
                out.write(f"measured, make build in a {BOX_MEMORY // MiB} MiB memory cgroup without swap: {json.dumps(measured)}\n")
            MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
            MEASUREMENTS.write_text(json.dumps({"memory_limit_mib": BOX_MEMORY // MiB, **measured}, indent=2) + "\n")
            tail = log.read_text(errors="replace")[-4000:]
            assert built.returncode == 0, f"make build in the i386 root, in {BOX_MEMORY // MiB} MiB, failed; see {log}:\n{tail}"
            assert measured["oom_kills"] == 0, f"the kernel killed {measured['oom_kills']} processes for memory; see {log}"
            chosen = [line for line in log.read_text(errors="replace").splitlines() if "dock32: " in line and " available (" in line]
            assert chosen and all("1.0 GiB available (cgroup limit)" in line for line in chosen), chosen
            native_bin = root / PROJECT_DIR.lstrip("/") / "build" / CONFIG.target / "bin"
            native_dist = root / PROJECT_DIR.lstrip("/") / "dist" / CONFIG.target
            toolchain = json.loads((native_dist / "manifest.json").read_text())["toolchain"]
            assert toolchain["go"] == f"go{CONFIG.go_version}"
            assert toolchain["go_source"].startswith("source golang.org/toolchain@") and "built for linux-386" in toolchain["go_source"]
            # Built through the bootstrap chain the shipped pins give from Debian 12's Go, each step named in the record.
            chain = plan_go_chain(CONFIG.go_version, load_toolchains(ROOT / "toolchains").go, [BACKPORTS_GO], Arch.I386)
            assert [step.source.ref for step in chain.steps if step.source.ref not in toolchain["go_source"]] == []
            assert toolchain["cc"].startswith("gcc ")

            assert sorted(p.name for p in native_bin.iterdir()) == sorted(p.name for p in BIN.iterdir())
            assert [p.name for p in sorted(BIN.iterdir()) if p.read_bytes() != (native_bin / p.name).read_bytes()] == []
            assert sorted(p.name for p in native_dist.iterdir()) == sorted(p.name for p in DIST.iterdir())
            differing = {p.name for p in DIST.iterdir() if p.read_bytes() != (native_dist / p.name).read_bytes()}
            assert {name for name in differing if not name.endswith(".spdx.json")} <= RECORDS_THE_TOOLCHAIN
            assert not any(name.endswith(".deb") for name in differing)
            assert what_was_built(native_dist / "manifest.json") == what_was_built(DIST / "manifest.json")
            # Both link the same static C library (the cross compiler's glibc, which i386 installs too).
            assert toolchain["libc"] == json.loads((DIST / "manifest.json").read_text())["toolchain"]["libc"]
    finally:
        shutil.rmtree(tmp_path / "scratch", ignore_errors=True)
    leftover = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(tmp_path) in line.split()[1]]
    assert leftover == []
