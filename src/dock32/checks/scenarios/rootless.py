"""The rootless scenario: an unprivileged user of the installed root starts its own daemon with
docker-ce-rootless-extras' dockerd-rootless.sh, runs the i386 image, publishes a port and builds an image.

What the kernel or the sandbox cannot give a rootless daemon (unprivileged user namespaces, a setuid newuidmap, a
TAP device) skips it, naming the missing thing (missing_for_rootless)."""

from __future__ import annotations

import functools
import re
import shlex
import stat
import subprocess
import time
from dataclasses import dataclass

from dock32.checks.scenarios.check import Skipped, expect, expect_equal, fail, retry
from dock32.checks.scenarios.machine import Machine, Need
from dock32.checks.scenarios.sandbox import DAEMON_START_SECONDS
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE, WEB_PAGE

PACKAGE = "docker-ce-rootless-extras"
USER = "dock32-rootless"
# The rootless daemon's own folder in the machine's data folder (Machine.data_dir): its log, pid file and data root.
FOLDER = "rootless"
PORT = 18081  # not the rootful published-port scenario's 18080
STOP_SECONDS = 30
# The kernel settings that allow or forbid unprivileged user namespaces: (file, the value that forbids them, the reason).
USERNS_SWITCHES = (
    ("/proc/sys/kernel/unprivileged_userns_clone", "0", "unprivileged user namespaces are turned off (kernel.unprivileged_userns_clone = 0)"),
    ("/proc/sys/user/max_user_namespaces", "0", "user namespaces are turned off (user.max_user_namespaces = 0)"),
    (
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1",
        "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1) and rootlesskit has no profile",
    ),
)
ID_MAPPERS = ("/usr/bin/newuidmap", "/usr/bin/newgidmap")
TUN = "/dev/net/tun"


@dataclass(frozen=True)
class RootlessFacts:
    """What a rootless daemon needs to know of the kernel and the sandbox, as read there."""

    switches: dict[str, str]  # file of USERNS_SWITCHES -> its value, for the files that exist
    id_mappers: dict[str, tuple[int, int] | None]  # newuidmap, newgidmap -> (st_mode, st_uid), None if missing
    root_nosuid: bool  # the installed root is mounted nosuid, so no setuid program gains anything
    tun: tuple[int, int, int] | None  # /dev/net/tun's st_mode, major and minor; None if missing
    # /proc/modules exists: the kernel loads modules (one without lists none, having everything it has built in).
    loadable_modules: bool = True


def missing_for_rootless(facts: RootlessFacts) -> str | None:
    """Why a rootless daemon cannot start here, naming the missing thing; None if nothing is missing."""
    for path, forbidding, reason in USERNS_SWITCHES:
        if facts.switches.get(path, "").strip() == forbidding:
            return reason
    for path, found in facts.id_mappers.items():
        if found is None:
            return f"no {path} (package uidmap): rootlesskit maps the user's subordinate ids with it"
        mode, owner = found
        if not (mode & stat.S_ISUID and owner == 0):
            return f"{path} is not setuid root (mode {stat.filemode(mode)}, owner uid {owner}): it cannot write another user's id map"
    if facts.root_nosuid:
        return "the installed root is mounted nosuid, so newuidmap and newgidmap cannot act as root"
    if facts.tun is None or not stat.S_ISCHR(facts.tun[0]):
        return f"no {TUN}: rootlesskit's network drivers (slirp4netns, gvisor-tap-vsock) need a TAP device"
    return None


def tun_needs_opening_up(facts: RootlessFacts) -> bool:
    """Whether /dev/net/tun is closed to other users. udev makes it 0666 on Debian; the user namespace's root is
    "other" to the device's owner, so slirp4netns could not open it."""
    return facts.tun is not None and facts.tun[0] & 0o006 != 0o006


def setuptool_check_flags(facts: RootlessFacts) -> list[str]:
    """`dockerd-rootless-setuptool.sh check` looks for nf_tables in /proc/modules or in the root's
    /lib/modules/<release>/modules.builtin; a kernel without module support has neither (and the installed root
    has no kernel), so there its iptables check is left out (--skip-iptables), which the daemon's start then makes."""
    return [] if facts.loadable_modules else ["--skip-iptables"]


