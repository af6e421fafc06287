"""The multiarch64 preinst on a real 32-bit kernel: Debian 12's i386 "686" kernel, booted in qemu with an initramfs
of a static i386 busybox and the preinst, must refuse; on this machine's 64-bit kernel, also under `setarch i686`, it
must pass. Together they show that the probe asks the kernel, not uname."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..qemu_guest import Boot, Guest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREINST = ROOT / "packaging" / "scripts" / "multiarch64-preinst"
# What the preinst calls, beyond what every guest's /init has (tests/qemu_guest.py).
APPLETS = ("chmod", "mkdir", "mktemp", "printf", "rm")
PACKAGE = "docker-ce"

INIT = f"""\
if grep -qw lm /proc/cpuinfo; then echo "DOCK32-CPU-LM: yes"; else echo "DOCK32-CPU-LM: no"; fi
DPKG_MAINTSCRIPT_PACKAGE={PACKAGE} sh /preinst install 2>/preinst.err
echo "DOCK32-PREINST-EXIT: $?"
echo "DOCK32-PREINST-STDERR-BEGIN"
cat /preinst.err
echo "DOCK32-PREINST-STDERR-END"
"""


@pytest.fixture(scope="module")
def boot32(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    """The guest's /init (after the common prologue: mount /proc, uname, cpuinfo) runs the preinst. Under KVM where
    it works, with this machine's CPU: only the kernel stands in the way of x86_64 code."""
    guest = Guest.fetch()
    initrd = guest.initramfs(tmp_path_factory.mktemp("boot32") / "initrd.gz", INIT, {"preinst": PREINST.read_bytes()}, APPLETS)
    return guest.boot(initrd)


def test_the_guest_kernel_is_32_bit(boot32: Boot) -> None:
    assert boot32.value("UNAME-M") in ("i686", "i586"), boot32.console
    assert boot32.value("UNAME-R") == boot32.kernel_release, boot32.console
    assert boot32.value("KERNEL-ARCH") in (None, "i686", "i586"), boot32.console


def test_preinst_refuses_a_32_bit_kernel(boot32: Boot) -> None:
    assert boot32.value("PREINST-EXIT") == "1", boot32.console
    message = boot32.block("PREINST-STDERR")
    assert message.startswith(f"{PACKAGE}: this is a multiarch64 build of Docker"), message
    assert "native32" in message, message
    assert f"({boot32.value('UNAME-M')}, {boot32.kernel_release})" in message, message


# --- the control: this machine's 64-bit kernel runs the probe, whatever uname says -----------------------------


@pytest.mark.parametrize("personality", [[], ["setarch", "i686"]], ids=["native", "setarch-i686"])
def test_preinst_passes_on_a_64_bit_kernel(personality: list[str]) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip(f"this machine's kernel is {os.uname().machine}, not x86_64")
    if os.geteuid() != 0:
        pytest.skip("the preinst writes its probe under /usr/lib, which needs root")
    if personality and shutil.which("setarch") is None:
        pytest.skip("setarch (util-linux) is not installed")
    env = {**os.environ, "DPKG_MAINTSCRIPT_PACKAGE": PACKAGE}
    env.pop("DOCK32_SKIP_KERNEL_CHECK", None)
    uname = subprocess.run([*personality, "uname", "-m"], capture_output=True, text=True, check=True).stdout.strip()
    assert uname == ("i686" if personality else "x86_64")
    leftovers = set(Path("/usr/lib").glob("dock32-kernel-probe.*"))
    result = subprocess.run([*personality, "sh", str(PREINST), "install"], capture_output=True, text=True, env=env, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert set(Path("/usr/lib").glob("dock32-kernel-probe.*")) == leftovers, "the preinst left its probe behind"
