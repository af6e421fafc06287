"""The installed root booted with its own init system as PID 1 (systemd, or sysvinit as Devuan, antiX and MX Linux run
it), in a container of systemd-nspawn, so that the packages are installed and their services started as on a
user's box: the postinst's deb-systemd-invoke or invoke-rc.d starts them, the shipped units and /etc/init.d script
run them, and the prerm stops them.

nspawn runs as the first process of a PID namespace of its own (`unshare --pid --fork --kill-child`): when that
process dies, however it dies, the kernel kills every process in the namespace, the container's init, daemons and
containerd shims included. nspawn alone would not do: killed, it leaves its container running. The root's overlay
is mounted in that namespace's own mount namespace (rootfs.Layers), so it goes with it too: a verify that is killed
leaves neither a process nor a mount. Its network is private (--private-network), so a Docker already on this
machine, its /run/docker.sock and its iptables rules are never touched.

How nspawn is asked to run Docker:
- SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: the container sees cgroup v2 only, which it may write, so that its systemd and
  runc make their cgroups there; on a machine with cgroup v1 nspawn mounts the v1 controllers read-only.
- SYSTEMD_SECCOMP=0 and --capability=all: runc needs keyctl (a session keyring per container), mount and the rest
  that nspawn's own filter and capability set refuse a container.
- /var/lib/docker, /var/lib/containerd and the scenarios' own data folder (Machine.data_dir: the rootless daemon's)
  are bound from a real file system: overlay2 cannot stack on the overlay that is the root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dock32.checks.rootfs import Layers
from dock32.checks.scenarios.machine import EXEC_SECONDS, Need, RootMachine, what_this_kernel_offers
from dock32.core.errors import VerifyError
from dock32.core.run import capture, dying_with_us, open_log

BOOT_SECONDS = 120
POWEROFF_SECONDS = 30


@dataclass(frozen=True)
class InitSystem:
    """An init system the root is booted under: what installs it, and what the scenarios can count on under it."""

    name: str
    packages: tuple[str, ...]  # what makes it PID 1 in the minbase root, installed before the boot
    offers: tuple[Need, ...]  # what the scenarios can count on under it
    poweroff: tuple[str, ...]
    fstab: str = ""  # lines the root's /etc/fstab needs under it


# dbus: the bus of systemctl and logind, which a booted Debian always has.
SYSTEMD = InitSystem("systemd", ("systemd-sysv", "dbus"), (Need.SYSTEMD, Need.SYSTEM_CONTAINERD), ("systemctl", "poweroff", "--no-block"))
# sysvinit-core replaces systemd-sysv as /sbin/init. It mounts no cgroup file system (its mountkernfs.sh even mounts
# a fresh /sys over the container's), and dockerd needs one: a sysvinit Docker host mounts it from /etc/fstab, as
# here, or with cgroupfs-mount.
SYSVINIT = InitSystem(
    "sysvinit", ("sysvinit-core",), (Need.SYSVINIT,), ("/sbin/init", "0"), fstab="cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
)


class Booted(RootMachine):
    """The root, booted: start() boots it and waits for its init system to finish starting; stop() powers it off, or
    kills it. Commands enter all of its namespaces, its PID namespace included, so that what they start (a daemon
    that /etc/init.d/docker puts in the background) belongs to the container and dies with it."""

    def __init__(self, layers: Layers, data: Path, init_system: InitSystem, log: Path) -> None:
        super().__init__(log)
        self.layers = layers
        self.data = data
        self.init_system = init_system
        self.init = init_system.name
        self.process: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None
        self._init_pid: str | None = None

    @property
    def root(self) -> Path:
        """The container's / as its init sees it: the overlay is mounted in the container's own namespaces only."""
        init = self._find_init()
        if init is None:
            raise VerifyError(f"the {self.init} container is not running", hint=f"see {self.data / 'console.log'}")
        return Path(f"/proc/{init}/root")

    # --- boot and power-off ----------------------------------------------------------------------------------------

    def start(self) -> None:
        binds = {"docker": "/var/lib/docker", "containerd": "/var/lib/containerd", "scenarios": self.data_dir}
        for folder in binds:
            (self.data / folder).mkdir(parents=True, exist_ok=True)
        self._console = open_log(self.data / "console.log", "ab")
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1", "SYSTEMD_SECCOMP": "0"}
        self.process = subprocess.Popen(
            dying_with_us([
                "unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
                *self.layers.mounted([
                    "systemd-nspawn", "--boot", f"--directory={self.layers.merged}", f"--machine=dock32-verify-{os.getpid()}",
                    # Without a systemd on this machine to register with or to make a scope in.
                    "--register=no", "--keep-unit",
                    "--private-network", "--capability=all", "--console=pipe",
                    *(f"--bind={self.data / folder}:{inside}" for folder, inside in binds.items()),
                ]),
            ]),
            stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VerifyError(
                    f"the {self.init} container exited with code {self.process.returncode} while booting:\n{self.console_tail()}",
                    hint=f"the whole console is in {self.data / 'console.log'}; systemd-nspawn is in the systemd-container package",
                )
            if self._booted():
                return
            time.sleep(1)
        raise VerifyError(
            f"{self.init} did not finish booting within {BOOT_SECONDS} s:\n{self.console_tail()}", hint=f"the whole console is in {self.data / 'console.log'}"
        )

    def _booted(self) -> bool:
        if self._find_init() is None:
            return False
        if self.init_system == SYSTEMD:
            # "running", or "degraded" with a unit failed: the scenarios say which, if it is one of ours.
            state = self.exec(["systemctl", "is-system-running"], check=False).stdout.strip()
            return state in ("running", "degraded")
        # sysvinit: runlevel prints "N 2" once init has entered its default runlevel and run its rc2.d scripts.
        return self.exec(["runlevel"], check=False).stdout.split()[-1:] == ["2"]

    def _find_init(self) -> str | None:
        """The host PID of the container's init: the child of nspawn, which is the child of the first unshare (the
        second one, that mounts the overlay, execs sh, which execs nspawn)."""
        if self._init_pid is not None and (self.process is None or self.process.poll() is not None or not Path(f"/proc/{self._init_pid}").exists()):
            self._init_pid = None  # the container is gone: its PID may be another process's by now
        if self._init_pid is None and self.process is not None and self.process.poll() is None:
            nspawn = _children(str(self.process.pid))
            init = _children(nspawn[0]) if nspawn else []
            # nspawn forks short-lived helpers too; the init is the one whose program is systemd or init.
            found = [pid for pid in init if _program(pid) in ("systemd", "init")]
            self._init_pid = found[0] if found else None
        return self._init_pid

    def stop(self) -> None:
        """Power the container off, as a user would; kill it if that takes longer than POWEROFF_SECONDS."""
        if self.process is not None and self.process.poll() is None:
            booted = self._find_init() is not None
            if booted:
                with contextlib.suppress(OSError, ValueError):
                    self.run_inside(list(self.init_system.poweroff), None, pid_namespace=True, cleanup=True)
            try:
                # An init that never came up has nothing to power off: kill at once.
                self.process.wait(timeout=POWEROFF_SECONDS if booted else 0.1)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        self._init_pid = None
        if self._console is not None:
            self._console.close()
            self._console = None

    # --- what the scenarios and the report use -----------------------------------------------------------------------

    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        init = self._find_init()
        if init is None:
            raise VerifyError(f"the {self.init} container is not running", hint=f"see {self.data / 'console.log'}")
        return capture(
            ["nsenter", f"--target={init}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd", *argv],
            input=stdin, timeout=EXEC_SECONDS, inherit_env=False, cleanup=cleanup,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C"},
        )

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Through a command in the container rather than /proc/<init>/root: a link in the container (a user's folder
        holds what its user puts there) would be followed there against this machine's /."""
        self._path(path)  # the same check of the path
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
        self.exec(["sh", "-c", script, "sh", path, f"{mode:o}"], stdin=data)

    def offers(self) -> frozenset[Need]:
        return what_this_kernel_offers() | set(self.init_system.offers)

    def restart_after_upgrade(self) -> None:
        """Nothing: the postinst restarts the services through the init system."""

    def stop_before_purge(self) -> None:
        """Nothing: the prerm stops the services through the init system."""

    def kernel(self) -> str:
        return self.exec(["uname", "-r", "-m"]).stdout.strip()

    def console_tail(self, lines: int = 20) -> str:
        path = self.data / "console.log"
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:]) if path.is_file() else ""

    def daemon_logs(self) -> dict[str, str]:
        if self._find_init() is None:
            return {"console": self.console_tail(40)}
        if self.init_system == SYSTEMD:
            logs = {
                f"{unit}.log": self.exec(["journalctl", "--no-pager", "-n", "40", "-u", unit], check=False, cleanup=True).stdout
                for unit in ("docker", "containerd")
            }
        else:
            # /etc/init.d/docker sends dockerd's output there; dockerd starts and logs its own containerd.
            logs = {"dockerd.log": self.exec(["tail", "-n", "40", "/var/log/docker.log"], check=False, cleanup=True).stdout}
        return {**logs, "console": self.console_tail(40)}


def _children(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def _program(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