def network_driver(log: str) -> str | None:
    """The --net= that dockerd-rootless.sh (which runs under `set -x`) chose, from its log."""
    found = re.findall(r"--net=(\S+)", log)
    return found[-1] if found else None


@dataclass(frozen=True)
class RootlessUser:
    """The unprivileged user and how its commands run: as its uid and gids, with its own environment only."""

    name: str
    uid: int
    gid: int

    @property
    def home(self) -> str:
        return f"/home/{self.name}"

    @property
    def runtime_dir(self) -> str:
        return f"/run/user/{self.uid}"

    def argv(self, command: list[str], settings: tuple[tuple[str, str], ...] = ()) -> list[str]:
        """command as the user; settings: more environment (dockerd-rootless.sh's DOCKERD_ROOTLESS_*)."""
        env = {
            "HOME": self.home,
            "USER": self.name,
            "LOGNAME": self.name,
            # /usr/sbin for iptables, which the rootless dockerd runs in its namespace (the setup tool's unit adds it too).
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "XDG_RUNTIME_DIR": self.runtime_dir,
            "DOCKER_HOST": f"unix://{self.runtime_dir}/docker.sock",
            "LC_ALL": "C",
            **dict(settings),
        }
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]


def read_facts(sandbox: Machine) -> RootlessFacts:
    """The facts, read in the sandbox: its / is the installed root, its /proc and /dev the kernel's."""
    switches = {}
    for path, _, _ in USERNS_SWITCHES:
        found = sandbox.exec(["cat", path], check=False)
        if found.returncode == 0:
            switches[path] = found.stdout
    id_mappers: dict[str, tuple[int, int] | None] = {}
    for path in ID_MAPPERS:
        found = sandbox.exec(["stat", "-c", "%f %u", path], check=False)
        mode, owner = found.stdout.split() if found.returncode == 0 else ("", "")
        id_mappers[path] = (int(mode, 16), int(owner)) if mode else None
    # mountinfo's fields: id, parent, major:minor, root, mount point, options, ... In the PID namespace: the sandbox's
    # /proc knows no process outside it, so /proc/self would name none.
    mounts = [line.split() for line in sandbox.exec_in_pid_namespace(["cat", "/proc/self/mountinfo"]).stdout.splitlines()]
    root_options = [fields[5] for fields in mounts if len(fields) > 5 and fields[4] == "/"]
    tun = sandbox.exec(["stat", "-L", "-c", "%f %t %T", TUN], check=False)
    tun_mode, tun_major, tun_minor = (int(field, 16) for field in tun.stdout.split()) if tun.returncode == 0 else (-1, 0, 0)
    return RootlessFacts(
        switches=switches,
        id_mappers=id_mappers,
        root_nosuid=bool(root_options) and "nosuid" in root_options[-1].split(","),
        tun=(tun_mode, tun_major, tun_minor) if tun_mode >= 0 else None,
        loadable_modules=sandbox.exec(["test", "-e", "/proc/modules"], check=False).returncode == 0,
    )


def add_user(sandbox: Machine) -> RootlessUser:
    """USER, with a home and subordinate ids (Debian's useradd gives 65536 of each where /etc/subuid exists)."""
    if sandbox.exec(["id", "-u", USER], check=False).returncode != 0:
        sandbox.exec(["useradd", "--create-home", "--user-group", "--shell", "/bin/sh", USER])
    user = RootlessUser(USER, int(sandbox.exec(["id", "-u", USER]).stdout), int(sandbox.exec(["id", "-g", USER]).stdout))
    for table, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        if sandbox.exec(["grep", "-q", f"^{USER}:", table], check=False).returncode != 0:
            sandbox.exec(["usermod", flag, "100000-165535", USER])
    return user


def prepare_user_folders(sandbox: Machine, user: RootlessUser) -> None:
    """XDG_RUNTIME_DIR as pam_systemd would make it, and the data root on a real file system: rootless overlay2, like
    the rootful daemon's, cannot stack on the overlay that the installed root is."""
    data = f"{sandbox.data_dir}/{FOLDER}/data"
    data_root = f"{user.home}/.local/share/docker"
    owned = ["-o", str(user.uid), "-g", str(user.gid)]
    # Every mode given: install -d makes the folders it is not given with dock32's umask, which may be 0077.
    sandbox.exec(["install", "-d", "-m", "0755", "/run/user", f"{sandbox.data_dir}/{FOLDER}"])
    sandbox.exec(["install", "-d", "-m", "0700", *owned, user.runtime_dir, data])
    sandbox.exec(["install", "-d", "-m", "0755", *owned, f"{user.home}/.local", f"{user.home}/.local/share", data_root])
    if sandbox.exec(["mountpoint", "-q", data_root], check=False).returncode != 0:
        sandbox.exec(["mount", "--bind", data, data_root])


