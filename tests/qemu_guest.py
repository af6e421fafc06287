"""A real 32-bit x86 machine for the tests: Debian 12's i386 "686" kernel booted in qemu-system-i386, with an
initramfs written here (a static i386 busybox, the test's /init and its files). The guest's /init prints marked lines
on the serial console (`DOCK32-KEY: value`, or a block between `DOCK32-KEY-BEGIN` and `DOCK32-KEY-END`) and powers
off; the test reads them from qemu's output.

The kernel and busybox come from this machine's Debian archive (`apt-get download`), cached by package version under
dock32's cache dir. The CPU is this machine's own under KVM where KVM works (the kernel boots in about 2 s), else
qemu's emulation (TCG); a named CPU model (`cpu="pentium3"`) is always emulated, since under KVM the guest executes
the host's instructions whatever CPUID tells it."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from dock32.checks.scenarios.guest import kvm_usable
from dock32.core import atomic
from dock32.model.settings import settings_from_env

ROOT = Path(__file__).resolve().parents[1]
KERNEL_META = "linux-image-686:i386"  # depends on the one current linux-image-6.1.0-NN-686
BUSYBOX = "busybox-static:i386"
# What the prologue and epilogue below call; busybox runs the applet its link is named after.
BASE_APPLETS = ("sh", "cat", "dmesg", "echo", "grep", "mount", "poweroff", "uname")
KVM_BUDGET = 20  # seconds; with a working KVM the guest is off in about 2
TCG_TIMEOUT = 180  # seconds; emulated, a small initramfs's guest is off in about 6 on 2 cores

# Every /init starts with these lines: the first marked one tells that the kernel got as far as /init. The empty
# line before it ends whatever is on the console's last line: SeaBIOS's "Booting from ROM..." does not always get its
# line end through while the kernel takes the serial port over.
PROLOGUE = """\
#!/bin/sh
mount -t proc proc /proc
echo
echo "DOCK32-UNAME-M: $(uname -m)"
echo "DOCK32-UNAME-R: $(uname -r)"
if [ -r /proc/sys/kernel/arch ]; then echo "DOCK32-KERNEL-ARCH: $(cat /proc/sys/kernel/arch)"; fi
echo "DOCK32-CPUINFO-BEGIN"
cat /proc/cpuinfo
echo "DOCK32-CPUINFO-END"
"""
# ... and ends with these: the kernel's log holds what it says of a program it killed ("trap invalid opcode").
EPILOGUE = """\
echo "DOCK32-DMESG-BEGIN"
dmesg
echo "DOCK32-DMESG-END"
poweroff -f
"""
REACHED_INIT = "DOCK32-UNAME-M:"
TERMINAL_CONTROL = re.compile(r"\x1b(?:c|\[[0-9;?]*[A-Za-z])")


def run_and_report(key: str, command: str) -> str:
    """/init lines that run `command` with its output in a file and print its exit code (`DOCK32-<key>-EXIT`) and
    then its output (stdout and stderr, block `<key>-OUTPUT`). A message of the shell itself (`Illegal instruction`
    when the program is killed by SIGILL) goes to the console outside the block."""
    return (
        f"{command} >/tmp/out 2>&1\n"
        f'echo "DOCK32-{key}-EXIT: $?"\n'
        f'echo "DOCK32-{key}-OUTPUT-BEGIN"\n'
        "cat /tmp/out\n"
        f'echo "DOCK32-{key}-OUTPUT-END"\n'
    )


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


def _cpio_header(name: str, mode: int, size: int, rdev: tuple[int, int], ino: int) -> bytes:
    fields = (ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields) + name.encode() + b"\0"
    return header + b"\0" * (-len(header) % 4)


def write_initramfs(
    path: Path,
    busybox: Path,
    init: str,
    files: Mapping[str, bytes | Path] | None = None,
    applets: Iterable[str] = (),
    compresslevel: int | None = 9,
) -> Path:
    """A newc cpio at `path`: /init (the prologue, `init`, the epilogue), /bin/busybox with links for the applets,
    /dev/console and /dev/null, and `files` (name in the guest: content, or a file here, copied in pieces; made
    executable), gzip-compressed at `compresslevel` or, with None, not compressed (the kernel takes either; for a
    large initramfs an uncompressed one is quicker to write here and to unpack in an emulated guest)."""
    files = dict(files or {})
    folders = {"bin", "dev", "proc", "tmp", "usr", "usr/lib"}
    for name in files:
        parents = Path(name).parents
        folders.update(str(parent) for parent in parents if str(parent) != ".")
    links = sorted({*BASE_APPLETS, *applets})
    script = (PROLOGUE + init + EPILOGUE).encode()
    written = 0
    ino = 0

    def emit(out: io.BufferedIOBase, name: str, mode: int, data: bytes | Path = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nonlocal written, ino
        ino += 1
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        header = _cpio_header(name, mode, size, rdev, ino)
        out.write(header)
        if isinstance(data, Path):
            with data.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
        else:
            out.write(data)
        out.write(b"\0" * (-size % 4))
        written += len(header) + size + (-size % 4)

    with path.open("wb") as raw, contextlib.ExitStack() as stack:
        out: io.BufferedIOBase = raw
        if compresslevel is not None:
            out = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0))
        for folder in sorted(folders):
            emit(out, folder, stat.S_IFDIR | 0o755)
        # The kernel opens /dev/console for init's output before anything could mount devtmpfs; the preinst's
        # probe sends its stderr to /dev/null.
        emit(out, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        emit(out, "dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))
        emit(out, "bin/busybox", stat.S_IFREG | 0o755, busybox)
        for applet in links:
            emit(out, f"bin/{applet}", stat.S_IFLNK | 0o777, b"busybox")
        emit(out, "init", stat.S_IFREG | 0o755, script)
        for name, data in files.items():
            emit(out, name, stat.S_IFREG | 0o755, data)
        emit(out, "TRAILER!!!", 0)
        out.write(b"\0" * (-written % 512))
    return path


# --- the boot -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boot:
    """What a guest printed, and on what it ran."""

    kernel_release: str  # what the kernel package's name says: linux-image-<release>
    accelerator: str  # kvm or tcg
    cpu: str | None  # the CPU model qemu was given, None for its default (or the host's under KVM)
    seconds: float  # how long qemu ran
    console: str

    def value(self, key: str) -> str | None:
        match = re.search(rf"^DOCK32-{key}: (.*)$", self.console, re.MULTILINE)
        return match.group(1).strip() if match else None

    def block(self, key: str) -> str:
        match = re.search(rf"^DOCK32-{key}-BEGIN\n(.*?)^DOCK32-{key}-END$", self.console, re.MULTILINE | re.DOTALL)
        assert match, f"no {key} block on the console:\n{self.console[-6000:]}"
        return match.group(1)

    @property
    def cpu_flags(self) -> set[str]:
        """The first CPU's flags in the guest's /proc/cpuinfo."""
        flags = re.search(r"^flags\s*:(.*)$", self.block("CPUINFO"), re.MULTILINE)
        assert flags, f"no flags line in the guest's /proc/cpuinfo:\n{self.block('CPUINFO')}"
        return set(flags.group(1).split())

    @property
    def cpu_model_name(self) -> str | None:
        name = re.search(r"^model name\s*:(.*)$", self.block("CPUINFO"), re.MULTILINE)
        return name.group(1).strip() if name else None

    def invalid_opcode_traps(self, program: str) -> list[int]:
        """Where the kernel says it stopped `program` (its first 15 characters, the kernel's name for a process) on an
        invalid opcode, the trap that becomes SIGILL: the instruction pointers, from the guest's kernel log."""
        traps = re.findall(r"traps: (\S+)\[\d+\] trap invalid opcode ip:([0-9a-f]+)", self.block("DMESG"))
        return [int(ip, 16) for name, ip in traps if name == program[:15]]


# Instructions that came with SSE2 but take no xmm register.
SSE2_WITHOUT_XMM = frozenset({"MFENCE", "LFENCE", "CLFLUSH", "MOVNTI"})
XMM = re.compile(r"\bX[0-7]\b")


def may_need_sse2(instruction: str) -> bool:
    """Whether a CPU with SSE but without SSE2 may refuse an instruction (in Go's syntax): one on an xmm register
    (X0-X7; SSE's own take them too, but a Pentium III has those) or one of SSE2_WITHOUT_XMM."""
    return instruction.split()[0] in SSE2_WITHOUT_XMM or XMM.search(instruction) is not None


def go_instruction_at(binary: Path, address: int, go: str = "go") -> tuple[str, str]:
    """The Go function holding `address` in `binary`, and the instruction there, in Go's assembler syntax (`MFENCE`,
    `MULSD X1, X0`): by Go's own tools (`go`), which read the binary's Go symbol table."""
    env = {**os.environ, "GOTOOLCHAIN": "local"}
    where = subprocess.run([go, "tool", "addr2line", str(binary)], input=f"{address:#x}\n", capture_output=True, text=True, env=env, check=True)
    function = where.stdout.splitlines()[0]
    listing = subprocess.run(
        [go, "tool", "objdump", "-s", f"^{re.escape(function)}$", str(binary)], capture_output=True, text=True, env=env, check=True
    ).stdout
    for line in listing.splitlines():
        fields = [field.strip() for field in line.split("\t") if field.strip()]  # file:line, address, bytes, instruction
        if len(fields) >= 4 and fields[1] == f"{address:#x}":
            return function, " ".join(fields[3:])
    raise AssertionError(f"no instruction at {address:#x} in {function} of {binary}:\n{listing}")




def _run(command: list[str], timeout: float) -> tuple[int | None, str]:
    """qemu's exit code (None when it ran out of time) and everything it printed, the guest's console first."""
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
        code, out, err = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, exc.stdout or b"", exc.stderr or b""
    # SeaBIOS resets and clears the terminal (ESC c, ESC [2J): no part of what /init prints.
    return code, TERMINAL_CONTROL.sub("", (out + err).decode(errors="replace").replace("\r\n", "\n"))


def need_tools() -> str:
    """qemu-system-i386's path; skips the test where it, or what fetches the kernel, is missing."""
    qemu = shutil.which("qemu-system-i386")
    if qemu is None:
        pytest.skip("qemu-system-i386 is not installed (hint: make test-tools, or dock32 setup --tests)")
    for tool in ("apt-cache", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the i386 kernel and busybox come from Debian's archive")
    return qemu


@dataclass(frozen=True)
class Guest:
    """The kernel and busybox to boot, fetched (or found in the cache) once per test module."""

    qemu: str
    kernel_file: DebianFile
    kernel: Path
    busybox: Path

    @classmethod
    def fetch(cls) -> Guest:
        qemu = need_tools()
        kernel_file, busybox_file = boot_files()
        return cls(qemu, kernel_file, cached(kernel_file), cached(busybox_file))

    @property
    def kernel_release(self) -> str:
        return self.kernel_file.package.split(":")[0].removeprefix("linux-image-")

    def initramfs(
        self, path: Path, init: str, files: Mapping[str, bytes | Path] | None = None, applets: Iterable[str] = (), compresslevel: int | None = 9
    ) -> Path:
        return write_initramfs(path, self.busybox, init, files, applets, compresslevel)

    def boot(self, initrd: Path, cpu: str | None = None, memory_mb: int = 256, timeout: float = TCG_TIMEOUT) -> Boot:
        """Boot the kernel with `initrd` and return once the guest powered off: under KVM with the host's CPU where
        KVM works and no `cpu` model is asked for, else emulated (TCG) with `cpu`, or qemu's default CPU."""
        machine = ["-m", str(memory_mb), "-nographic", "-no-reboot", "-kernel", str(self.kernel), "-initrd", str(initrd)]
        machine += ["-append", "console=ttyS0 panic=-1 quiet"]
        accelerators: list[tuple[str, list[str], float]] = []
        if cpu is None and kvm_usable():
            # The guest gets this machine's CPU, which runs x86_64 code (the preinst test's /init prints whether it
            # shows "lm"). A working KVM has the guest powered off in a few seconds.
            accelerators.append(("kvm", ["-enable-kvm", "-cpu", "host"], KVM_BUDGET))
        accelerators.append(("tcg", ["-accel", "tcg", *(["-cpu", cpu] if cpu else [])], timeout))
        for accelerator, options, budget in accelerators:
            command = [self.qemu, *options, *machine]
            started = time.monotonic()
            code, console = _run(command, budget)
            seconds = time.monotonic() - started
            if accelerator == "kvm" and REACHED_INIT not in console:
                # Some KVMs (nested ones in particular) cannot run this kernel's early boot. The guest never reached
                # /init, so nothing of the test ran: boot it again, emulated, and say so.
                reason = "timed out" if code is None else f"exit code {code}"
                warnings.warn(f"KVM did not get the 32-bit kernel to /init ({reason}: {console.strip()[-300:]!r}); booted it under TCG", stacklevel=2)
                continue
            shown = f"{' '.join(command)}\n{console[-4000:]}"
            assert code is not None, f"the 32-bit guest did not power off within {budget} s: {shown}"
            assert code == 0, f"qemu exited {code}: {shown}"
            assert REACHED_INIT in console, f"the 32-bit guest powered off without running /init: {shown}"
            return Boot(self.kernel_release, accelerator, cpu, seconds, console)
        raise AssertionError("unreachable: TCG is always tried")
