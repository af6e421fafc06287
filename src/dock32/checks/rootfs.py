"""Clean Debian roots for the host architecture: made once with debootstrap, cached, and used through overlayfs
so that every use starts from the same pristine tree."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dock32.core.arch import Arch
from dock32.core.errors import VerifyError
from dock32.core.run import capture, run
from dock32.model.config import Distro
from dock32.model.settings import Settings
from dock32.sources.cache import entry_lock
from dock32.sources.fetch import apt_debian_mirror

READY = ".dock32-root-ready"


def ensure_root(distro: Distro, arch: Arch, settings: Settings, log: Path) -> Path:
    """The cached root for distro/arch, made with debootstrap the first time (a few minutes)."""
    if distro.vendor != "debian":
        raise VerifyError(f"no clean root for {distro.vendor} {distro.version_id}", hint="the install test runs on Debian targets")
    root = settings.cache_dir / "roots" / f"{distro.vendor}-{distro.version_id}-{arch.names.debian}"
    if (root / READY).is_file():
        return root
    # Workspaces share the cache: one debootstraps, the others wait for its root.
    with entry_lock(settings, f"root {root.name}"):
        if (root / READY).is_file():
            return root
        return _debootstrap(root, distro, arch, settings, log)


def _debootstrap(root: Path, distro: Distro, arch: Arch, settings: Settings, log: Path) -> Path:
    if settings.offline:
        raise VerifyError(f"offline, and the cache has no {root.name} root", hint="run once online to debootstrap it")
    mirror = settings.debian_mirror or apt_debian_mirror()
    if mirror is None:
        raise VerifyError("no Debian mirror to debootstrap from", hint="set DOCK32_DEBIAN_MIRROR=http://<mirror>/debian")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=root.name + ".", suffix=".partial", dir=root.parent))
    try:
        print(f"dock32: making a clean {distro.codename}/{arch.names.debian} root with debootstrap (once; cached in {root.parent})", flush=True)
        run(
            ["debootstrap", f"--arch={arch.names.debian}", "--variant=minbase", distro.codename, staging, mirror],
            log=log,
            what=f"debootstrap {distro.codename}",
        )
        # Services never start inside it: the maintainer scripts must cope, as in any chroot.
        policy = staging / "usr" / "sbin" / "policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
        policy.chmod(0o755)
        (staging / READY).write_text("ok\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        # An interrupted debootstrap leaves /proc and /sys mounted in its target: never delete through a mount.
        unmount_below(staging)
        shutil.rmtree(staging, ignore_errors=True)
    return root


def unmount_below(folder: Path) -> None:
    """Detach every mount at or below folder, deepest first."""
    prefix = str(folder)
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
        capture(["umount", "--lazy", point], cleanup=True)


@contextlib.contextmanager
def overlay(lower: Path, scratch: Path, log: Path) -> Iterator[Path]:
    """Mount a writable overlay of lower; everything written goes to scratch and is gone afterwards."""
    upper, work, merged = scratch / "upper", scratch / "work", scratch / "merged"
    for folder in (upper, work, merged):
        folder.mkdir(parents=True, exist_ok=True)
    run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", merged],
        log=log,
        what="mount overlay",
    )
    try:
        shutil.copyfile("/etc/resolv.conf", merged / "etc" / "resolv.conf", follow_symlinks=True)
        yield merged
    finally:
        if capture(["umount", merged], cleanup=True).returncode != 0:
            capture(["umount", "--lazy", merged], cleanup=True)


@dataclass(frozen=True)
class Layers:
    """An overlay of a clean root that is never mounted where this machine sees it: each command that uses it mounts
    it in a mount namespace of its own, which the kernel tears down with the command, however it ends. So a run that
    is killed leaves no mount behind; what was written stays in upper, the next mount's upper."""

    lower: Path
    scratch: Path

    @property
    def upper(self) -> Path:
        return self.scratch / "upper"

    @property
    def merged(self) -> Path:
        """Where the overlay is mounted, in the namespace of each command that mounts it."""
        return self.scratch / "merged"

    def make(self) -> None:
        for folder in (self.upper, self.scratch / "work", self.merged):
            folder.mkdir(parents=True, exist_ok=True)

    def mounted(self, argv: list[str | Path]) -> list[str | Path]:
        """argv (which may name the overlay's mount point, self.merged), run with the overlay mounted privately."""
        options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.scratch / 'work'}"
        return [
            "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", 'mount -t overlay overlay -o "$1" "$2" && shift 2 && exec "$@"',
            "sh", options, self.merged, *argv,
        ]

    def write(self, path: str, data: bytes) -> None:
        """A new file in the root, written into upper while nothing mounts it (overlayfs allows changes to upper
        then)."""
        target = self.upper / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def chroot_run(self, argv: list[str], log: Path, what: str) -> None:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        run(self.mounted(["chroot", self.merged, *argv]), env=env, log=log, what=what)


def chroot_run(root: Path, argv: list[str], log: Path, what: str) -> None:
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    run(["chroot", root, *argv], env=env, log=log, what=what)
