"""The multiarch64 preinst on a real 32-bit kernel: Debian 12's i386 "686" kernel, booted in qemu with an initramfs
of a static i386 busybox and the preinst, must refuse; on this machine's 64-bit kernel, also under `setarch i686`, it
must pass. Together they show that the probe asks the kernel, not uname."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from dock32 import atomic
from dock32.settings import settings_from_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREINST = ROOT / "packaging" / "scripts" / "multiarch64-preinst"
KERNEL_META = "linux-image-686:i386"  # depends on the one current linux-image-6.1.0-NN-686
BUSYBOX = "busybox-static:i386"
# What /init and the preinst call; busybox runs the applet its link is named after.
APPLETS = ("sh", "cat", "chmod", "echo", "grep", "mkdir", "mktemp", "mount", "poweroff", "printf", "rm", "uname")
PACKAGE = "docker-ce"
KVM_BUDGET = 20  # seconds; with a working KVM the guest is off in about 2
TCG_TIMEOUT = 180  # seconds; emulated, the guest is off in about 6 on 2 cores

INIT = f"""\
#!/bin/sh
mount -t proc proc /proc
echo "DOCK32-UNAME-M: $(uname -m)"
echo "DOCK32-UNAME-R: $(uname -r)"
if [ -r /proc/sys/kernel/arch ]; then echo "DOCK32-KERNEL-ARCH: $(cat /proc/sys/kernel/arch)"; fi
if grep -qw lm /proc/cpuinfo; then echo "DOCK32-CPU-LM: yes"; else echo "DOCK32-CPU-LM: no"; fi
DPKG_MAINTSCRIPT_PACKAGE={PACKAGE} sh /preinst install 2>/preinst.err
echo "DOCK32-PREINST-EXIT: $?"
echo "DOCK32-PREINST-STDERR-BEGIN"
cat /preinst.err
echo "DOCK32-PREINST-STDERR-END"
poweroff -f
"""


# --- the i386 kernel and busybox, from this machine's Debian archive, cached by package version ----------


@dataclass(frozen=True)
class DebianFile:
    """One file of one version of a Debian package."""

    package: str  # name:arch
    version: str
    member: re.Pattern[str]  # its path in the package's data.tar
    name: str  # its name in the cache


def _candidates(*packages: str) -> dict[str, dict[str, str]]:
    """The fields of the versions apt would install, by package name; a package apt does not know is absent. One
    apt-cache run: without a package cache (as in many containers) each run reads every index, seconds each."""
    result = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages], capture_output=True, text=True, check=False)
    found = {}
    for stanza in result.stdout.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.MULTILINE))
        if "Package" in fields:
            found[fields["Package"]] = fields
    return found


def _no_package(package: str) -> str:
    return f"apt knows no {package} (hint: dpkg --add-architecture i386 && apt-get update)"


def boot_files() -> tuple[DebianFile, DebianFile]:
    """Debian's current i386 686 kernel (the linux-image-6.1.0-NN-686 that linux-image-686 depends on, with the
    version it asks for) and busybox-static."""
    known = _candidates(KERNEL_META, BUSYBOX)
    for package in (KERNEL_META, BUSYBOX):
        if package.split(":")[0] not in known:
            pytest.skip(_no_package(package))
    depends = known[KERNEL_META.split(":")[0]].get("Depends", "")
    kernel = re.search(r"(linux-image-\S+-686) \(= ([^)\s]+)\)", depends)
    assert kernel, f"{KERNEL_META} depends on no exact version of a linux-image-*-686: {depends!r}"
    return (
        DebianFile(f"{kernel.group(1)}:i386", kernel.group(2), re.compile(r"\./boot/vmlinuz-.*"), "vmlinuz"),
        DebianFile(BUSYBOX, known[BUSYBOX.split(":")[0]]["Version"], re.compile(r"\./bin/busybox"), "busybox"),
    )


def cached(wanted: DebianFile) -> Path:
    """The file, under dock32's cache dir keyed by package and version; the first time downloaded with `apt-get
    download` and taken from the package's data alone (the kernel's modules, 180 MB unpacked, are not needed)."""
    settings = settings_from_env(ROOT)
    folder = f"{wanted.package.replace(':', '_')}_{wanted.version.replace(':', '%3a')}"
    path = settings.cache_dir / "test-boot" / folder / wanted.name
    if path.is_file():
        return path
    if settings.offline:
        pytest.skip(f"offline, and {wanted.package} {wanted.version} is not in the cache ({path})")
    with tempfile.TemporaryDirectory() as scratch:
        spec = f"{wanted.package}={wanted.version}"
        download = subprocess.run(["apt-get", "download", "-q", spec], cwd=scratch, capture_output=True, text=True, check=False)
        assert download.returncode == 0, f"apt-get download {spec} failed:\n{download.stdout}{download.stderr}"
        (deb,) = Path(scratch).glob("*.deb")
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as unpack:
            assert unpack.stdout is not None
            with tarfile.open(fileobj=unpack.stdout, mode="r|") as data:
                found = next((entry for entry in data if entry.isfile() and wanted.member.fullmatch(entry.name)), None)
                content = data.extractfile(found).read() if found else None  # type: ignore[union-attr]
            unpack.stdout.read()  # the rest of the archive, so that dpkg-deb ends on its own, not on a broken pipe
        assert unpack.returncode == 0, f"dpkg-deb --fsys-tarfile {deb.name} failed"
    assert content is not None, f"{spec} holds no file matching {wanted.member.pattern}"
    atomic.write_bytes(path, content)
    return path


# --- the initramfs: a newc cpio, written here so that it can hold device nodes without mknod ----------------


def _cpio_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0) -> bytes:
    fields = (ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields) + name.encode() + b"\0"
    return header + b"\0" * (-len(header) % 4) + data + b"\0" * (-len(data) % 4)


def initramfs(busybox: bytes, preinst: bytes) -> bytes:
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        *((folder, stat.S_IFDIR | 0o755, b"", (0, 0)) for folder in ("bin", "dev", "proc", "usr", "usr/lib")),
        # The kernel opens /dev/console for init's output before anything could mount devtmpfs; the preinst's
        # probe sends its stderr to /dev/null.
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("dev/null", stat.S_IFCHR | 0o666, b"", (1, 3)),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox, (0, 0)),
        *((f"bin/{applet}", stat.S_IFLNK | 0o777, b"busybox", (0, 0)) for applet in APPLETS),
        ("init", stat.S_IFREG | 0o755, INIT.encode(), (0, 0)),
        ("preinst", stat.S_IFREG | 0o755, preinst, (0, 0)),
    ]
    archive = b"".join(_cpio_entry(name, mode, data, rdev, ino) for ino, (name, mode, data, rdev) in enumerate(entries, start=1))
    archive += _cpio_entry("TRAILER!!!", 0)
    return gzip.compress(archive + b"\0" * (-len(archive) % 512), mtime=0)


# --- the boot -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boot:
    kernel_release: str  # what the kernel package's name says: linux-image-<release>
    console: str

    def value(self, key: str) -> str | None:
        match = re.search(rf"^DOCK32-{key}: (.*)$", self.console, re.MULTILINE)
        return match.group(1).strip() if match else None

    @property
    def preinst_stderr(self) -> str:
        match = re.search(r"^DOCK32-PREINST-STDERR-BEGIN\n(.*?)^DOCK32-PREINST-STDERR-END$", self.console, re.MULTILINE | re.DOTALL)
        assert match, f"no preinst stderr on the console:\n{self.console}"
        return match.group(1)


def kvm_usable() -> bool:
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def boot(command: list[str], timeout: float) -> tuple[int | None, str]:
    """qemu's exit code (None when it ran out of time) and everything it printed, the guest's console first."""
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
        code, out, err = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, exc.stdout or b"", exc.stderr or b""
    return code, (out + err).decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture(scope="module")
def boot32(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    qemu = shutil.which("qemu-system-i386")
    if qemu is None:
        pytest.skip("qemu-system-i386 is not installed (hint: make test-tools, or dock32 setup --tests)")
    for tool in ("apt-cache", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the i386 kernel and busybox come from Debian's archive")
    kernel_file, busybox_file = boot_files()
    kernel = cached(kernel_file)
    initrd = tmp_path_factory.mktemp("boot32") / "initrd.gz"
    initrd.write_bytes(initramfs(cached(busybox_file).read_bytes(), PREINST.read_bytes()))
    machine = ["-m", "256", "-nographic", "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1 quiet"]
    accelerators: list[tuple[str, list[str], float]] = []
    if kvm_usable():
        # The guest gets this machine's CPU, which runs x86_64 code (/init prints whether it shows "lm"): only the
        # kernel stands in the way. A working KVM has the guest powered off in a few seconds.
        accelerators.append(("kvm", ["-enable-kvm", "-cpu", "host"], KVM_BUDGET))
    accelerators.append(("tcg", ["-accel", "tcg"], TCG_TIMEOUT))
    for accelerator, options, timeout in accelerators:
        command = [qemu, *options, *machine]
        code, console = boot(command, timeout)
        if accelerator == "kvm" and "DOCK32-UNAME-M:" not in console:
            # Some KVMs (nested ones in particular) cannot run this kernel's early boot. The guest never reached
            # /init, so nothing of the preinst was tested: boot it again, emulated, and say so.
            reason = "timed out" if code is None else f"exit code {code}"
            warnings.warn(f"KVM did not get the 32-bit kernel to /init ({reason}: {console.strip()[-300:]!r}); booted it under TCG", stacklevel=1)
            continue
        shown = f"{' '.join(command)}\n{console[-4000:]}"
        assert code is not None, f"the 32-bit guest did not power off within {timeout} s: {shown}"
        assert code == 0, f"qemu exited {code}: {shown}"
        return Boot(kernel_release=kernel_file.package.split(":")[0].removeprefix("linux-image-"), console=console)
    raise AssertionError("unreachable: TCG is always tried")


def test_the_guest_kernel_is_32_bit(boot32: Boot) -> None:
    assert boot32.value("UNAME-M") in ("i686", "i586"), boot32.console
    assert boot32.value("UNAME-R") == boot32.kernel_release, boot32.console
    assert boot32.value("KERNEL-ARCH") in (None, "i686", "i586"), boot32.console


def test_preinst_refuses_a_32_bit_kernel(boot32: Boot) -> None:
    assert boot32.value("PREINST-EXIT") == "1", boot32.console
    message = boot32.preinst_stderr
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