def open_up_tun(sandbox: Machine, major: int, minor: int) -> None:
    """A /dev/net/tun that every user can open, as udev makes it, for the machine's mount namespace alone: a node of
    the same device, on a small tmpfs of its own, bound over it there. The tmpfs is this node's own since /run may be
    mounted nodev (systemd-nspawn mounts it so), and a node on a nodev mount cannot be opened. The machine's /dev is
    left as it is (the sandbox's is this machine's own)."""
    folder = "/run/dock32-dev"
    node = f"{folder}/tun"
    sandbox.exec(["mkdir", "-p", folder])
    sandbox.exec(["sh", "-c", f"mountpoint -q {folder} || mount -t tmpfs -o mode=0755,size=64k dock32-dev {folder}"])
    sandbox.exec(["rm", "-f", node])
    sandbox.exec(["mknod", node, "c", str(major), str(minor)])
    sandbox.exec(["chmod", "0666", node])  # not mknod -m: i386 glibc sets that mode through /proc/self, not this /proc's
    sandbox.exec(["mount", "--bind", node, TUN])


class RootlessDaemon:
    """dockerd-rootless.sh started as the user, in the sandbox's PID namespace so that it dies with the sandbox."""

    def __init__(self, sandbox: Machine, user: RootlessUser, settings: tuple[tuple[str, str], ...]) -> None:
        self.sandbox = sandbox
        self.user = user
        self.settings = settings
        self.log = f"{sandbox.data_dir}/{FOLDER}/dockerd-rootless.log"
        self.pid_file = f"{sandbox.data_dir}/{FOLDER}/rootlesskit.pid"

    def start(self) -> None:
        # The redirections are made by root's shell; the script then execs rootlesskit, whose pid $! is. The umask a
        # login gives (login.defs), not dock32's.
        command = shlex.join(self.user.argv(["dockerd-rootless.sh"], self.settings))
        self.sandbox.exec_in_pid_namespace(["sh", "-c", f"umask 0022; {command} >> {self.log} 2>&1 < /dev/null & echo $! > {self.pid_file}"])
        self.wait_until_it_answers("dockerd-rootless.sh exited")

    def wait_until_it_answers(self, gone: str) -> None:
        """Until the user's daemon answers; fail, saying `gone`, if it stops running first."""
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while self.docker("version", check=False).returncode != 0:
            if not self.running():
                fail(f"{gone}: {self.tail(6)}")
            if time.monotonic() > deadline:
                fail(f"the rootless dockerd did not answer within {DAEMON_START_SECONDS} s: {self.tail(6)}")
            time.sleep(1)

    def running(self) -> bool:
        """rootlesskit is there and not a zombie (which the namespace's first process reaps within a second)."""
        alive = f"grep -qs '^State:[[:space:]]*[RSDT]' \"/proc/$(cat {self.pid_file})/status\""
        return self.sandbox.exec_in_pid_namespace(["sh", "-c", alive], check=False, cleanup=True).returncode == 0

    def stop(self) -> None:
        """SIGTERM to rootlesskit, which passes it on to dockerd; SIGKILL if they have not ended in STOP_SECONDS."""
        self.sandbox.exec_in_pid_namespace(["sh", "-c", f"kill -TERM \"$(cat {self.pid_file})\""], check=False, cleanup=True)
        deadline = time.monotonic() + STOP_SECONDS
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.running():
            self.sandbox.exec_in_pid_namespace(["sh", "-c", f"kill -KILL \"$(cat {self.pid_file})\""], check=False, cleanup=True)

    def log_tail(self, lines: int) -> str:
        return self.sandbox.exec(["tail", "-n", str(lines), self.log], check=False, cleanup=True).stdout

    def tail(self, lines: int) -> str:
        return " | ".join(line.strip() for line in self.log_tail(lines).splitlines())

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sandbox.exec(self.user.argv(["docker", *args]), check=check)


