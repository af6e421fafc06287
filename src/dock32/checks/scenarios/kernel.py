"""Scenarios only a real kernel booted for the run has: a --restart=always container runs again after the whole
machine reboots, and on a 32-bit kernel an amd64 image is refused, by pull and by run, with a message that says
why."""

from __future__ import annotations

import subprocess

from dock32.checks.scenarios.check import expect, expect_equal, fail, retry
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import AMD64_IMAGE, I386_IMAGE, amd64_busybox, busybox_rootfs

# What the kernel says of an amd64 program it cannot run (exit code 255 from runc, or 126), and what a seccomp
# filter without the program's syscall ABI does (SIGSYS: exit code 159): what a user must not be left with.
UNCLEAR = ("exec format error",)
SIGSYS_EXIT = 128 + 31


def restart_after_reboot(context: Context) -> str:
    """systemd starts containerd and dockerd at boot (the units the postinst enabled), and dockerd starts the
    container again."""
    machine = context.sandbox
    machine.docker("run", "-d", "--restart=always", "--stop-timeout=1", "--name", "dock32-reboot", I386_IMAGE, "sleep", "3600")
    try:
        first_start = machine.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-reboot").stdout.strip()
        boot = machine.reboot()
        active = machine.exec(["systemctl", "is-active", "containerd.service", "docker.service"], check=False).stdout.split()
        expect_equal(active, ["active", "active"], "containerd.service and docker.service after the reboot")
        retry(lambda: expect_equal(machine.docker("inspect", "-f", "{{.State.Running}}", "dock32-reboot").stdout.strip(), "true", "running"), attempts=60)
        started = machine.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-reboot").stdout.strip()
        expect(started != first_start, f"the container's start time did not change ({started}): it was never stopped")
        return f"after the reboot (boot {boot[:8]}) systemd started containerd and dockerd, and the container ran again"
    finally:
        machine.docker("rm", "-f", "dock32-reboot", check=False)


def amd64_image(context: Context) -> None:
    """AMD64_IMAGE, made from this build machine's amd64 busybox, unless an earlier scenario made it."""
    machine = context.sandbox
    if machine.docker("image", "inspect", "--format", "{{.Architecture}}", AMD64_IMAGE, check=False).stdout.strip() != "amd64":
        machine.docker("import", "--platform", "linux/amd64", "-", AMD64_IMAGE, stdin=busybox_rootfs(amd64_busybox(context.scratch, context.log)))


def refused_clearly(result: subprocess.CompletedProcess[str], what: str, names: str) -> str:
    """The last line of what docker said when it refused `what`, which must name `names` (a platform) and must not
    be the kernel's or seccomp's word."""
    said = (result.stderr + result.stdout).strip()
    last = said.splitlines()[-1] if said else ""
    if result.returncode == 0:
        fail(f"{what} succeeded on a kernel without x86_64: {last}")
    if result.returncode == SIGSYS_EXIT or any(words in said for words in UNCLEAR):
        fail(f"{what} was started and failed (exit {result.returncode}): {last}")
    expect(names in said, f"{what} failed (exit {result.returncode}) with a message that does not name {names}: {last}")
    return last


def amd64_index_pull_refused(context: Context) -> str:
    """An index with linux/amd64 only, pushed to the loopback registry, is not pulled: the amd64 fallback of
    patches/engine/0005 is for x86_64 kernels only."""
    machine = context.sandbox
    amd64_image(context)
    registry = "127.0.0.1:5000/dock32"
    machine.docker("tag", AMD64_IMAGE, f"{registry}/busybox:amd64")
    machine.docker("push", "--quiet", f"{registry}/busybox:amd64")
    machine.docker("manifest", "create", "--insecure", "--amend", f"{registry}/amd64-only:latest", f"{registry}/busybox:amd64")
    machine.docker("manifest", "push", "--insecure", f"{registry}/amd64-only:latest")
    machine.docker("rmi", f"{registry}/busybox:amd64")
    said = refused_clearly(machine.docker("pull", f"{registry}/amd64-only:latest", check=False), "docker pull of the amd64-only index", "linux/386")
    return f"docker pull: {said}"


def amd64_image_run_refused(context: Context) -> str:
    """An amd64 image that is already there (imported, loaded, pulled with --platform) is not started on a kernel
    that cannot run it."""
    machine = context.sandbox
    amd64_image(context)
    said = refused_clearly(machine.docker("run", "--rm", AMD64_IMAGE, "echo", "ran", check=False), "docker run of the amd64 image", "linux/amd64")
    return f"docker run: {said}"


RESTART_AFTER_REBOOT = Scenario("--restart=always container runs again after a reboot", restart_after_reboot, needs=(Need.REBOOT,))
# AMD64_BUSYBOX: the amd64 image is made from this build machine's amd64 busybox.
AMD64_INDEX_PULL_REFUSED = Scenario(
    "amd64-only index refused by pull on a 32-bit kernel", amd64_index_pull_refused, needs=(Need.NO_X86_64_KERNEL, Need.AMD64_BUSYBOX)
)
AMD64_IMAGE_RUN_REFUSED = Scenario(
    "amd64 image refused by run on a 32-bit kernel",
    amd64_image_run_refused,
    needs=(Need.NO_X86_64_KERNEL, Need.AMD64_BUSYBOX),
    known_bug=(
        "dockerd starts it: the CLI warns that linux/amd64 does not match linux/386, then the container fails with"
        " `exec format error` (exit 255); upstream does the same on every architecture, and dockerd has no check of"
        " the image's platform against what the kernel runs"
    ),
)
