"""`dock32 verify-i386-kernel` on the packages of the real build: Debian's 686-pae kernel booted in QEMU with the
installed root as its disk runs the scenarios that make sense without x86_64, and nothing is left running or
mounted, also when a scenario blows up with the guest running. Slow: under TCG (no KVM) a run takes a quarter of an
hour or more."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dock32.checks import verify_kernel
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.kernel import AMD64_IMAGE_RUN_REFUSED, AMD64_INDEX_PULL_REFUSED, RESTART_AFTER_REBOOT
from dock32.checks.scenarios.machine import Need, what_this_kernel_offers
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.model.project import load_project

from .conftest import ROOT, dock32
from .test_verify import leftovers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEEDS_X86_64 = {s.name for s in SCENARIOS if Need.X86_64_KERNEL in s.needs}
SYSVINIT_ONLY = {s.name for s in SCENARIOS if Need.SYSVINIT in s.needs}


def no_loop_device_on(marker: str) -> list[str]:
    listed = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True, text=True, check=False).stdout
    return [line for line in listed.splitlines() if marker in line]


def test_the_i686_guest_runs_the_32_bit_scenarios_and_nothing_is_left_behind(release_build: Path) -> None:
    result = dock32("verify-i386-kernel")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((release_build / "verify-i386-kernel.json").read_text())
    release, machine = report["kernel"].split()
    assert release.endswith("-686-pae") and machine == "i686" and report["init"] == "systemd"
    scenarios = {s["name"]: s for s in report["scenarios"]}
    statuses = {name: s["status"] for name, s in scenarios.items()}
    known_bugs = {s.name for s in SCENARIOS if s.known_bug is not None}
    expected = {name: "known-bug" if name in known_bugs else "pass" for name in statuses}
    for name in NEEDS_X86_64:
        expected[name] = "skipped"
        assert scenarios[name]["detail"] == Need.X86_64_KERNEL.value
    for name in SYSVINIT_ONLY:
        expected[name] = "skipped"
    if Need.AMD64_BUSYBOX not in what_this_kernel_offers():
        expected[AMD64_INDEX_PULL_REFUSED.name] = expected[AMD64_IMAGE_RUN_REFUSED.name] = "skipped"
    # Debian's kernel has SCTP as a module, which the guest loads.
    assert statuses["SCTP port published"] == "pass"
    assert statuses[RESTART_AFTER_REBOOT.name] == "pass"
    assert statuses == expected
    console = report["daemon_logs"]["console"].splitlines()
    assert console and all(line.startswith("console| ") for line in console)
    log = (release_build.parent / "logs" / release_build.name / "verify-i386-kernel.log").read_text()
    assert "--- the i686 guest's serial console ---" in log and "console| [    0.000000] Linux version " in log
    marker = str(release_build / "verify-i386-kernel.")
    assert leftovers(marker) == [] and no_loop_device_on(marker) == []


def test_a_scenario_that_blows_up_in_the_guest_still_stops_qemu_and_unmounts(release_build: Path) -> None:
    project = load_project(ROOT)
    seen: dict[str, object] = {}

    def boom(context: Context) -> str:
        guest = context.sandbox
        seen["kernel"] = guest.kernel()
        seen["running"] = leftovers(str(release_build / "verify-i386-kernel."))
        raise RuntimeError("scenario crashed")

    with pytest.raises(RuntimeError, match="scenario crashed"):
        verify_kernel.verify_i386_kernel(project.config, project.packages, project.settings, project.layout, scenarios=(Scenario("crash", boom),))
    assert str(seen["kernel"]).endswith(" i686")
    assert any("qemu-system-i386" in line for line in seen["running"]), "the check sees the guest's QEMU"  # type: ignore[attr-defined]
    marker = str(release_build / "verify-i386-kernel.")
    assert leftovers(marker) == [] and no_loop_device_on(marker) == []
    assert not list(release_build.glob("verify-i386-kernel.*.partial"))
