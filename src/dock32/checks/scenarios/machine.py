"""Where the installed packages run and where every scenario's command goes: a Machine. Three kinds:

- Sandbox (sandbox.py): the installed root with containerd and dockerd started by a shell script in private
  namespaces, no init system. verify-upgrade runs there.
- Booted (booted.py): the installed root booted with its own init system as PID 1 (systemd or sysvinit) in a private
  container, where the packages' maintainer scripts start the services as on a user's box. `doit verify` and
  `doit verify-sysvinit` run there.
- Guest (guest.py): a real i686 kernel booted under QEMU with the installed root as its disk and systemd as PID 1
  (`doit verify-i386-kernel`).

Scenarios see only this interface: they send commands and files, never reach into a folder of this machine.
"""

from __future__ import annotations

import abc
import enum
import platform
import signal
import socket
import subprocess
import time
from pathlib import Path

from dock32.checks.scenarios.check import fail
from dock32.core.arch import Arch, build_machine_arch
from dock32.core.run import open_log

EXEC_SECONDS = 300


class Need(enum.Enum):
    """What a scenario needs of the machine it runs on. The value is the skip's reason on a machine without it."""

    X86_64_KERNEL = "this kernel does not run x86_64 programs"
    # What the amd64-refusal scenario checks needs a kernel that cannot run them: the i686 guest's.
    NO_X86_64_KERNEL = "this kernel runs x86_64 programs"
    # The amd64 busybox comes from this machine's own Debian archive.
    AMD64_BUSYBOX = "this build machine is not amd64, so it has no amd64 busybox at hand"
    SCTP = "no SCTP in this kernel"
    # What the init system scenarios check: the shipped units, and the shipped /etc/init.d script.
    SYSTEMD = "systemd is not PID 1 here"
    SYSVINIT = "sysvinit is not PID 1 here"
    # containerd.io ships a unit and no /etc/init.d script: under sysvinit dockerd starts a containerd of its own.
    SYSTEM_CONTAINERD = "no containerd.service here: dockerd runs a containerd of its own, with its own config"
    # Whole-machine reboots: only a QEMU guest has them.
    REBOOT = "only a booted kernel reboots"


def kernel_has_sctp() -> bool:
    """Whether this kernel can make SCTP sockets (a module it cannot load counts as no)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


def what_this_kernel_offers() -> frozenset[Need]:
    """The needs that this machine's own kernel and archive meet: those of every machine that runs on it."""
    arch = build_machine_arch()
    present = {
        Need.X86_64_KERNEL: arch.can_run(Arch.AMD64),
        Need.NO_X86_64_KERNEL: not arch.can_run(Arch.AMD64),
        Need.AMD64_BUSYBOX: arch is Arch.AMD64,
        Need.SCTP: kernel_has_sctp(),
    }
    return frozenset(need for need, there in present.items() if there)


class Machine(abc.ABC):
    """The installed packages, running; every command of a scenario goes through exec()."""

    # What started the daemons, as the report names it.
    init: str = "none"
    # A folder of the machine on a real file system (not the overlay that the root is), for a scenario's daemon data.
    data_dir = "/run/dock32"

    def __init__(self, log: Path) -> None:
        self.log = log

    @abc.abstractmethod
    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        """Run argv on the machine as root, with a clean environment (PATH, HOME=/root, LC_ALL=C), killed after
        EXEC_SECONDS (exit code -9). The one place where a command enters the machine (the unit tests' recorded
        machine answers here). pid_namespace: in the machine's PID namespace, so that what argv leaves running dies
        with the machine; a machine whose commands always enter it ignores it."""

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write a file at path on the machine (its folders made as needed)."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """A file of the machine."""

    @abc.abstractmethod
    def offers(self) -> frozenset[Need]:
        """What scenarios can count on here."""

    def kernel(self) -> str:
        """`uname -r -m` as the daemons see it."""
        return f"{platform.release()} {platform.machine()}"

    def daemon_logs(self) -> dict[str, str]:
        """The last lines of each daemon's log, for the report."""
        return {}

    def reboot(self) -> str:
        """Reboot the whole machine as its root would and wait until it is up again; the new boot's id. Only a machine
        that offers Need.REBOOT does."""
        fail(f"this machine ({self.init}) does not reboot")

    @abc.abstractmethod
    def restart_after_upgrade(self) -> None:
        """What restarts the daemons after a package upgrade where no init system does it. Under an init system,
        nothing: the postinst does it itself, which is what the upgrade scenario checks."""

    @abc.abstractmethod
    def stop_before_purge(self) -> None:
        """What stops the daemons before a purge where no init system does it. Under an init system, nothing: the
        prerm does it itself, which is what the purge scenario checks."""

    def exec(self, argv: list[str], check: bool = True, stdin: bytes | None = None, cleanup: bool = False) -> subprocess.CompletedProcess[str]:
        """Run argv on the machine and log it. check: a failure of argv fails the scenario. cleanup: run it even while
        stopping."""
        start = time.monotonic()
        return self.logged(argv, self.run_inside(argv, stdin, False, cleanup), time.monotonic() - start, check)

    def logged(self, argv: list[str], done: subprocess.CompletedProcess[str], seconds: float, check: bool) -> subprocess.CompletedProcess[str]:
        """done, the outcome of argv, written to the log; with check, a failure fails the scenario."""
        with open_log(self.log) as out:
            out.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}(exit {done.returncode}, {seconds:.1f} s)\n")
        if done.returncode == -signal.SIGKILL:
            fail(f"`{' '.join(argv)}` did not finish within {EXEC_SECONDS} s")
        if check and done.returncode != 0:
            fail(f"`{' '.join(argv)}` exited {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}")
        return done

    def exec_in_pid_namespace(self, argv: list[str], check: bool = True, cleanup: bool = False) -> subprocess.CompletedProcess[str]:
        """argv started so that what it leaves running (a daemon put in the background) belongs to the machine and
        dies with it."""
        start = time.monotonic()
        return self.logged(argv, self.run_inside(argv, None, True, cleanup), time.monotonic() - start, check)

    def docker(self, *args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return self.exec(["/usr/bin/docker", *args], check=check, stdin=stdin)

    def as_user(self, user: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """argv run by user, with the user's groups (runuser reads them from the machine's /etc/group) and home."""
        return self.exec(["runuser", "-u", user, "--", "env", f"HOME=/home/{user}", *argv], check=check)


class RootMachine(Machine):
    """A machine whose / this one reaches as a folder (the sandbox, the booted container): files go straight there."""

    @property
    @abc.abstractmethod
    def root(self) -> Path:
        """The machine's / as a folder here."""

    def _path(self, path: str) -> Path:
        if not path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"not an absolute path inside the machine: {path!r}")
        return self.root / path.lstrip("/")

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def read_file(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def offers(self) -> frozenset[Need]:
        return what_this_kernel_offers() | {Need.SYSTEM_CONTAINERD}
