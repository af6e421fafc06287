"""`doit verify`: install the .debs into a clean Debian root for the host architecture, start containerd and
dockerd from it in private namespaces, and run real containers.

The daemons run under `unshare --pid --net --mount`: their processes, network, iptables rules and mounts live in
namespaces that the kernel tears down with the namespace's first process (when it dies, the kernel kills every
other process in it, the containerd shims that daemonize included), so a failing or interrupted run leaves
nothing behind on the machine, and a Docker already running here is never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from dock32 import atomic
from dock32.arch import Arch, build_machine_arch
from dock32.config import BuildConfig, DebPackage
from dock32.debs import build_deb, package_version, write_repository
from dock32.errors import CommandFailed, VerifyError
from dock32.isa import unexpected_go_sse
from dock32.layout import Layout
from dock32.rootfs import chroot_run, ensure_root, overlay
from dock32.run import capture, dying_with_us, run
from dock32.settings import Settings
from dock32.toolchain import ResolvedToolchain

DAEMON_START_SECONDS = 90
I386_IMAGE = "dock32/busybox:i386"
AMD64_IMAGE = "dock32/busybox:amd64"
WEB_PAGE = "dock32 web\n"
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


class Skipped(Exception):
    """A scenario that cannot run on this machine, with the reason."""


# Scenarios that fail today for a reason found and not yet fixed. They still run: a failure shows as
# "known-bug" with its reason and does not fail the run; a pass shows as "FIXED?", which does, so that
# the entry is removed once the bug is gone.
KNOWN_BUGS: dict[str, str] = {}


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    status: str  # pass, FAIL, skipped
    detail: str
    seconds: float


class Sandbox:
    """The installed root and the daemons running from it; every command goes through here."""

    def __init__(self, root: Path, data: Path, log: Path) -> None:
        self.root = root
        self.data = data
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def namespace_pid(self) -> str:
        """The host PID of the namespace's first process: unshare's only child."""
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()[0]

    def start(self) -> None:
        (self.data / "daemons").write_text(DAEMONS_SCRIPT, encoding="utf-8")
        self._log_file = self.log.open("ab")
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

    def restart_daemons(self) -> None:
        """Stop and start containerd and dockerd, as an init system does when a package upgrade restarts them."""
        # In the namespace's PID namespace too, so that the restarted daemons die with it.
        self.exec(["sh", "/run/dock32/daemons", "stop"], pid_namespace=True)
        self.exec(["sh", "/run/dock32/daemons", "start"], pid_namespace=True)
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while self.docker("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not answer within {DAEMON_START_SECONDS} s of its restart: {self.tail('dockerd.log', 3)}")
            time.sleep(1)

    def stop(self) -> None:
        if self.process is None:
            if self._log_file is not None:
                self._log_file.close()
            return
        if self.process.poll() is None:
            # dockerd first, so it stops its containers and tells containerd; then everything else.
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.exec(["sh", "/run/dock32/daemons", "stop"], check=False, pid_namespace=True, cleanup=True)
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

    def exec(
        self, argv: list[str], check: bool = True, stdin: bytes | None = None, pid_namespace: bool = False, cleanup: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in the daemons' namespaces, whose / is the installed root. cleanup: run it even while stopping."""
        start = time.monotonic()
        decoded = capture(
            ["nsenter", f"--target={self.namespace_pid}", "--net", "--mount", *(["--pid"] if pid_namespace else []), *argv],
            input=stdin, timeout=300, inherit_env=False, cleanup=cleanup,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_HOST": "unix:///run/docker.sock", "HOME": "/root", "LC_ALL": "C"},
        )
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(argv)}\n{decoded.stdout}{decoded.stderr}(exit {decoded.returncode}, {time.monotonic() - start:.1f} s)\n")
        if decoded.returncode == -signal.SIGKILL:
            raise AssertionError(f"`{' '.join(argv)}` did not finish within 300 s")
        if check and decoded.returncode != 0:
            raise AssertionError(f"`{' '.join(argv)}` exited {decoded.returncode}: {(decoded.stderr or decoded.stdout).strip()[-400:]}")
        return decoded

    def docker(self, *args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return self.exec(["/usr/bin/docker", *args], check=check, stdin=stdin)


def busybox_rootfs(busybox: bytes) -> bytes:
    """A tiny image: a static busybox, the applet links the scenarios use, and a web page."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name: str, data: bytes | None = None, mode: int = 0o644, link: str | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))

        for folder in ("bin", "www", "tmp", "etc", "proc", "sys", "dev"):
            add(folder)
        add("bin/busybox", busybox, 0o755)
        for applet in ("sh", "echo", "cat", "grep", "wget", "httpd", "ps", "sleep", "uname", "true"):
            add(f"bin/{applet}", link="busybox")
        add("www/index.html", WEB_PAGE.encode())
    return buffer.getvalue()


def amd64_busybox(scratch: Path, log: Path) -> bytes:
    """busybox-static for amd64, from this machine's own Debian archive (apt-get download)."""
    if build_machine_arch() is not Arch.AMD64:
        raise Skipped("this build machine is not amd64, so it has no amd64 busybox at hand")
    folder = scratch / "amd64"
    folder.mkdir(exist_ok=True)
    run(["apt-get", "download", "busybox-static:amd64"], cwd=folder, log=log, what="apt-get download busybox-static")
    (deb,) = folder.glob("busybox-static_*.deb")
    run(["dpkg-deb", "-x", deb, folder / "x"], log=log, what="unpack busybox-static")
    return (folder / "x" / "bin" / "busybox").read_bytes()


def scenarios(
    config: BuildConfig, packages: tuple[DebPackage, ...], layout: Layout, sandbox: Sandbox, scratch: Path, log: Path
) -> list[tuple[str, Callable[[], str]]]:
    cli, engine = config.component("cli").version, config.component("engine").version
    # What the programs are: 386 for native32, amd64 for multiarch64 (in the same i386 packages and root).
    goarch = config.host_arch.names.go

    def version() -> str:
        template = "{{.Client.Os}}/{{.Client.Arch}} {{.Client.Version}} {{.Server.Os}}/{{.Server.Arch}} {{.Server.Version}}"
        out = sandbox.docker("version", "--format", template).stdout.strip()
        assert out == f"linux/{goarch} {cli} linux/{goarch} {engine}", out
        return out

    def info() -> str:
        template = "{{.OSType}} {{.Driver}} cgroup-v{{.CgroupVersion}} {{json .SecurityOptions}} {{.DefaultRuntime}}"
        out = sandbox.docker("info", "--format", template).stdout.strip()
        assert out.startswith("linux ") and "seccomp" in out and out.endswith(" runc"), out
        return out

    def runtimes() -> str:
        """containerd and runc are the builds the config pins, as dockerd and the programs themselves report them; runc
        has seccomp with the libseccomp the build linked and, as moby builds it, no libpathrs."""
        containerd, runc = config.component("containerd"), config.component("runc")
        reported = json.loads(sandbox.docker("version", "--format", "{{json .Server.Components}}").stdout)
        seen = {c["Name"]: (c["Version"].removeprefix("v"), (c.get("Details") or {}).get("GitCommit")) for c in reported}
        for component in (containerd, runc):
            expected = (component.version.removeprefix("v"), component.commit)
            assert seen.get(component.name) == expected, f"dockerd reports {component.name} {seen.get(component.name)}, expected {expected}"
        words = sandbox.exec(["/usr/bin/containerd", "--version"]).stdout.split()
        assert words[-2:] == [containerd.version, containerd.commit], f"containerd --version: {' '.join(words)}"
        runc_lines = sandbox.exec(["/usr/bin/runc", "--version"]).stdout.splitlines()
        fields = dict(line.split(": ", 1) for line in runc_lines[1:] if ": " in line)
        assert runc_lines[0].removeprefix("runc version ").removeprefix("v") == runc.version.removeprefix("v"), runc_lines[0]
        assert fields.get("commit") == runc.commit, f"runc commit {fields.get('commit')!r}, expected {runc.commit!r}"
        assert "libpathrs" not in fields, f"runc was built with libpathrs {fields['libpathrs']}"
        manifest = json.loads(layout.manifest.read_text(encoding="utf-8"))
        linked = [lib.get("version") for lib in manifest["components"]["runc"].get("c_libraries", []) if lib["name"] == "libseccomp"]
        assert "libseccomp" in fields, f"runc has no seccomp: {runc_lines}"
        assert linked in ([], [None], [fields["libseccomp"]]), f"runc reports libseccomp {fields['libseccomp']}, the build linked {linked[0]}"
        return f"containerd {containerd.version} ({containerd.commit}), runc {runc.version} ({runc.commit}) with libseccomp {fields['libseccomp']}"

    def containerd_config() -> str:
        """The running containerd has the packaged config: every plugin it disables (containerd 2.x's CRI plugins) is
        absent, and nothing in it is refused. Deprecations containerd reports (cgroup v1 here) are shown, not failed."""
        shipped = tomllib.loads((sandbox.root / "etc" / "containerd" / "config.toml").read_text(encoding="utf-8"))
        dumped = sandbox.exec(["/usr/bin/containerd", "--config", "/etc/containerd/config.toml", "config", "dump"])
        assert "Ignoring unknown key" not in dumped.stderr, dumped.stderr.strip()
        disabled = set(shipped.get("disabled_plugins", []))
        assert disabled <= set(tomllib.loads(dumped.stdout)["disabled_plugins"]), dumped.stdout[:400]
        rows = [line.split() for line in sandbox.exec(["/usr/bin/ctr", "plugins", "ls"]).stdout.splitlines()[1:]]
        loaded = {f"{row[0]}.{row[1]}" for row in rows if len(row) >= 4 and row[-1] == "ok"}
        assert len(loaded) > 10 and not loaded & disabled, f"loaded although disabled: {sorted(loaded & disabled)}"
        warnings = json.loads(sandbox.exec(["/usr/bin/ctr", "deprecations", "list", "--format", "json"]).stdout or "[]") or []
        ids = sorted(w["id"].rsplit("/", 1)[-1] for w in warnings)
        return f"config version {shipped.get('version')}, {len(disabled)} plugins off, {len(loaded)} loaded; deprecations: {', '.join(ids) or 'none'}"

    def run_i386() -> str:
        busybox = (sandbox.root / "bin" / "busybox").read_bytes()
        # --platform: an amd64 (multiarch64) daemon would label the import amd64 otherwise.
        sandbox.docker("import", "--platform", "linux/386", "--change", 'CMD ["/bin/sh"]', "-", I386_IMAGE, stdin=busybox_rootfs(busybox))
        out = sandbox.docker("run", "--rm", I386_IMAGE, "echo", "hello from i386").stdout.strip()
        assert out == "hello from i386", out
        return out

    def init() -> str:
        out = sandbox.docker("run", "--rm", "--init", I386_IMAGE, "cat", "/proc/1/cmdline").stdout.replace("\0", " ").strip()
        assert "docker-init" in out, out
        return f"PID 1: {out}"

    def seccomp_i386() -> str:
        out = sandbox.docker("run", "--rm", I386_IMAGE, "grep", "Seccomp:", "/proc/self/status").stdout.split()
        assert out == ["Seccomp:", "2"], out
        # The default profile allows personality(2) only with a few values; ADDR_NO_RANDOMIZE is not one.
        probe = ["/bin/busybox", "linux32", "-R", "/bin/true"]
        blocked = sandbox.docker("run", "--rm", I386_IMAGE, *probe, check=False)
        assert blocked.returncode != 0, "personality(ADDR_NO_RANDOMIZE) succeeded under the default profile"
        allowed = sandbox.docker("run", "--rm", "--security-opt", "seccomp=unconfined", I386_IMAGE, *probe, check=False)
        assert allowed.returncode == 0, f"the probe fails even unconfined: {allowed.stderr.strip()}"
        return "Seccomp: 2; personality(ADDR_NO_RANDOMIZE) refused by the filter, allowed unconfined"

    def network_by_name() -> str:
        sandbox.docker("network", "create", "dock32-net")
        try:
            sandbox.docker("run", "-d", "--name", "dock32-web", "--network", "dock32-net", I386_IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
            out = _retry(lambda: sandbox.docker("run", "--rm", "--network", "dock32-net", I386_IMAGE, "wget", "-qO-", "http://dock32-web/").stdout)
            assert out == WEB_PAGE, out
            return "wget http://dock32-web/ from another container"
        finally:
            sandbox.docker("rm", "-f", "dock32-web", check=False)
            sandbox.docker("network", "rm", "dock32-net", check=False)

    def published_port() -> str:
        sandbox.docker("run", "-d", "--name", "dock32-pub", "-p", "127.0.0.1:18080:80", I386_IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
        try:
            out = _retry(lambda: sandbox.exec(["/bin/busybox", "wget", "-qO-", "http://127.0.0.1:18080/"]).stdout)
            assert out == WEB_PAGE, out
            return "127.0.0.1:18080 answers from the host side"
        finally:
            sandbox.docker("rm", "-f", "dock32-pub", check=False)

    def sctp_port() -> str:
        """Before patches/engine/0003-sctp-on-386.patch, the port binding failed with EFAULT (moby's socketcall)
        or "SCTP is unsupported on linux/386" (the sctp library), so the container did not start."""
        if not kernel_has_sctp():
            raise Skipped("no SCTP in this kernel")
        sandbox.docker("run", "-d", "--name", "dock32-sctp", "-p", "127.0.0.1:19132:9999/sctp", I386_IMAGE, "sleep", "300")
        try:
            mapped = sandbox.docker("port", "dock32-sctp", "9999/sctp").stdout.strip()
            assert mapped == "127.0.0.1:19132", mapped
            return "a container publishing 9999/sctp on 127.0.0.1:19132 starts"
        finally:
            sandbox.docker("rm", "-f", "dock32-sctp", check=False)

    def build() -> str:
        context = sandbox.root / "srv" / "build-context"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(f"FROM {I386_IMAGE}\nRUN echo built-by-buildkit > /built\nCMD [\"cat\", \"/built\"]\n")
        sandbox.docker("build", "-t", "dock32/built", "/srv/build-context")
        out = sandbox.docker("run", "--rm", "dock32/built").stdout.strip()
        assert out == "built-by-buildkit", out
        return "docker build (BuildKit) FROM the i386 image"

    def registry_round_trip() -> str:
        remote = "127.0.0.1:5000/dock32/busybox:i386"
        sandbox.docker("tag", I386_IMAGE, remote)
        _retry(lambda: sandbox.docker("push", "--quiet", remote).stdout)
        sandbox.docker("rmi", remote)
        sandbox.docker("rmi", I386_IMAGE)
        sandbox.docker("pull", "--quiet", remote)
        out = sandbox.docker("run", "--rm", remote, "echo", "pulled back").stdout.strip()
        assert out == "pulled back", out
        sandbox.docker("tag", remote, I386_IMAGE)
        return "push to Debian's docker-registry on 127.0.0.1:5000, remove, pull, run"

    def compose() -> str:
        project = sandbox.root / "srv" / "compose"
        project.mkdir(parents=True, exist_ok=True)
        (project / "compose.yaml").write_text(
            "services:\n"
            f"  web:\n    image: {I386_IMAGE}\n    pull_policy: never\n    command: [httpd, -f, -p, '80', -h, /www]\n"
            f"  client:\n    image: {I386_IMAGE}\n    pull_policy: never\n    command: [sleep, '300']\n    depends_on: [web]\n"
        )
        compose = ["compose", "--project-directory", "/srv/compose", "--project-name", "dock32"]
        sandbox.docker(*compose, "up", "--detach")
        try:
            running = sandbox.docker(*compose, "ps", "--services", "--status", "running").stdout.split()
            assert sorted(running) == ["client", "web"], running
            out = _retry(lambda: sandbox.docker(*compose, "exec", "-T", "client", "wget", "-qO-", "http://web/").stdout)
            assert out == WEB_PAGE, out
        finally:
            sandbox.docker(*compose, "down", "--timeout", "1")
        left = sandbox.docker("ps", "--all", "--quiet", "--filter", "label=com.docker.compose.project=dock32").stdout.split()
        assert left == [], left
        return "two services up, one reaches the other by name, down removes both"

    def exec_enters_container() -> str:
        sandbox.docker("run", "-d", "--name", "dock32-exec", I386_IMAGE, "sleep", "300")
        try:
            # Only the image has /www: a command run anywhere else finds no page.
            page = sandbox.docker("exec", "dock32-exec", "cat", "/www/index.html", check=False)
            assert page.stdout == WEB_PAGE, f"docker exec ran outside the container's file system: {(page.stderr or page.stdout).strip()}"
            return "docker exec runs inside the container's file system"
        finally:
            sandbox.docker("rm", "-f", "dock32-exec", check=False)

    def amd64_default_seccomp() -> str:
        sandbox.docker("import", "--platform", "linux/amd64", "-", AMD64_IMAGE, stdin=busybox_rootfs(amd64_busybox(scratch, log)))
        result = sandbox.docker("run", "--rm", AMD64_IMAGE, "grep", "Seccomp:", "/proc/self/status", check=False)
        assert result.returncode == 0, f"exit {result.returncode} (159 is SIGSYS: the seccomp filter lacks x86_64)"
        assert result.stdout.split() == ["Seccomp:", "2"], result.stdout
        blocked = sandbox.docker("run", "--rm", AMD64_IMAGE, "/bin/busybox", "linux32", "-R", "/bin/true", check=False)
        assert blocked.returncode != 0, "personality(ADDR_NO_RANDOMIZE) succeeded in the amd64 container"
        return "amd64 busybox runs under the default profile; its filter still refuses what it should"

    def amd64_only_image() -> str:
        """An index with one linux/amd64 entry is pulled and run without --platform; from an index with both, a 386
        daemon takes 386 and an amd64 (multiarch64) one amd64."""
        if build_machine_arch() is not Arch.AMD64:
            raise Skipped("this kernel does not run x86_64 programs")
        registry = "127.0.0.1:5000/dock32"
        sandbox.docker("tag", AMD64_IMAGE, f"{registry}/busybox:amd64")
        sandbox.docker("push", "--quiet", f"{registry}/busybox:amd64")
        sandbox.docker("tag", I386_IMAGE, f"{registry}/busybox:i386")
        sandbox.docker("push", "--quiet", f"{registry}/busybox:i386")
        sandbox.docker("manifest", "create", "--insecure", f"{registry}/amd64-only:latest", f"{registry}/busybox:amd64")
        sandbox.docker("manifest", "push", "--insecure", f"{registry}/amd64-only:latest")
        sandbox.docker("manifest", "create", "--insecure", f"{registry}/both:latest", f"{registry}/busybox:amd64", f"{registry}/busybox:i386")
        sandbox.docker("manifest", "push", "--insecure", f"{registry}/both:latest")
        out = sandbox.docker("run", "--rm", f"{registry}/amd64-only:latest", "echo", "amd64 only, pulled").stdout.strip()
        assert out == "amd64 only, pulled", out
        sandbox.docker("pull", "--quiet", f"{registry}/both:latest")
        arch = sandbox.docker("image", "inspect", "--format", "{{.Architecture}}", f"{registry}/both:latest").stdout.strip()
        assert arch == goarch, f"an index with linux/386 and linux/amd64 gave {arch} to a {goarch} daemon"
        return f"amd64-only index pulled and run without --platform; an index with both gives {goarch}"

    def upgrade_then_purge() -> str:
        """A --restart=always container runs again after an upgrade to the next Debian revision of these
        packages (the same binaries, repacked) and the daemons' restart; then purge removes every file."""
        names = [p.name for p in packages]
        # --stop-timeout: busybox sleep as PID 1 ignores SIGTERM, and each daemon stop would wait 10 s for it.
        sandbox.docker("run", "-d", "--restart=always", "--stop-timeout=1", "--name", "dock32-upgrade", I386_IMAGE, "sleep", "3600")
        first_start = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-upgrade").stdout.strip()
        # zstd: this repack is only installed here, and packs in seconds (Debian 12's dpkg reads it).
        following = dataclasses.replace(config.packaging, revision=config.packaging.revision + 1, compression="zstd", gpg_key=None)
        next_layout = dataclasses.replace(layout, dist_root=sandbox.root / "srv" / "dock32-next")
        with contextlib.redirect_stderr(io.StringIO()):  # the zstd compatibility warning is for users' packages
            for package in packages:
                build_deb(package, config, following, next_layout)
        write_repository(packages, config, following, next_layout)
        (sandbox.root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text(f"deb [trusted=yes] file:/srv/dock32-next/{config.target} ./\n")
        # Only our source: the namespace has no network for the Debian archive's.
        only_ours = ["-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/dock32.list", "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0"]
        sandbox.exec(["apt-get", "update", "-q", *only_ours])
        sandbox.exec(["apt-get", "install", "-y", "-q", "--only-upgrade", *names])
        installed = sandbox.exec(["dpkg-query", "-W", "-f=${Version}\\n", *names]).stdout.split()
        expected = [package_version(p, config, following) for p in packages]
        assert sorted(installed) == sorted(expected), f"after the upgrade: {installed}, expected {expected}"
        # On a machine with an init system, the postinst's `invoke-rc.d docker restart` does this.
        sandbox.restart_daemons()
        _retry(lambda: _expect(sandbox.docker("inspect", "-f", "{{.State.Running}}", "dock32-upgrade").stdout.strip(), "true"), attempts=30)
        restarted = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-upgrade").stdout.strip()
        assert restarted != first_start, "the container was never stopped: the daemons' restart did not happen"
        files = [f for f in sandbox.exec(["dpkg", "-L", *names]).stdout.splitlines() if f.startswith("/")]
        sandbox.exec(["sh", "/run/dock32/daemons", "stop"], pid_namespace=True)
        sandbox.exec(["apt-get", "purge", "-y", "-q", *names])
        # Folders may stay (and /lib is the root's own link to usr/lib); files and links to files may not.
        paths = [sandbox.root / f.lstrip("/") for f in files]
        left = [f for f, p in zip(files, paths, strict=True) if p.is_file() or (p.is_symlink() and not p.is_dir())]
        assert left == [], f"purge left {left[:5]}"
        return f"{len(names)} packages upgraded to revision {following.revision}, the container ran again; purge removed {len(files)} paths"

    def no_sse_outside_runtime_checks() -> str:
        """On CPUs without SSE2 any SSE instruction is a SIGILL: the Go code of every Go program has none, except
        where Go's runtime checks the CPU first. Programs linked with -s (containerd, the plugins) are read with
        Go's own function table. docker-init is C: its flags are checked where it is compiled (tests)."""
        manifest = json.loads(layout.manifest.read_text(encoding="utf-8"))
        go = ResolvedToolchain.from_file(layout.toolchain_record).go
        go_programs = sorted(name for name, entry in manifest["binaries"].items() if entry.get("go_version_m"))
        found = {name: unexpected_go_sse(layout.binary(name), go, scratch / "tools") for name in go_programs}
        bad = {name: functions[:3] for name, functions in found.items() if functions}
        assert not bad, f"SSE in Go code of a softfloat build: {bad}"
        return f"{len(go_programs)} Go programs: SSE only in the runtime's CPU-checked functions"

    return [
        (f"docker version: client and server linux/{goarch}", version),
        ("docker info", info),
        ("containerd and runc are the pinned builds", runtimes),
        ("containerd runs with the packaged config", containerd_config),
        ("run an i386 image", run_i386),
        ("--init runs docker-init as PID 1", init),
        ("i386 container has seccomp on", seccomp_i386),
        ("bridge network: container reaches container by name", network_by_name),
        ("published port via docker-proxy", published_port),
        ("SCTP port published", sctp_port),
        ("docker build through BuildKit", build),
        ("registry round-trip on loopback", registry_round_trip),
        ("docker compose up and down", compose),
        ("docker exec enters the container", exec_enters_container),
        ("amd64 image under the default seccomp profile", amd64_default_seccomp),
        ("amd64-only image pulled without --platform", amd64_only_image),
        *([("softfloat: no SSE outside the runtime's CPU checks", no_sse_outside_runtime_checks)] if config.flavour.checks_no_sse else []),
        # Last: it purges the packages.
        ("upgrade with a --restart=always container, then purge", upgrade_then_purge),
    ]


def kernel_has_sctp() -> bool:
    """Whether this kernel can make SCTP sockets (a module it cannot load counts as no)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


def run_scenario(name: str, scenario: Callable[[], str], known_bugs: dict[str, str] = KNOWN_BUGS) -> ScenarioResult:
    """Run one scenario and classify it. Anything but a failed check or a skip (a crash, Ctrl-C) propagates,
    so that the caller's cleanup runs and the run stops."""
    start = time.monotonic()
    try:
        status, detail = "pass", scenario()
    except Skipped as exc:
        status, detail = "skipped", str(exc)
    except (AssertionError, VerifyError, CommandFailed, subprocess.TimeoutExpired) as exc:
        status, detail = "FAIL", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if name in known_bugs and status == "FAIL":
        status, detail = "known-bug", f"{known_bugs[name]} ({detail})"
    elif name in known_bugs and status == "pass":
        status, detail = "FIXED?", "passes: remove it from KNOWN_BUGS"
    return ScenarioResult(name, status, detail, round(time.monotonic() - start, 1))


def _expect(actual: str, expected: str) -> str:
    assert actual == expected, f"{actual!r}, expected {expected!r}"
    return actual


def _retry(action: Callable[[], str], attempts: int = 10) -> str:
    """A freshly started server may need a moment before it answers."""
    for attempt in range(attempts):
        try:
            return action()
        except AssertionError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def installed_root(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, scratch: Path, log: Path) -> Iterator[Path]:
    clean = ensure_root(config.packaging.distro, config.deb_arch, settings, log)
    with overlay(clean, scratch / "overlay", log) as root:
        shutil.copytree(layout.dist_dir, root / "srv" / "dock32")
        (root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text("deb [trusted=yes] file:/srv/dock32 ./\n")
        chroot_run(root, ["apt-get", "update", "-q"], log, "apt-get update")
        names = [p.name for p in packages]
        # busybox-static makes the test images; docker-registry is the registry of the round-trip.
        chroot_run(root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *names, "busybox-static", "docker-registry"], log, "apt-get install")
        # Debian's own config asks for htpasswd logins; the round-trip needs none.
        (root / "etc" / "dock32-registry.yml").write_text(REGISTRY_CONFIG, encoding="utf-8")
        yield root


def verify(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout) -> None:
    log = layout.log("verify")
    log.unlink(missing_ok=True)
    results: list[ScenarioResult] = []
    daemon_logs: dict[str, str] = {}
    layout.target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="verify.", suffix=".partial", dir=layout.target_dir) as scratch_name:
        scratch = Path(scratch_name)
        data = scratch / "data"
        data.mkdir()
        with installed_root(config, packages, settings, layout, scratch, log) as root:
            sandbox = Sandbox(root, data, log)
            try:
                sandbox.start()
                for name, scenario in scenarios(config, packages, layout, sandbox, scratch, log):
                    result = run_scenario(name, scenario)
                    results.append(result)
                    print(f"{result.status:>7}  {name}: {result.detail}", flush=True)
            finally:
                sandbox.stop()
                daemon_logs = {name: sandbox.tail(name, 40) for name in ("dockerd.log", "containerd.log")}
    width = max(len(r.name) for r in results) if results else 0
    print(f"\n{'scenario':<{width}}  result   seconds")
    for r in results:
        print(f"{r.name:<{width}}  {r.status:<7} {r.seconds:7.1f}")
    report = {"target": config.target, "scenarios": [asdict(r) for r in results], "daemon_logs": daemon_logs}
    atomic.write_text(layout.target_dir / "verify.json", json.dumps(report, indent=2) + "\n")
    failed = [r.name for r in results if r.status in ("FAIL", "FIXED?")]
    if failed:
        raise VerifyError(
            f"{len(failed)} of {len(results)} scenarios failed: {', '.join(failed)}",
            hint=f"details in {layout.target_dir / 'verify.json'} and {log}",
        )
