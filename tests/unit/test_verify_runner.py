"""How the verify runner classifies scenarios, and that a crash is never swallowed (so cleanup runs)."""

from __future__ import annotations

import io
import tarfile

import pytest

from dock32.checks.scenarios.check import ScenarioFailed, Skipped, fail
from dock32.checks.scenarios.scenario import run_scenario
from dock32.checks.scenarios.testimage import busybox_rootfs
from dock32.core.errors import VerifyError

BUG = "a reason"


def test_pass_fail_and_skip() -> None:
    assert run_scenario("a", lambda: "fine").status == "pass"
    failed = run_scenario("a", lambda: fail("first line\nsecond line"))
    assert (failed.status, failed.detail) == ("FAIL", "first line")

    def skip() -> str:
        raise Skipped("no SCTP in this kernel")

    skipped = run_scenario("a", skip)
    assert (skipped.status, skipped.detail) == ("skipped", "no SCTP in this kernel")

    def daemon_error() -> str:
        raise VerifyError("dockerd went away")

    assert run_scenario("a", daemon_error).status == "FAIL"


def test_known_bugs_show_but_a_fixed_one_must_be_removed() -> None:
    known = run_scenario("known", lambda: fail("still broken"), BUG)
    assert (known.status, known.detail) == ("known-bug", "a reason (still broken)")
    assert run_scenario("known", lambda: "works now", BUG).status == "FIXED?"

    def skip() -> str:
        raise Skipped("cannot run here")

    assert run_scenario("known", skip, BUG).status == "skipped"


# AssertionError too: checks fail by ScenarioFailed, so an AssertionError is a bug in a check, not a failed one.
@pytest.mark.parametrize("crash", [RuntimeError("scenario crashed"), KeyboardInterrupt(), AssertionError("a stray assert")])
def test_a_crash_or_interrupt_propagates_to_the_cleanup(crash: BaseException) -> None:
    def explode() -> str:
        raise crash

    with pytest.raises(type(crash)):
        run_scenario("a", explode)


def test_a_scenario_failure_is_a_verify_error() -> None:
    """One raised outside a scenario (a sandbox command of the runner's) still ends dock32 as a verify error."""
    assert issubclass(ScenarioFailed, VerifyError)


def test_test_image_layout() -> None:
    with tarfile.open(fileobj=io.BytesIO(busybox_rootfs(b"\x7fELF-busybox"))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert "www/index.html" in members
