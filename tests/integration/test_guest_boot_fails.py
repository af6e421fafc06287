"""A guest that cannot boot: Debian's i386 kernel in QEMU with no initramfs to find its root disk panics, and the
verify's Guest says so at once, with the console's last lines, and leaves no QEMU behind (tests/qemu_guest.py
fetches the kernel)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dock32.checks.scenarios.guest import Guest, GuestDisk
from dock32.core.errors import VerifyError

from .. import qemu_guest

pytestmark = pytest.mark.integration


def qemu_processes_of(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "qemu-system" in command and marker in command:
                found.append(f"{proc.name}: {command}")
    return found


def test_a_kernel_that_panics_fails_the_boot_with_its_console_and_leaves_no_qemu(tmp_path: Path) -> None:
    kernel = qemu_guest.Guest.fetch()
    # No initramfs worth the name: the kernel has no driver for the virtio disk built in, so it cannot mount its root.
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 512)
    image = tmp_path / "disk.ext4"
    image.write_bytes(b"\0" * (1 << 20))
    log = tmp_path / "verify.log"
    guest = Guest(kernel.qemu, GuestDisk(kernel.kernel, initrd, image), tmp_path / "guest", log)
    started = time.monotonic()
    try:
        with pytest.raises(VerifyError, match="boot stopped at 'Kernel panic - not syncing'") as error:
            guest.start()
    finally:
        guest.stop()
    assert time.monotonic() - started < 300, "a dead end is seen as it happens, not at the boot's time limit"
    assert "console| " in str(error.value), "the error shows the console's last lines"
    assert qemu_processes_of(str(tmp_path)) == []
    assert "--- the i686 guest's serial console ---" in log.read_text()
    assert not (tmp_path / "guest" / "console.log").exists()