class UserServiceDaemon(RootlessDaemon):
    """Under systemd, as its users run it: lingering gives the user a systemd of its own (user@UID.service, with the
    cgroup delegated to the user that a rootless dockerd needs on cgroup v2), and `dockerd-rootless-setuptool.sh
    install` writes the user's docker.service and starts it there. Started from a shell instead, dockerd finds no
    cgroup of the user's and every container fails."""

    @property
    def override(self) -> str:
        return f"{self.user.home}/.config/systemd/user/docker.service.d/override.conf"

    def setuptool_flags(self) -> list[str]:
        """As setuptool_check_flags: install and uninstall check the requirements first, nf_tables among them, which
        they cannot find where the kernel loads no modules."""
        no_modules = self.sandbox.exec(["test", "-e", "/proc/modules"], check=False, cleanup=True).returncode != 0
        return ["--skip-iptables"] if no_modules else []

    def as_user(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        bus = (("DBUS_SESSION_BUS_ADDRESS", f"unix:path={self.user.runtime_dir}/bus"),)
        return self.sandbox.exec(self.user.argv(argv, bus), check=check)

    def start(self) -> None:
        self.sandbox.exec(["loginctl", "enable-linger", self.user.name])
        # logind starts user@UID.service, whose dbus (dbus-user-session) makes the bus that systemctl --user talks to.
        retry(lambda: self.sandbox.exec(["test", "-S", f"{self.user.runtime_dir}/bus"]), attempts=60)
        # The network driver to ask for, as dockerd-rootless.sh's own header tells users to set it under systemd.
        if self.settings:
            lines = "".join(f'Environment="{key}={value}"\n' for key, value in self.settings)
            self.sandbox.write_file(self.override, f"[Service]\n{lines}".encode())
            self.sandbox.exec(["chown", "-R", f"{self.user.uid}:{self.user.gid}", f"{self.user.home}/.config"])
        self.as_user(["dockerd-rootless-setuptool.sh", "install", *self.setuptool_flags()])
        self.wait_until_it_answers("the user's docker.service is not running")

    def running(self) -> bool:
        return self.as_user(["systemctl", "--user", "is-active", "--quiet", "docker.service"], check=False).returncode == 0

    def stop(self) -> None:
        """uninstall stops and removes the user's docker.service; then the user's systemd goes too."""
        self.as_user(["dockerd-rootless-setuptool.sh", "uninstall", *self.setuptool_flags()], check=False)
        self.sandbox.exec(["rm", "-f", self.override], check=False, cleanup=True)
        self.sandbox.exec(["loginctl", "disable-linger", self.user.name], check=False, cleanup=True)
        self.sandbox.exec(["systemctl", "stop", f"user@{self.user.uid}.service"], check=False, cleanup=True)

    def log_tail(self, lines: int) -> str:
        return self.sandbox.exec(
            ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), f"_UID={self.user.uid}", "_SYSTEMD_USER_UNIT=docker.service"], check=False, cleanup=True
        ).stdout


def daemon_for(sandbox: Machine, user: RootlessUser, settings: tuple[tuple[str, str], ...]) -> RootlessDaemon:
    """The user's daemon as users start it on this machine: their own systemd's docker.service where systemd runs,
    else dockerd-rootless.sh by hand."""
    return (UserServiceDaemon if Need.SYSTEMD in sandbox.offers() else RootlessDaemon)(sandbox, user, settings)


# dockerd-rootless.sh's own choice of network driver, and the one RootlessKit 3 has built in: the one a machine
# without slirp4netns and passt gets (docker-ce-packaging's 29.x packages recommend neither).
SCRIPTS_CHOICE = "slirp4netns"  # verify installs the package's Recommends, which the script prefers
BUILT_IN = "gvisor-tap-vsock"


