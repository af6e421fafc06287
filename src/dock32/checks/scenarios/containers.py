"""Scenarios on i386 containers: they run, with docker-init, under seccomp, and `docker exec` enters them."""

from __future__ import annotations

from dock32.checks.scenarios.check import expect, expect_equal
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE, WEB_PAGE, import_i386_image


def run_i386(context: Context) -> str:
    """Also makes I386_IMAGE, which the scenarios after it run."""
    import_i386_image(context.sandbox)
    out = context.sandbox.docker("run", "--rm", I386_IMAGE, "echo", "hello from i386").stdout.strip()
    return expect_equal(out, "hello from i386", "docker run")


def init(context: Context) -> str:
    out = context.sandbox.docker("run", "--rm", "--init", I386_IMAGE, "cat", "/proc/1/cmdline").stdout.replace("\0", " ").strip()
    expect("docker-init" in out, f"PID 1 is not docker-init: {out}")
    return f"PID 1: {out}"


def seccomp_i386(context: Context) -> str:
    sandbox = context.sandbox
    out = sandbox.docker("run", "--rm", I386_IMAGE, "grep", "Seccomp:", "/proc/self/status").stdout.split()
    expect_equal(out, ["Seccomp:", "2"], "/proc/self/status")
    # The default profile allows personality(2) only with a few values; ADDR_NO_RANDOMIZE is not one.
    probe = ["/bin/busybox", "linux32", "-R", "/bin/true"]
    blocked = sandbox.docker("run", "--rm", I386_IMAGE, *probe, check=False)
    expect(blocked.returncode != 0, "personality(ADDR_NO_RANDOMIZE) succeeded under the default profile")
    allowed = sandbox.docker("run", "--rm", "--security-opt", "seccomp=unconfined", I386_IMAGE, *probe, check=False)
    expect(allowed.returncode == 0, f"the probe fails even unconfined: {allowed.stderr.strip()}")
    return "Seccomp: 2; personality(ADDR_NO_RANDOMIZE) refused by the filter, allowed unconfined"


def exec_enters_container(context: Context) -> str:
    sandbox = context.sandbox
    sandbox.docker("run", "-d", "--name", "dock32-exec", I386_IMAGE, "sleep", "300")
    try:
        # Only the image has /www: a command run anywhere else finds no page.
        page = sandbox.docker("exec", "dock32-exec", "cat", "/www/index.html", check=False)
        expect(page.stdout == WEB_PAGE, f"docker exec ran outside the container's file system: {(page.stderr or page.stdout).strip()}")
        return "docker exec runs inside the container's file system"
    finally:
        sandbox.docker("rm", "-f", "dock32-exec", check=False)


RUN_I386 = Scenario("run an i386 image", run_i386)
INIT = Scenario("--init runs docker-init as PID 1", init)
SECCOMP_I386 = Scenario("i386 container has seccomp on", seccomp_i386)
EXEC_ENTERS_CONTAINER = Scenario("docker exec enters the container", exec_enters_container)
