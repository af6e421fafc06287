"""The machine verify-upgrade's steps run on (and any scenario, where no init system is wanted): containerd and
dockerd started from an installed root in private namespaces by a script rather than an init system, and every
command sent into them.

The daemons run under `unshare --pid --net --mount`: their processes, network, iptables rules and mounts live in
namespaces that the kernel tears down with the namespace's first process (when it dies, the kernel kills every
other process in it, the containerd shims that daemonize included), so a failing or interrupted run leaves
nothing behind on the machine, and a Docker already running here is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from dock32.checks.scenarios.check import fail
from dock32.checks.scenarios.machine import EXEC_SECONDS, RootMachine
from dock32.core.errors import VerifyError
from dock32.core.run import capture, dying_with_us, open_log

DAEMON_START_SECONDS = 90

# Debian's own config for its docker-registry asks for htpasswd logins; the push/pull round-trip needs none.
REGISTRY_CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: 127.0.0.1:5000
"""

# What an init system does for the packages' services: start and stop containerd and dockerd from the
# installed root. The namespace's first process starts them; the upgrade scenario restarts them, as the
# packages' maintainer scripts have a running init do. Logs are appended, so a restart keeps the earlier part.
DAEMONS_SCRIPT = r"""
set -e
cd /
case "$1" in
start)
    /usr/bin/containerd --config /etc/containerd/config.toml >> /run/dock32/containerd.log 2>&1 < /dev/null &
    echo $! > /run/dock32/containerd.pid
    /usr/bin/dockerd --containerd=/run/containerd/containerd.sock -H unix:///run/docker.sock >> /run/dock32/dockerd.log 2>&1 < /dev/null &
    ;;
stop)
    # dockerd first (it stops its containers and removes its pid file), then containerd.
    if [ -f /run/docker.pid ]; then kill -TERM "$(cat /run/docker.pid)"; fi
    for _ in $(seq 100); do [ -f /run/docker.pid ] || break; sleep 0.2; done
    [ -f /run/dock32/containerd.pid ] || exit 0
    pid="$(cat /run/dock32/containerd.pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do grep -qs '^State:[[:space:]]*[RSDT]' "/proc/$pid/status" || break; sleep 0.2; done
    rm -f /run/dock32/containerd.pid
    ;;
esac
"""

# Inside the private namespaces: fresh /proc and /sys, the machine's /dev and cgroups, a tmpfs /run, data
# folders on a real file system (overlay2 cannot stack on the overlay root), then pivot_root into the root
# and start the daemons there. pivot_root, not chroot: `runc exec` joins the container's mount namespace,
# and the kernel then puts it at that namespace's top mount. Under chrooted daemons, that is the machine's
# own / (the container's root is stacked on the overlay's mount point, not on /), so `docker exec` would
# run its command in the machine's file system.
NAMESPACE_SCRIPT = r"""
set -e
root="$1"; data="$2"
ip link set lo up
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mkdir -p "$root/run/dock32" "$data/docker" "$data/containerd" "$root/var/lib/docker" "$root/var/lib/containerd" "$root/.old-root"
mount --bind "$data" "$root/run/dock32"
mount --bind "$data/docker" "$root/var/lib/docker"
mount --bind "$data/containerd" "$root/var/lib/containerd"
cd "$root"
pivot_root . .old-root
# From here on every program comes from the installed root; the machine's file system is let go.
cd /
umount -l /.old-root
rmdir /.old-root
touch /run/dock32/namespace.ready
sh /run/dock32/daemons start
# Debian's registry, for the push/pull round-trip; its address is private to this network namespace.
mkdir -p /var/lib/docker-registry
/usr/bin/docker-registry serve /etc/dock32-registry.yml > /run/dock32/registry.log 2>&1 &
# Stay up (the namespace lives as long as this process) and reap what exits, restarted daemons included.
while :; do wait; sleep 1; done
"""


class Sandbox(RootMachine):
    """The installed root and the daemons running from it, started by DAEMONS_SCRIPT rather than an init system."""

    init = "none (dock32's sandbox script)"

    def __init__(self, root: Path, data: Path, log: Path) -> None:
        super().__init__(log)
        self._root = root
        self.data = data
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def root(self) -> Path:
        return self._root

    @property
    def namespace_pid(self) -> str:
        """The host PID of the namespace's first process: unshare's only child."""
        if self.process is None:
            raise RuntimeError("the sandbox is not started")
        return Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()[0]

    def start(self) -> None:
        (self.data / "daemons").write_text(DAEMONS_SCRIPT, encoding="utf-8")
        self._log_file = open_log(self.log, "ab")
        self.process = subprocess.Popen(
            dying_with_us([
                "unshare", "--pid", "--net", "--mount", "--propagation", "private", "--fork", "--kill-child",
                "sh", "-c", NAMESPACE_SCRIPT, "sh", self.root, self.data,
            ]),
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VerifyError(
                    f"the daemons' namespace exited with code {self.process.returncode}:\n{self.tail('containerd.log')}{self.tail('dockerd.log')}",
                    hint=f"see {self.log}",
                )
            if (self.data / "namespace.ready").is_file() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(1)
        raise VerifyError(f"dockerd did not answer within {DAEMON_START_SECONDS} s:\n{self.tail('dockerd.log')}", hint=f"see {self.log}")

    def restart_after_upgrade(self) -> None:
        """Stop and start containerd and dockerd, as an init system does when a package upgrade restarts them."""
        # In the namespace's PID namespace too, so that the restarted daemons die with it.
        self.exec_in_pid_namespace(["sh", "/run/dock32/daemons", "stop"])
        self.exec_in_pid_namespace(["sh", "/run/dock32/daemons", "start"])
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while self.docker("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                fail(f"dockerd did not answer within {DAEMON_START_SECONDS} s of its restart: {self.tail('dockerd.log', 3)}")
            time.sleep(1)

    def stop_before_purge(self) -> None:
        """Stop dockerd and containerd, as the packages' prerm has an init system do."""
        self.exec_in_pid_namespace(["sh", "/run/dock32/daemons", "stop"])

    def stop(self) -> None:
        if self.process is None:
            if self._log_file is not None:
                self._log_file.close()
            return
        if self.process.poll() is None:
            # dockerd first, so it stops its containers and tells containerd; then everything else.
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.exec_in_pid_namespace(["sh", "/run/dock32/daemons", "stop"], check=False, cleanup=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self._log_file is not None:
            self._log_file.close()

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.data / name
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:]) if path.is_file() else ""

    def daemon_logs(self) -> dict[str, str]:
        return {name: self.tail(name, 40) for name in ("dockerd.log", "containerd.log")}

    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        return capture(
            ["nsenter", f"--target={self.namespace_pid}", "--net", "--mount", *(["--pid"] if pid_namespace else []), *argv],
            input=stdin, timeout=EXEC_SECONDS, inherit_env=False, cleanup=cleanup,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_HOST": "unix:///run/docker.sock", "HOME": "/root", "LC_ALL": "C"},
        )
