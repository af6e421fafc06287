"""Scenarios on what a 32-bit container is told it runs on (patches/engine/0007-linux32-personality-29.patch): on an
x86_64 kernel, `uname -m` says i686 in an i386 container, in what `docker exec` runs in it and in the RUN steps of a
build, as on a 32-bit kernel; an amd64 container still says x86_64, and `"personality-linux32": false` in daemon.json
gives the old answer back."""

from __future__ import annotations

import json

from dock32.checks.scenarios.check import expect_equal, retry
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import AMD64_IMAGE, I386_IMAGE

DAEMON_JSON = "/etc/docker/daemon.json"
BUILD_CONTEXT = "/srv/uname-context"
BUILT = "dock32/uname-built"
EXEC_CONTAINER = "dock32-uname-exec"


def uname_in(context: Context, image: str) -> str:
    return context.sandbox.docker("run", "--rm", image, "uname", "-m").stdout.strip()


def uname_in_a_run_step(context: Context) -> str:
    """What `uname -m` wrote in a RUN step of a build FROM the i386 image."""
    sandbox = context.sandbox
    sandbox.write_file(f"{BUILD_CONTEXT}/Dockerfile", f'FROM {I386_IMAGE}\nRUN uname -m > /m\nCMD ["cat", "/m"]\n'.encode())
    # An amd64 (multiarch64) daemon builds for linux/amd64 unless told, and BuildKit runs each step for the build's
    # platform, whatever the base image's: a 32-bit build on it names its platform, as it would to pull i386 bases.
    platform = [] if context.goarch == "386" else ["--platform", "linux/386"]
    # --no-cache: a cached step would show what the step saw in an earlier build, under another daemon setting.
    sandbox.docker("build", "--no-cache", *platform, "-t", BUILT, BUILD_CONTEXT)
    return sandbox.docker("run", "--rm", BUILT).stdout.strip()


def run_i386(context: Context) -> str:
    expect_equal(uname_in(context, I386_IMAGE), "i686", "uname -m in the i386 container")
    return "docker run: uname -m says i686"


def build_run_step(context: Context) -> str:
    expect_equal(uname_in_a_run_step(context), "i686", "uname -m in a RUN step FROM the i386 image")
    return "RUN uname -m > /m wrote i686"


def exec_i386(context: Context) -> str:
    sandbox = context.sandbox
    sandbox.docker("run", "-d", "--name", EXEC_CONTAINER, I386_IMAGE, "sleep", "300")
    try:
        out = sandbox.docker("exec", EXEC_CONTAINER, "uname", "-m").stdout.strip()
        expect_equal(out, "i686", "uname -m in docker exec")
    finally:
        sandbox.docker("rm", "-f", EXEC_CONTAINER, check=False)
    return "docker exec: uname -m says i686"


def amd64_keeps_x86_64(context: Context) -> str:
    expect_equal(uname_in(context, AMD64_IMAGE), "x86_64", "uname -m in the amd64 container")
    return "the amd64 container says x86_64"


def off_switch(context: Context) -> str:
    """With "personality-linux32": false in daemon.json (kept beside whatever the file held), after a restart, the i386
    container and a RUN step say x86_64 again; with the file put back, i686."""
    sandbox = context.sandbox
    present = sandbox.exec(["test", "-e", DAEMON_JSON], check=False).returncode == 0
    shipped = sandbox.read_file(DAEMON_JSON) if present else None
    settings = json.loads(shipped) if shipped else {}
    sandbox.write_file(DAEMON_JSON, json.dumps({**settings, "personality-linux32": False}).encode())
    try:
        restart_dockerd(context)
        expect_equal(uname_in(context, I386_IMAGE), "x86_64", 'uname -m in the i386 container with "personality-linux32": false')
        expect_equal(uname_in_a_run_step(context), "x86_64", 'uname -m in a RUN step with "personality-linux32": false')
    finally:
        # Unchecked, so that a failed check is what the report names; a dockerd that does not come back still fails.
        if shipped is None:
            sandbox.exec(["rm", "-f", DAEMON_JSON], check=False)
        else:
            sandbox.write_file(DAEMON_JSON, shipped)
        restart_dockerd(context, check=False)
    expect_equal(uname_in(context, I386_IMAGE), "i686", f"uname -m in the i386 container once {DAEMON_JSON} was put back")
    return '"personality-linux32": false: x86_64 in the container and a RUN step; i686 again without it'


def restart_dockerd(context: Context, check: bool = True) -> None:
    """dockerd reads daemon.json when it starts. systemd's restart, as the units' scenarios use it (the scenario
    needs Need.SYSTEMD for it)."""
    # docker.service allows 3 starts in 60 s (StartLimitBurst=3); with the units' scenarios' restarts a minute
    # earlier, a fast run reached it (start-limit-hit, and dockerd stayed down for every scenario after). An
    # administrator's reset-failed clears the count.
    context.sandbox.exec(["systemctl", "reset-failed", "docker.service"], check=check)
    context.sandbox.exec(["systemctl", "restart", "docker.service"], check=check)
    retry(lambda: context.sandbox.docker("version"), attempts=30)


# Each needs an x86_64 kernel: on an i686 one every container already says i686, and there is nothing to change.
UNAME_I386 = Scenario("uname -m in an i386 container says i686", run_i386, needs=(Need.X86_64_KERNEL,))
UNAME_BUILD_RUN = Scenario("uname -m in a RUN step of an i386 build says i686", build_run_step, needs=(Need.X86_64_KERNEL,))
UNAME_EXEC = Scenario("uname -m in docker exec into an i386 container says i686", exec_i386, needs=(Need.X86_64_KERNEL,))
# AMD64_IMAGE is made by amd64.AMD64_DEFAULT_SECCOMP, which runs before; its busybox need first, as there.
UNAME_AMD64 = Scenario("uname -m in an amd64 container still says x86_64", amd64_keeps_x86_64, needs=(Need.AMD64_BUSYBOX, Need.X86_64_KERNEL))
# "systemd: " as the units' scenarios: it restarts dockerd through systemd.
PERSONALITY_OFF = Scenario(
    'systemd: daemon.json "personality-linux32": false gives x86_64 back', off_switch, needs=(Need.X86_64_KERNEL, Need.SYSTEMD)
)
