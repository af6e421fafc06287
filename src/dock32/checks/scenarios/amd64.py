"""Scenarios on amd64 images, on an x86_64 kernel: the default seccomp profile lets them run, and an image that
exists for amd64 only is pulled without --platform."""

from __future__ import annotations

from dock32.checks.scenarios.check import expect, expect_equal
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import AMD64_IMAGE, I386_IMAGE, amd64_busybox, busybox_rootfs


def amd64_default_seccomp(context: Context) -> str:
    """Also makes AMD64_IMAGE, which amd64_only_image pushes."""
    sandbox = context.sandbox
    sandbox.docker("import", "--platform", "linux/amd64", "-", AMD64_IMAGE, stdin=busybox_rootfs(amd64_busybox(context.scratch, context.log)))
    result = sandbox.docker("run", "--rm", AMD64_IMAGE, "grep", "Seccomp:", "/proc/self/status", check=False)
    expect(result.returncode == 0, f"exit {result.returncode} (159 is SIGSYS: the seccomp filter lacks x86_64)")
    expect_equal(result.stdout.split(), ["Seccomp:", "2"], "/proc/self/status")
    blocked = sandbox.docker("run", "--rm", AMD64_IMAGE, "/bin/busybox", "linux32", "-R", "/bin/true", check=False)
    expect(blocked.returncode != 0, "personality(ADDR_NO_RANDOMIZE) succeeded in the amd64 container")
    return "amd64 busybox runs under the default profile; its filter still refuses what it should"


def amd64_only_image(context: Context) -> str:
    """An index with one linux/amd64 entry is pulled and run without --platform; from an index with both, a 386
    daemon takes 386 and an amd64 (multiarch64) one amd64."""
    sandbox = context.sandbox
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
    expect_equal(out, "amd64 only, pulled", "the amd64-only image")
    sandbox.docker("pull", "--quiet", f"{registry}/both:latest")
    arch = sandbox.docker("image", "inspect", "--format", "{{.Architecture}}", f"{registry}/both:latest").stdout.strip()
    expect(arch == context.goarch, f"an index with linux/386 and linux/amd64 gave {arch} to a {context.goarch} daemon")
    return f"amd64-only index pulled and run without --platform; an index with both gives {context.goarch}"


# The busybox need first: its reason is the one this scenario has always given.
AMD64_DEFAULT_SECCOMP = Scenario("amd64 image under the default seccomp profile", amd64_default_seccomp, needs=(Need.AMD64_BUSYBOX, Need.X86_64_KERNEL))
# AMD64_BUSYBOX too: the image it pushes is the one amd64_default_seccomp makes.
AMD64_ONLY_IMAGE = Scenario("amd64-only image pulled without --platform", amd64_only_image, needs=(Need.X86_64_KERNEL, Need.AMD64_BUSYBOX))
