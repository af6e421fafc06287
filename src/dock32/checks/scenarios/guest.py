"""A real i686 kernel: Debian's linux-image-686-pae booted by qemu-system-i386 with the installed root as its disk and
systemd as PID 1. Commands and files reach the guest through its agent (agent.py), on a port of this machine's
loopback that QEMU's user network forwards to the guest; the guest has no other way out (restrict=on).

QEMU runs under KVM where /dev/kvm works and emulated (TCG) otherwise: a KVM that cannot run the guest (a nested one
may fail on the first instruction, or never get the kernel to print) is given up for TCG after KVM_FIRST_WORDS
seconds, and the run says which ran. The serial console goes to a file; its lines, marked `console| `, are in the
report (daemon_logs) and, whole, at the end of the verify log.

QEMU dies with the thread that started it (dying_with_us), whatever kills dock32, and stop() kills it after a
POWEROFF_SECONDS power-off; its disk image and console are files of the run's scratch folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dock32.checks.scenarios import agent
from dock32.checks.scenarios.check import fail
from dock32.checks.scenarios.machine import EXEC_SECONDS, Machine, Need, what_this_kernel_offers
from dock32.core.arch import Arch
from dock32.core.errors import Interrupted, ToolchainError, VerifyError
from dock32.core.run import dying_with_us, open_log, stopping

AGENT_PORT = 7000
# QEMU's user network gives the guest this address (the first of 10.0.2.0/24 after the host's 10.0.2.2).
GUEST_ADDRESS = "10.0.2.15"
# Under TCG a Debian with systemd takes a minute or two to boot on 2 busy cores; under KVM seconds.
BOOT_SECONDS = {"kvm": 180, "tcg": 900}
# A KVM that works has the kernel print its banner within seconds.
KVM_FIRST_WORDS = 30
POWEROFF_SECONDS = 90
CONSOLE_MARK = "console| "
# What the kernel or the initramfs prints when the boot cannot go on: no use waiting for the agent then.
DEAD_ENDS = ("Kernel panic - not syncing", "Gave up waiting for root", "(initramfs)")
KERNEL_BANNER = "Linux version "
# The terminal's control sequences (SeaBIOS clears the screen, systemd colours its status lines), then any other
# control character but a tab: the console's text is read as lines of a log.
TERMINAL_CONTROL = re.compile(r"\x1b(?:c|\[[0-9;?]*[A-Za-z]|\([A-Z0-9])|[\x00-\x08\x0b-\x1f\x7f]")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C", "DOCKER_HOST": "unix:///run/docker.sock"}


@dataclass(frozen=True)
class GuestDisk:
    """What QEMU boots: the kernel and initramfs taken from the root's /boot, and the root as an ext4 image."""

    kernel: Path
    initrd: Path
    image: Path


@dataclass(frozen=True)
class Accelerator:
    name: str  # kvm or tcg, as the report says it
    cpu: str

    def __str__(self) -> str:
        return f"{self.name.upper()}, CPU {self.cpu}"


# Under KVM the guest runs on this machine's CPU whatever model it is told (a named one only changes CPUID, and a
# nested KVM may refuse its MSRs): the host's. Under TCG, a Core Duo: a 32-bit-only CPU (no long mode, as the 32-bit
# machines this is for) with what Debian's 686-pae kernel needs (PAE, with NX) and the SSE2 of a go386=sse2 build.
KVM = Accelerator("kvm", "host")
TCG = Accelerator("tcg", "coreduo")


def qemu_option_value(path: Path) -> str:
    """path inside a QEMU option list (`file=...,format=raw`), where a comma is written twice."""
    return str(path).replace(",", ",,")