def prepare(context: Context) -> tuple[RootlessUser, list[str]]:
    """The user, its folders and what the machine lacks made up for, after a check that nothing missing_for_rootless
    names is missing (else Skipped); and notes on what was made up for. Run again, it changes nothing more."""
    sandbox = context.sandbox
    if PACKAGE not in {p.name for p in context.packages}:
        raise Skipped(f"{PACKAGE} is not among this build's packages")
    facts = read_facts(sandbox)
    missing = missing_for_rootless(facts)
    if missing is not None:
        raise Skipped(missing)
    notes = []
    if facts.tun is not None and tun_needs_opening_up(facts):
        open_up_tun(sandbox, facts.tun[1], facts.tun[2])
        notes.append(f"{TUN} opened to all users in the sandbox, as udev makes it")
    if flags := setuptool_check_flags(facts):
        notes.append("the setup tool's iptables check left out: this kernel loads no modules")
    user = add_user(sandbox)
    prepare_user_folders(sandbox, user)
    check = sandbox.exec(user.argv(["dockerd-rootless-setuptool.sh", "check", *flags]), check=False)
    expect(check.returncode == 0, f"dockerd-rootless-setuptool.sh check: {(check.stderr + check.stdout).strip()[-400:]}")
    return user, notes


def rootless(context: Context, net: str | None) -> str:
    """net: the network driver to ask dockerd-rootless.sh for, or None for its own choice (SCRIPTS_CHOICE)."""
    sandbox = context.sandbox
    user, notes = prepare(context)

    # The i386 image, from the rootful daemon: saved into the root, where the user's client reads it.
    sandbox.exec(["install", "-d", "-m", "0755", f"/srv/{FOLDER}", f"/srv/{FOLDER}/context"])
    sandbox.docker("save", "-o", f"/srv/{FOLDER}/i386.tar", I386_IMAGE)
    sandbox.exec(["chmod", "0644", f"/srv/{FOLDER}/i386.tar"])
    sandbox.write_file(f"/srv/{FOLDER}/context/Dockerfile", f"FROM {I386_IMAGE}\nRUN echo built-rootless > /built\nCMD [\"cat\", \"/built\"]\n".encode())

    daemon = daemon_for(sandbox, user, (("DOCKERD_ROOTLESS_ROOTLESSKIT_NET", net),) if net else ())
    try:
        daemon.start()
        chosen = network_driver(daemon.log_tail(400))
        expect_equal(chosen, net or SCRIPTS_CHOICE, "rootlesskit's --net")
        security = daemon.docker("info", "--format", "{{json .SecurityOptions}}").stdout
        expect("name=rootless" in security, f"the user's daemon does not say it is rootless: {security.strip()}")
        driver = daemon.docker("info", "--format", "{{.Driver}}").stdout.strip()
        daemon.docker("load", "-i", f"/srv/{FOLDER}/i386.tar")
        arch = daemon.docker("image", "inspect", "--format", "{{.Architecture}}", I386_IMAGE).stdout.strip()
        expect_equal(arch, "386", "the loaded image's architecture")
        # In the user's namespaces, uid 0 is the user: the first line of the container's uid_map says so.
        uid_map = daemon.docker("run", "--rm", I386_IMAGE, "cat", "/proc/self/uid_map").stdout.split()
        expect_equal(uid_map[:3], ["0", str(user.uid), "1"], "uid_map in the rootless container")

        daemon.docker("run", "-d", "--name", "dock32-rootless-web", "-p", f"127.0.0.1:{PORT}:80", I386_IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
        page = retry(lambda: sandbox.exec(["/bin/busybox", "wget", "-qO-", f"http://127.0.0.1:{PORT}/"]).stdout)
        expect_equal(page, WEB_PAGE, f"http://127.0.0.1:{PORT}/ (published by the rootless daemon)")
        daemon.docker("rm", "-f", "dock32-rootless-web")

        # --no-cache: the scenario before may have built the same Dockerfile into this data root.
        daemon.docker("build", "--no-cache", "-t", "dock32/rootless-built", f"/srv/{FOLDER}/context")
        built = daemon.docker("run", "--rm", "dock32/rootless-built").stdout.strip()
        expect_equal(built, "built-rootless", "the image built by the rootless daemon")
    finally:
        daemon.stop()
    extra = f"; {'; '.join(notes)}" if notes else ""
    how = "the user's docker.service (setuptool install)" if isinstance(daemon, UserServiceDaemon) else "dockerd-rootless.sh"
    return f"{USER} (uid {user.uid}) through {how}, network {chosen}, {driver}: i386 container, 127.0.0.1:{PORT} published, image built{extra}"


ROOTLESS = Scenario("rootless: an unprivileged user's own daemon", functools.partial(rootless, net=None))
ROOTLESS_BUILT_IN_NETWORK = Scenario(f"rootless with RootlessKit's built-in network ({BUILT_IN})", functools.partial(rootless, net=BUILT_IN))
