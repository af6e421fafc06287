"""`doit verify-i386-kernel`: the verify on the machine this project is for, a real 32-bit kernel. The prepared root
(verify.prepared_layers) gets the packages, Debian's linux-image-686-pae and the command agent, becomes an ext4 disk
image, and QEMU boots it with systemd as PID 1 (scenarios/guest.py), which starts the installed packages' services, and the
scenarios that make sense without x86_64 run there."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from dock32.checks.rootfs import Layers
from dock32.checks.scenarios import agent
from dock32.checks.scenarios.booted import SYSTEMD
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.guest import AGENT_PORT, GUEST_ADDRESS, Guest, GuestDisk
from dock32.checks.scenarios.scenario import Scenario
from dock32.checks.verify import prepared_layers, run_folder, run_scenarios
from dock32.core.errors import VerifyError
from dock32.core.run import run
from dock32.model.config import BuildConfig, DebPackage
from dock32.model.layout import Layout
from dock32.model.settings import Settings

NAME = "verify-i386-kernel"
# The kernel (and, by its dependencies, initramfs-tools and kmod, whose modprobe loads sctp and what dockerd asks
# for) and the Python the agent runs on.
GUEST_PACKAGES = ("linux-image-686-pae", "python3-minimal")
# In the initramfs, and loaded there, whatever initramfs-tools' MODULES says: the guest's disk and its file system.
INITRAMFS_HOOK_PATH = "/etc/initramfs-tools/hooks/dock32-guest"
INITRAMFS_HOOK = """\
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for module in virtio_pci virtio_blk ext4; do force_load "$module"; done
"""
# Room for the images, containers and the upgrade's packages beside the root; the file is sparse.
FREE_BYTES = 3 << 30
AGENT_PATH = "/usr/local/lib/dock32/agent.py"
AGENT_UNIT = f"""\
[Unit]
Description=dock32 verify's command agent
After=network.target

[Service]
ExecStart=/usr/bin/python3 {AGENT_PATH} {AGENT_PORT}
Restart=always

[Install]
WantedBy=multi-user.target
"""
# The address QEMU's user network expects the guest at; eth0: the kernel is told net.ifnames=0.
NETWORK = f"""\
[Match]
Name=eth0

[Network]
Address={GUEST_ADDRESS}/24
Gateway=10.0.2.2
"""


def verify_i386_kernel(
    config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, scenarios: Sequence[Scenario] = SCENARIOS
) -> None:
    """scenarios: the catalogue's (which has the real kernel's own, scenarios/kernel.py), unless a test brings its own."""
    if config.flavour.is_multiarch64:
        raise VerifyError(
            f"{config.target} holds amd64 programs, which a 32-bit kernel cannot run (their preinst refuses it)",
            hint="verify-i386-kernel is for the native32 targets; verify multiarch64 with `doit verify`",
        )
    qemu = shutil.which("qemu-system-i386")
    if qemu is None:
        raise VerifyError("qemu-system-i386 is not installed: it boots the i686 kernel", hint="apt-get install qemu-system-x86 (or `make setup`)")
    if shutil.which("mkfs.ext4") is None:
        raise VerifyError("mkfs.ext4 is not installed: it makes the guest's disk", hint="apt-get install e2fsprogs")
    # A killed run's folder (its disk image is gigabytes) goes at the next run's start.
    with run_folder(layout, NAME) as (scratch, log):
        print("dock32: making the i686 guest's disk from the clean root", flush=True)
        layers = prepared_layers(config, packages, SYSTEMD, settings, layout, scratch, log)
        disk = make_disk(layers, packages, scratch / "guest", log)
        # The disk holds the root now: the overlay's layer goes, so that the run keeps one copy of it.
        shutil.rmtree(layers.scratch)
        machine = Guest(qemu, disk, scratch / "guest", log)
        try:
            machine.start()
            run_scenarios(config, packages, layout, machine, scratch, log, NAME, scenarios)
        finally:
            machine.stop()


def make_disk(layers: Layers, packages: tuple[DebPackage, ...], folder: Path, log: Path) -> GuestDisk:
    """The prepared root with the packages, the kernel, its initramfs and the agent, as an ext4 image; the kernel and
    initramfs are copied out for QEMU to boot."""
    # A hook of our own rather than initramfs-tools' modules file, which is the package's conffile.
    layers.write(INITRAMFS_HOOK_PATH, INITRAMFS_HOOK.encode())
    (layers.upper / INITRAMFS_HOOK_PATH.lstrip("/")).chmod(0o755)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
    layers.chroot_run([*install, *GUEST_PACKAGES], log, "apt-get install the i686 kernel")
    # Installed here, not in the guest: under TCG dpkg takes a quarter of an hour to unpack them. systemd starts the
    # services the postinst enabled when the guest boots, as after a user's first reboot; `doit verify` checks that
    # the postinst starts them through a running systemd.
    layers.chroot_run([*install, *(p.name for p in packages)], log, "apt-get install the packages")
    layers.write(AGENT_PATH, Path(agent.__file__).read_bytes())
    layers.write("/etc/systemd/system/dock32-agent.service", AGENT_UNIT.encode())
    layers.write("/etc/systemd/network/10-dock32.network", NETWORK.encode())
    layers.chroot_run(["systemctl", "enable", "dock32-agent.service", "systemd-networkd.service"], log, "enable the agent and the network")
    folder.mkdir(parents=True, exist_ok=True)
    # The kernel and its initramfs, new files of the root: in the overlay's upper layer whole.
    kernels = sorted((layers.upper / "boot").glob("vmlinuz-*-686-pae"))
    if len(kernels) != 1:
        raise VerifyError(f"the guest's /boot has {len(kernels)} 686-pae kernels ({', '.join(k.name for k in kernels) or 'none'}), expected one")
    release = kernels[0].name.removeprefix("vmlinuz-")
    initrd = layers.upper / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise VerifyError(f"the guest's /boot has no initrd.img-{release}: initramfs-tools made none", hint=f"see {log}")
    disk = GuestDisk(folder / f"vmlinuz-{release}", folder / f"initrd.img-{release}", folder / "disk.ext4")
    shutil.copyfile(kernels[0], disk.kernel)
    shutil.copyfile(initrd, disk.initrd)
    size = tree_bytes(layers.lower) + tree_bytes(layers.upper) + FREE_BYTES
    mkfs: list[str | Path] = ["mkfs.ext4", "-q", "-F", "-L", "dock32-guest", "-d", layers.merged, disk.image, f"{size // 1024}k"]
    run(layers.mounted(mkfs), log=log, what="mkfs.ext4 the guest's disk")
    return disk


def tree_bytes(root: Path) -> int:
    """What the files under root take, folders and links counted as a block each."""
    total = 0
    for folder, folders, files in os.walk(root):
        for name in (*folders, *files):
            try:
                total += max(os.lstat(os.path.join(folder, name)).st_size, 4096)
            except OSError:
                continue
    return total
