"""Scenarios on how the services run: the shipped systemd units (enabled and active after the install, socket
activation, `systemctl restart`), the shipped /etc/init.d/docker and /etc/default/docker under sysvinit, and who may
use /run/docker.sock."""

from __future__ import annotations

from dock32.checks.scenarios.check import expect, expect_equal, fail, retry
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE

UNITS = ("containerd.service", "docker.socket", "docker.service")
OUTSIDER, MEMBER = "dock32-outsider", "dock32-member"


def units_enabled_and_active(context: Context) -> str:
    """What the postinst did through the real systemctl: every unit enabled and running, from the shipped files."""
    sandbox = context.sandbox
    enabled = sandbox.exec(["systemctl", "is-enabled", *UNITS], check=False).stdout.split()
    expect_equal(enabled, ["enabled"] * len(UNITS), f"systemctl is-enabled {' '.join(UNITS)}")
    active = sandbox.exec(["systemctl", "is-active", *UNITS], check=False).stdout.split()
    expect_equal(active, ["active"] * len(UNITS), f"systemctl is-active {' '.join(UNITS)}")
    for unit in UNITS:
        path = sandbox.exec(["systemctl", "show", "--property=FragmentPath", "--value", unit]).stdout.strip()
        expect_equal(path, f"/lib/systemd/system/{unit}", f"{unit}'s unit file")
    failed = sandbox.exec(["systemctl", "list-units", "--failed", "--plain", "--no-legend"]).stdout.strip()
    return f"{', '.join(UNITS)}: enabled and active; failed units: {failed.split()[0] if failed else 'none'}"


def socket_activation(context: Context) -> str:
    """With docker.service stopped, docker.socket still listens, and the first client starts dockerd again."""
    sandbox = context.sandbox
    sandbox.exec(["systemctl", "stop", "docker.service"])
    states = sandbox.exec(["systemctl", "is-active", "docker.service", "docker.socket"], check=False).stdout.split()
    expect_equal(states, ["inactive", "active"], "docker.service and docker.socket after stopping docker.service")
    out = sandbox.docker("run", "--rm", I386_IMAGE, "echo", "through the socket").stdout.strip()
    expect_equal(out, "through the socket", "docker run while docker.service was stopped")
    expect_equal(sandbox.exec(["systemctl", "is-active", "docker.service"], check=False).stdout.strip(), "active", "docker.service after the client came")
    return "docker.service stopped; docker run through docker.socket started it again"


def systemctl_restart(context: Context) -> str:
    return _restart_brings_back(context, ["systemctl", "restart", "docker.service"])


def init_script(context: Context) -> str:
    """/etc/init.d/docker status, stop, start and restart do what they say, and a --restart=always container comes
    back after the restart."""
    sandbox = context.sandbox
    script = "/etc/init.d/docker"
    expect_equal(sandbox.exec([script, "status"], check=False).returncode, 0, f"{script} status while running")
    sandbox.exec([script, "stop"])
    stopped = sandbox.exec([script, "status"], check=False).returncode
    expect(stopped != 0, f"{script} status says running after stop")
    expect(sandbox.docker("version", check=False).returncode != 0, f"dockerd still answers after {script} stop")
    sandbox.exec([script, "start"])
    retry(lambda: sandbox.docker("version"), attempts=30)
    restarted = _restart_brings_back(context, [script, "restart"])
    return f"status 0 running, {stopped} stopped; start answers again; {restarted}"


def docker_opts(context: Context) -> str:
    """DOCKER_OPTS in /etc/default/docker reaches dockerd: a label set there shows in docker info."""
    sandbox = context.sandbox
    defaults = "/etc/default/docker"
    shipped = sandbox.read_file(defaults)
    sandbox.write_file(defaults, shipped + b'DOCKER_OPTS="--label dock32.opts=honoured"\n')
    try:
        sandbox.exec(["/etc/init.d/docker", "restart"])
        labels = retry(lambda: sandbox.docker("info", "--format", "{{json .Labels}}").stdout.strip(), attempts=30)
        expect("dock32.opts=honoured" in labels, f"docker info labels {labels}, after DOCKER_OPTS set one in {defaults}")
    finally:
        sandbox.write_file(defaults, shipped)
        sandbox.exec(["/etc/init.d/docker", "restart"], check=False)
        retry(lambda: sandbox.docker("version"), attempts=30)
    return f"DOCKER_OPTS=\"--label dock32.opts=honoured\" in {defaults}: docker info shows the label"


def socket_permissions(context: Context) -> str:
    """/run/docker.sock is root:docker 0660: a user outside the docker group is refused, one added to it runs a
    container."""
    sandbox = context.sandbox
    owner = sandbox.exec(["stat", "-L", "-c", "%U:%G %a", "/run/docker.sock"]).stdout.strip()
    expect_equal(owner, "root:docker 660", "/run/docker.sock's owner and mode")
    for user in (OUTSIDER, MEMBER):
        sandbox.exec(["sh", "-c", f"id {user} >/dev/null 2>&1 || useradd --create-home {user}"])
    sandbox.exec(["usermod", "--append", "--groups", "docker", MEMBER])
    refused = sandbox.as_user(OUTSIDER, ["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    if refused.returncode == 0:
        fail(f"{OUTSIDER}, outside the docker group, reached dockerd: {refused.stdout.strip()}")
    expect("permission denied" in refused.stderr, f"{OUTSIDER} was refused, but not on the socket's permissions: {refused.stderr.strip()[-200:]}")
    out = sandbox.as_user(MEMBER, ["docker", "run", "--rm", I386_IMAGE, "echo", "member"]).stdout.strip()
    expect_equal(out, "member", f"docker run as {MEMBER}, in the docker group")
    return f"root:docker 0660: {OUTSIDER} refused (permission denied), {MEMBER} in the docker group runs a container"


def _restart_brings_back(context: Context, restart: list[str]) -> str:
    """A --restart=always container runs again after restart (a command that restarts dockerd)."""
    sandbox = context.sandbox
    name = "dock32-always"
    # --stop-timeout: busybox sleep as PID 1 ignores SIGTERM, and the daemon's stop would wait 10 s for it.
    sandbox.docker("run", "-d", "--restart=always", "--stop-timeout=1", "--name", name, I386_IMAGE, "sleep", "3600")
    try:
        before = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout.strip()
        sandbox.exec(restart)
        retry(lambda: expect_equal(sandbox.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip(), "true", "running"), attempts=30)
        after = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout.strip()
        expect(after != before, f"the container was never stopped: `{' '.join(restart)}` did not restart dockerd")
    finally:
        sandbox.docker("rm", "-f", name, check=False)
    return f"`{' '.join(restart)}` brought a --restart=always container back"


SYSTEMD_UNITS = Scenario("systemd: containerd.service, docker.socket, docker.service enabled and active", units_enabled_and_active, needs=(Need.SYSTEMD,))
SOCKET_ACTIVATION = Scenario("systemd: docker.socket starts a stopped docker.service", socket_activation, needs=(Need.SYSTEMD,))
SYSTEMCTL_RESTART = Scenario("systemd: systemctl restart docker brings back --restart=always", systemctl_restart, needs=(Need.SYSTEMD,))
INIT_SCRIPT = Scenario("sysvinit: /etc/init.d/docker status, stop, start, restart", init_script, needs=(Need.SYSVINIT,))
DOCKER_OPTS = Scenario("sysvinit: DOCKER_OPTS in /etc/default/docker is honoured", docker_opts, needs=(Need.SYSVINIT,))
SOCKET_PERMISSIONS = Scenario("/run/docker.sock refuses users outside the docker group", socket_permissions)
