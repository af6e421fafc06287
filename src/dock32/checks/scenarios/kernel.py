"""Scenarios only a real kernel booted for the run has: a --restart=always container runs again after the whole
machine reboots, and on a 32-bit kernel an amd64-only image is refused with a message that says why."""

from __future__ import annotations

from collections.abc import Sequence

from dock32.checks.scenarios import amd64, upgrade_purge
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


def amd64_image_refused(context: Context) -> str:
    """Run locally (imported for linux/amd64) and pulled from an index that has linux/amd64 only: either is refused
    with a message that names the platform, never left to the kernel (exec format error) or to seccomp (SIGSYS)."""
    machine = context.sandbox
    machine.docker("import", "--platform", "linux/amd64", "-", AMD64_IMAGE, stdin=busybox_rootfs(amd64_busybox(context.scratch, context.log)))
    local = machine.docker("run", "--rm", AMD64_IMAGE, "echo", "ran", check=False)
    said = (local.stderr + local.stdout).strip()
    if local.returncode == 0:
        fail(f"the amd64 image ran on a kernel without x86_64: {said}")
    if local.returncode == SIGSYS_EXIT or any(words in said for words in UNCLEAR):
        fail(f"the amd64 image was started and failed (exit {local.returncode}): {said.splitlines()[-1] if said else ''}")
    expect("linux/amd64" in said, f"exit {local.returncode}, and the message does not name linux/amd64: {said}")
    registry = "127.0.0.1:5000/dock32"
    machine.docker("tag", AMD64_IMAGE, f"{registry}/busybox:amd64")
    machine.docker("push", "--quiet", f"{registry}/busybox:amd64")
    machine.docker("manifest", "create", "--insecure", f"{registry}/amd64-only:latest", f"{registry}/busybox:amd64")
    machine.docker("manifest", "push", "--insecure", f"{registry}/amd64-only:latest")
    pulled = machine.docker("pull", f"{registry}/amd64-only:latest", check=False)
    pull_said = (pulled.stderr + pulled.stdout).strip()
    expect(pulled.returncode != 0, f"the amd64-only index was pulled on a kernel without x86_64: {pull_said}")
    expect("linux/386" in pull_said, f"the refused pull does not name the platform it looked for: {pull_said}")
    return f"run: {said.splitlines()[-1]}; pull: {pull_said.splitlines()[-1]}"


RESTART_AFTER_REBOOT = Scenario("--restart=always container runs again after a reboot", restart_after_reboot, needs=(Need.REBOOT,))
# AMD64_BUSYBOX: the amd64 image is made from this build machine's amd64 busybox.
AMD64_IMAGE_REFUSED = Scenario(
    "amd64-only image refused on a 32-bit kernel", amd64_image_refused, needs=(Need.NO_X86_64_KERNEL, Need.AMD64_BUSYBOX)
)


def with_kernel_scenarios(catalogue: Sequence[Scenario]) -> tuple[Scenario, ...]:
    """catalogue with this module's scenarios where they run: the amd64 refusal right after the amd64 scenarios, the
    reboot right before upgrade-then-purge (the last), so that everything before it ran on one boot and nothing after
    it needs what the purge removes. A catalogue that has them already is kept as it is."""
    if RESTART_AFTER_REBOOT in catalogue or AMD64_IMAGE_REFUSED in catalogue:
        return tuple(catalogue)
    scenarios = list(catalogue)
    scenarios.insert(scenarios.index(amd64.AMD64_ONLY_IMAGE) + 1, AMD64_IMAGE_REFUSED)
    scenarios.insert(scenarios.index(upgrade_purge.UPGRADE_THEN_PURGE), RESTART_AFTER_REBOOT)
    return tuple(scenarios)
