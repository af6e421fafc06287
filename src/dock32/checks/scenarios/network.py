"""Scenarios on container networking: a user-defined bridge, published TCP and SCTP ports."""

from __future__ import annotations

from dock32.checks.scenarios.check import expect_equal, retry
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE, WEB_PAGE


def network_by_name(context: Context) -> str:
    sandbox = context.sandbox
    sandbox.docker("network", "create", "dock32-net")
    try:
        sandbox.docker("run", "-d", "--name", "dock32-web", "--network", "dock32-net", I386_IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
        out = retry(lambda: sandbox.docker("run", "--rm", "--network", "dock32-net", I386_IMAGE, "wget", "-qO-", "http://dock32-web/").stdout)
        expect_equal(out, WEB_PAGE, "http://dock32-web/")
        return "wget http://dock32-web/ from another container"
    finally:
        sandbox.docker("rm", "-f", "dock32-web", check=False)
        sandbox.docker("network", "rm", "dock32-net", check=False)


def published_port(context: Context) -> str:
    sandbox = context.sandbox
    sandbox.docker("run", "-d", "--name", "dock32-pub", "-p", "127.0.0.1:18080:80", I386_IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        out = retry(lambda: sandbox.exec(["/bin/busybox", "wget", "-qO-", "http://127.0.0.1:18080/"]).stdout)
        expect_equal(out, WEB_PAGE, "http://127.0.0.1:18080/")
        return "127.0.0.1:18080 answers from the host side"
    finally:
        sandbox.docker("rm", "-f", "dock32-pub", check=False)


def sctp_port(context: Context) -> str:
    """Before patches/engine/0003-sctp-on-386.patch, the port binding failed with EFAULT (moby's socketcall)
    or "SCTP is unsupported on linux/386" (the sctp library), so the container did not start."""
    sandbox = context.sandbox
    sandbox.docker("run", "-d", "--name", "dock32-sctp", "-p", "127.0.0.1:19132:9999/sctp", I386_IMAGE, "sleep", "300")
    try:
        mapped = sandbox.docker("port", "dock32-sctp", "9999/sctp").stdout.strip()
        expect_equal(mapped, "127.0.0.1:19132", "docker port")
        return "a container publishing 9999/sctp on 127.0.0.1:19132 starts"
    finally:
        sandbox.docker("rm", "-f", "dock32-sctp", check=False)


NETWORK_BY_NAME = Scenario("bridge network: container reaches container by name", network_by_name)
PUBLISHED_PORT = Scenario("published port via docker-proxy", published_port)
SCTP_PORT = Scenario("SCTP port published", sctp_port, needs=(Need.SCTP,))
