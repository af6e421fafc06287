"""Scenarios on images: docker build through BuildKit, and a push/pull round-trip through a registry."""

from __future__ import annotations

from dock32.checks.scenarios.check import expect_equal, retry
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE


def build(context: Context) -> str:
    sandbox = context.sandbox
    sandbox.write_file("/srv/build-context/Dockerfile", f"FROM {I386_IMAGE}\nRUN echo built-by-buildkit > /built\nCMD [\"cat\", \"/built\"]\n".encode())
    sandbox.docker("build", "-t", "dock32/built", "/srv/build-context")
    out = sandbox.docker("run", "--rm", "dock32/built").stdout.strip()
    expect_equal(out, "built-by-buildkit", "the built image")
    return "docker build (BuildKit) FROM the i386 image"


def registry_round_trip(context: Context) -> str:
    sandbox = context.sandbox
    remote = "127.0.0.1:5000/dock32/busybox:i386"
    sandbox.docker("tag", I386_IMAGE, remote)
    retry(lambda: sandbox.docker("push", "--quiet", remote).stdout)
    sandbox.docker("rmi", remote)
    sandbox.docker("rmi", I386_IMAGE)
    sandbox.docker("pull", "--quiet", remote)
    out = sandbox.docker("run", "--rm", remote, "echo", "pulled back").stdout.strip()
    expect_equal(out, "pulled back", "the pulled image")
    sandbox.docker("tag", remote, I386_IMAGE)
    return "push to Debian's docker-registry on 127.0.0.1:5000, remove, pull, run"


BUILD = Scenario("docker build through BuildKit", build)
REGISTRY_ROUND_TRIP = Scenario("registry round-trip on loopback", registry_round_trip)