def qemu_command(qemu: str, disk: GuestDisk, console: Path, accelerator: Accelerator, port: int, memory_mb: int = 2048, cpus: int = 2) -> list[str]:
    """The command that boots the guest with its agent's port forwarded from 127.0.0.1:port."""
    kernel_options = [
        "root=/dev/vda", "rw", "rootfstype=ext4", "console=ttyS0",
        # eth0, which the guest's network file names, whatever slot QEMU puts the card in.
        "net.ifnames=0",
    ]
    forward = f"hostfwd=tcp:127.0.0.1:{port}-{GUEST_ADDRESS}:{AGENT_PORT}"
    return [
        qemu, "-M", "pc", "-accel", accelerator.name, "-cpu", accelerator.cpu, "-m", str(memory_mb), "-smp", str(cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
        "-kernel", str(disk.kernel), "-initrd", str(disk.initrd), "-append", " ".join(kernel_options),
        # cache=unsafe: the image is thrown away after the run, and flushes under TCG cost minutes.
        "-drive", f"file={qemu_option_value(disk.image)},if=virtio,format=raw,cache=unsafe",
        # restrict=on: the guest reaches nothing outside, not this machine and not the internet.
        "-netdev", f"user,id=net0,restrict=on,{forward}", "-device", "virtio-net-pci,netdev=net0",
        "-chardev", f"file,id=console,path={qemu_option_value(console)}", "-serial", "chardev:console",
    ]


def marked(console: str) -> str:
    """The console's text, each line marked as the console's, without the terminal's control sequences."""
    text = TERMINAL_CONTROL.sub("", console.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(f"{CONSOLE_MARK}{line}\n" for line in text.splitlines())


def kvm_usable() -> bool:
    """Whether /dev/kvm opens for reading and writing (whether KVM then runs the guest is seen at boot)."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (QEMU may lose it to another program: start() tries again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call_agent(port: int, request: bytes, connect_seconds: float = 30, answer_seconds: float = EXEC_SECONDS + 60) -> list[bytes]:
    """The agent's answer to request, through 127.0.0.1:port (OSError when nothing answers, ProtocolError when the
    answer is cut short: the guest went down)."""
    with socket.create_connection(("127.0.0.1", port), timeout=connect_seconds) as connection:
        connection.settimeout(answer_seconds)
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        return agent.unpack(connection.recv)


def offers_of(uname_m: str, sctp_loads: bool, host: frozenset[Need]) -> frozenset[Need]:
    """What a guest with this kernel (uname -m), where `modprobe sctp` did or did not work, offers the scenarios.
    AMD64_BUSYBOX is this build machine's (its archive has the amd64 busybox), wherever the scenario runs."""
    offered = {Need.SYSTEMD, Need.SYSTEM_CONTAINERD, Need.REBOOT}
    if Arch.from_kernel(uname_m).can_run(Arch.AMD64):
        offered.add(Need.X86_64_KERNEL)
    else:
        offered.add(Need.NO_X86_64_KERNEL)
    if sctp_loads:
        offered.add(Need.SCTP)
    return frozenset(offered | (host & {Need.AMD64_BUSYBOX}))


class Guest(Machine):
    """The booted guest: start() boots it and waits for its agent and systemd; stop() powers it off, or kills QEMU."""

    init = "systemd"
    # On the guest's ext4 disk; /run is a tmpfs in the guest's 2 GiB of memory.
    data_dir = "/var/lib/dock32"

    def __init__(self, qemu: str, disk: GuestDisk, data: Path, log: Path) -> None:
        super().__init__(log)
        self.qemu = qemu
        self.disk = disk
        self.data = data  # the run's folder for the console and QEMU's own output
        self.console = data / "console.log"
        self.accelerator: Accelerator | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._qemu_output: IO[bytes] | None = None
        self._offers: frozenset[Need] | None = None

    # --- boot, reboot and power-off -------------------------------------------------------------------------------

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        candidates = [KVM, TCG] if kvm_usable() else [TCG]
        for accelerator in candidates[:-1]:
            why = self._boot(accelerator, last=False)
            if why is None:
                return
            print(f"dock32: {accelerator.name.upper()} did not run the i686 guest ({why}); booting it under TCG", flush=True)
        self._boot(candidates[-1], last=True)

    def _boot(self, accelerator: Accelerator, last: bool) -> str | None:
        """Boot under accelerator and wait until systemd has started everything. None once booted; else, where another
        accelerator comes after this one, why this one could not boot (the error itself when it is the last)."""
        for attempt in range(3):
            process = self._launch(accelerator)
            started = time.monotonic()
            deadline = started + BOOT_SECONDS[accelerator.name]
            while time.monotonic() < deadline:
                if stopping():
                    raise Interrupted("interrupted while the i686 guest booted")
                console = self.console_text()
                if process.poll() is not None:
                    output = self.qemu_output()
                    if "hostfwd" in output.lower() and attempt < 2:
                        break  # the port was taken between free_port() and QEMU: another one
                    self._kill()
                    if not last and KERNEL_BANNER not in console:
                        said = " / ".join(output.strip().splitlines()) or "no output"
                        return f"QEMU exited with code {process.returncode}: {said[-300:]}"
                    raise VerifyError(
                        f"QEMU exited with code {process.returncode} while the i686 guest booted: {output.strip()[-300:]}\n{self.console_tail()}",
                        hint=f"the console is at the end of {self.log}",
                    )
                if not last and KERNEL_BANNER not in console and time.monotonic() - started > KVM_FIRST_WORDS:
                    self._kill()
                    return f"no word from the kernel within {KVM_FIRST_WORDS} s"
                dead_end = next((words for words in DEAD_ENDS if words in console), None)
                if dead_end is not None:
                    self._kill()
                    raise VerifyError(f"the i686 guest's boot stopped at {dead_end!r}:\n{self.console_tail()}", hint=f"the console is at the end of {self.log}")
                if self._booted():
                    return None
                time.sleep(2)
            else:
                self._kill()
                raise VerifyError(
                    f"the i686 guest did not finish booting within {BOOT_SECONDS[accelerator.name]} s under {accelerator}:\n{self.console_tail()}",
                    hint=f"the console is at the end of {self.log}",
                )
        raise VerifyError(f"QEMU could not forward a port of 127.0.0.1 to the guest: {self.qemu_output().strip()[-300:]}")

    def _launch(self, accelerator: Accelerator) -> subprocess.Popen[bytes]:
        self.accelerator = accelerator
        self.port = free_port()
        self._offers = None
        self.console.unlink(missing_ok=True)
        if self._qemu_output is not None:
            self._qemu_output.close()
        self._qemu_output = open_log(self.data / "qemu.log", "wb")
        command = qemu_command(self.qemu, self.disk, self.console, accelerator, self.port)
        with open_log(self.log) as out:
            out.write(f"$ {' '.join(command)}\n")
        print(f"dock32: booting the i686 kernel under {accelerator}", flush=True)
        self.process = subprocess.Popen(
            dying_with_us(command), stdin=subprocess.DEVNULL, stdout=self._qemu_output, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.process

    def _booted(self) -> bool:
        """Whether the agent answers and systemd is done starting: "running", or "degraded" with a unit failed (the
        scenarios say which, if it is one of ours)."""
        try:
            state = self._call(agent.run_request(["systemctl", "is-system-running"], ENV, b"", 30), connect_seconds=2)
        except (OSError, agent.ProtocolError):
            return False
        return agent.exit_of(state)[1].decode().strip() in ("running", "degraded")

    def reboot(self) -> str:
        """Reboot the guest as its root would, and wait until it is up again; the new boot's id."""
        before = self.read_file("/proc/sys/kernel/random/boot_id").decode().strip()
        with contextlib.suppress(OSError, agent.ProtocolError):
            # The agent may go down before it answers, and its connection with it: a minute is plenty.
            call_agent(self.port, agent.run_request(["systemctl", "reboot"], ENV, b"", 60), answer_seconds=60)
        if self.accelerator is None or self.process is None:
            raise VerifyError("the i686 guest is not running (for its reboot)")
        deadline = time.monotonic() + BOOT_SECONDS[self.accelerator.name]
        while time.monotonic() < deadline:
            if stopping():
                raise Interrupted("interrupted while the i686 guest rebooted")
            if self.process.poll() is not None:
                fail(f"QEMU exited with code {self.process.returncode} when the guest rebooted: {self.console_tail(10)}")
            with contextlib.suppress(OSError, agent.ProtocolError):
                after = agent.data_of(self._call(agent.read_request("/proc/sys/kernel/random/boot_id"), connect_seconds=2)).decode().strip()
                if after != before and self._booted():
                    return after
            time.sleep(2)
        fail(f"the guest was not up again within {BOOT_SECONDS[self.accelerator.name]} s of `systemctl reboot`: {self.console_tail(10)}")

    def stop(self) -> None:
        """Power the guest off, as a user would; kill QEMU if that takes longer than POWEROFF_SECONDS. The whole
        console goes to the end of the log."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError, agent.ProtocolError):
                self._call(agent.run_request(["systemctl", "poweroff"], ENV, b"", 30), connect_seconds=2)
            try:
                self.process.wait(timeout=POWEROFF_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill()
        self._kill()
        if self._qemu_output is not None:
            self._qemu_output.close()
            self._qemu_output = None
        if self.console.is_file():
            with open_log(self.log) as out:
                out.write(f"--- the i686 guest's serial console ---\n{marked(self.console_text())}")
            self.console.unlink()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    # --- the agent --------------------------------------------------------------------------------------------------

    def _call(self, request: bytes, connect_seconds: float = 30) -> list[bytes]:
        return call_agent(self.port, request, connect_seconds)

    def _agent(self, request: bytes, what: str, cleanup: bool) -> list[bytes]:
        if stopping() and not cleanup:
            raise Interrupted(f"interrupted before `{what}` was sent to the guest")
        if self.process is None or self.process.poll() is not None:
            raise VerifyError(f"the i686 guest is not running (for `{what}`)", hint=f"its console is at the end of {self.log}")
        try:
            return self._call(request)
        except (OSError, agent.ProtocolError) as exc:
            raise VerifyError(f"the guest's agent did not answer `{what}`: {exc}", hint=f"its console is at the end of {self.log}") from None

    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        """pid_namespace: every command is in the guest's, a whole machine of its own."""
        answer = self._agent(agent.run_request(argv, ENV, stdin or b"", EXEC_SECONDS), " ".join(argv), cleanup)
        try:
            code, stdout, stderr = agent.exit_of(answer)
        except agent.ProtocolError as exc:
            raise VerifyError(f"the guest's agent could not run `{' '.join(argv)}`: {exc}") from None
        return subprocess.CompletedProcess(argv, code, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        try:
            agent.data_of(self._agent(agent.write_request(path, data, mode), f"write {path}", cleanup=False))
        except agent.ProtocolError as exc:
            fail(f"the guest's agent could not write {path}: {exc}")

    def read_file(self, path: str) -> bytes:
        try:
            return agent.data_of(self._agent(agent.read_request(path), f"read {path}", cleanup=False))
        except agent.ProtocolError as exc:
            fail(f"the guest's agent could not read {path}: {exc}")

    # --- what the scenarios and the report use ------------------------------------------------------------------------

    def offers(self) -> frozenset[Need]:
        if self._offers is None:
            uname_m = self.exec(["uname", "-m"]).stdout.strip()
            sctp = self.exec(["modprobe", "sctp"], check=False).returncode == 0
            try:
                self._offers = offers_of(uname_m, sctp, what_this_kernel_offers())
            except ToolchainError as exc:
                raise VerifyError(f"the guest's kernel: {exc.message}") from None
        return self._offers

    def kernel(self) -> str:
        return self.exec(["uname", "-r", "-m"]).stdout.strip()

    def restart_after_upgrade(self) -> None:
        """Nothing: the postinst restarts the services through systemd."""

    def stop_before_purge(self) -> None:
        """Nothing: the prerm stops the services through systemd."""

    def console_text(self) -> str:
        try:
            return self.console.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 20) -> str:
        return "".join(marked(self.console_text()).splitlines(keepends=True)[-lines:])

    def qemu_output(self) -> str:
        path = self.data / "qemu.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def daemon_logs(self) -> dict[str, str]:
        logs = {}
        if self.process is not None and self.process.poll() is None:
            for unit in ("docker", "containerd"):
                with contextlib.suppress(VerifyError):
                    logs[f"{unit}.log"] = self.exec(["journalctl", "--no-pager", "-n", "40", "-u", unit], check=False, cleanup=True).stdout
        return {**logs, "console": self.console_tail(60)}
