"""`dock32 verify` on the packages of the real build: every scenario passes, and nothing is left running or
mounted, also when a scenario blows up half-way."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dock32.checks import verify as verify_module
from dock32.checks.scenarios import kernel, rootless
from dock32.checks.scenarios.booted import InitSystem
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.machine import kernel_has_sctp
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import busybox_rootfs
from dock32.core.arch import Arch, build_machine_arch
from dock32.core.errors import VerifyError
from dock32.model.project import load_project

from .conftest import ROOT, dock32

pytestmark = pytest.mark.e2e


def marker_forms(marker: str) -> tuple[str, ...]:
    """marker as /proc/<pid>/mountinfo may show it: the whole path, or the part below its file system's mount point."""
    path = Path(marker).parent
    mount = next(p for p in (path, *path.parents) if os.path.ismount(p))
    below = "/" + str(Path(marker).relative_to(mount)) if mount != Path("/") else marker
    return (marker, below)


def leftovers(marker: str) -> list[str]:
    """Mounts under marker (a path only this test's verify runs use), and processes a verify run started: the
    daemons, shims and containers, wherever their namespaces put them, still see a bind mount of a folder under
    marker (the daemons' data, a container's resolv.conf), and the others have marker in their root or command."""
    forms = marker_forms(marker)
    found = [line for line in Path("/proc/mounts").read_text().splitlines() if marker in line]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            root = os.readlink(proc / "root")
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            mounts = (proc / "mountinfo").read_text()
        except OSError:
            continue
        # In mountinfo, field 4 is the mount's root within its file system: where a bind mount comes from.
        sources = {line.split()[3] for line in mounts.splitlines() if len(line.split()) > 3}
        if root.startswith(marker) or marker in command or any(source.startswith(form) for source in sources for form in forms):
            found.append(f"{proc.name}: {command or root}")
    return found


def userns_forbidden() -> bool:
    """This kernel forbids unprivileged user namespaces, by one of the switches the rootless scenarios read."""
    switches = {path: Path(path).read_text() for path, _, _ in rootless.USERNS_SWITCHES if Path(path).exists()}
    return any(switches.get(path, "").strip() == forbidding for path, forbidding, _ in rootless.USERNS_SWITCHES)


def expected_statuses(report: dict[str, Any], under: str) -> dict[str, str]:
    """What each scenario of the report should have done on this machine under init system `under`."""
    statuses = {s["name"]: s["status"] for s in report["scenarios"]}
    known_bugs = {s.name for s in SCENARIOS if s.known_bug is not None}
    expected = {name: "known-bug" if name in known_bugs else "pass" for name in statuses}
    other = "sysvinit" if under == "systemd" else "systemd"
    expected.update({name: "skipped" for name in statuses if name.startswith(f"{other}: ")})
    if under == "sysvinit":
        expected["containerd runs with the packaged config"] = "skipped"
    if not kernel_has_sctp():
        expected["SCTP port published"] = "skipped"
        assert {s["name"]: s["detail"] for s in report["scenarios"]}["SCTP port published"] == "no SCTP in this kernel"
    if build_machine_arch() is not Arch.AMD64:
        # An i386 build machine (a 32-bit kernel, or setarch i686 on a 64-bit one) has no amd64 busybox at hand and is
        # taken to run no x86_64 program: both amd64 scenarios say so and skip.
        expected["amd64 image under the default seccomp profile"] = "skipped"
        expected["amd64-only image pulled without --platform"] = "skipped"
    # What only the QEMU-booted 32-bit kernel runs (tests/e2e/test_verify_i386_kernel.py).
    for only_there in (kernel.AMD64_INDEX_PULL_REFUSED, kernel.AMD64_IMAGE_RUN_REFUSED, kernel.RESTART_AFTER_REBOOT):
        expected[only_there.name] = "skipped"
    if userns_forbidden():
        # A kernel that gives no unprivileged user namespaces: both rootless scenarios say so and skip.
        expected[rootless.ROOTLESS.name] = expected[rootless.ROOTLESS_BUILT_IN_NETWORK.name] = "skipped"
    return expected


def test_every_scenario_passes_under_systemd_and_nothing_is_left_behind(release_build: Path) -> None:
    result = dock32("verify")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((release_build / "verify.json").read_text())
    statuses = {s["name"]: s["status"] for s in report["scenarios"]}
    assert len(statuses) >= 20 and statuses == expected_statuses(report, "systemd")
    assert statuses["systemd: containerd.service, docker.socket, docker.service enabled and active"] == "pass"
    assert statuses["amd64 image under the default seccomp profile"] in ("pass", "skipped")
    assert (report["init"], report["kernel"]) == ("systemd", f"{platform.release()} {platform.machine()}")
    assert f"verify (init: systemd; kernel: {platform.release()} {platform.machine()})" in result.stdout
    assert leftovers(str(release_build / "verify.")) == []
    assert list(release_build.glob("verify.*.partial")) == []


@pytest.mark.slow
def test_every_scenario_passes_under_sysvinit(release_build: Path) -> None:
    result = dock32("verify-sysvinit")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((release_build / "verify-sysvinit.json").read_text())
    statuses = {s["name"]: s["status"] for s in report["scenarios"]}
    assert statuses == expected_statuses(report, "sysvinit")
    assert statuses["sysvinit: DOCKER_OPTS in /etc/default/docker is honoured"] == "pass"
    assert report["init"] == "sysvinit"
    assert leftovers(str(release_build / "verify-sysvinit.")) == []


def test_a_scenario_that_blows_up_still_stops_daemons_and_unmounts(release_build: Path) -> None:
    project = load_project(ROOT)
    config, settings, packages, layout = project.config, project.settings, project.packages, project.layout
    seen: dict[str, object] = {}

    def boom(context: Context) -> str:
        sandbox = context.sandbox
        seen["answered"] = sandbox.docker("version").returncode == 0
        sandbox.docker("import", "-", "dock32/crash", stdin=busybox_rootfs(sandbox.read_file("/bin/busybox")))
        sandbox.docker("run", "-d", "dock32/crash", "/bin/sleep", "300")  # a shim and a container left running
        seen["running"] = leftovers(str(release_build / "verify."))
        raise RuntimeError("scenario crashed")

    with pytest.raises(RuntimeError, match="scenario crashed"):
        verify_module.verify(config, packages, settings, layout, scenarios=(Scenario("crash", boom),))
    assert seen["answered"] is True, "the daemons were up when the scenario crashed"
    running = "\n".join(seen["running"])  # type: ignore[arg-type]
    assert all(name in running for name in ("containerd", "dockerd", "containerd-shim", "sleep 300")), "the check sees what a run starts"
    assert leftovers(str(release_build / "verify.")) == []
    assert list(release_build.glob("verify.*.partial")) == []


def test_a_root_that_does_not_boot_fails_with_its_console_and_leaves_nothing(release_build: Path) -> None:
    """The minbase root has no /sbin/init: nspawn gives up, and the error shows what it said."""
    project = load_project(ROOT)
    no_init = InitSystem("no init", packages=(), offers=(), poweroff=("true",))
    with pytest.raises(VerifyError, match=r"the no init container exited with code \d+ while booting") as failed:
        verify_module.verify_booted(project.config, project.packages, project.settings, project.layout, no_init, "verify-no-init", ())
    assert "systemd-container" in (failed.value.hint or "")
    assert leftovers(str(release_build / "verify-no-init.")) == []
    assert list(release_build.glob("verify-no-init.*.partial")) == []


def test_a_killed_verify_leaves_no_process_and_no_mount(release_build: Path) -> None:
    """SIGKILL, which no cleanup code sees: the kernel ends the container with the namespace it lived in, and the
    root's overlay with the mount namespaces it was mounted in."""
    verify = subprocess.Popen(
        [sys.executable, "-m", "dock32.cli", "verify", "--project", str(ROOT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/", start_new_session=True,
    )
    assert verify.stdout is not None
    seen = []
    for line in verify.stdout:
        seen.append(line)
        if "run an i386 image" in line:  # booted, packages installed, containers run
            break
    else:
        pytest.fail("verify ended before it ran a container:\n" + "".join(seen[-30:]))
    running = leftovers(str(release_build / "verify."))
    os.killpg(verify.pid, signal.SIGKILL)
    verify.wait()
    assert any("systemd-nspawn" in p for p in running), running
    deadline = time.monotonic() + 30
    while leftovers(str(release_build / "verify.")) and time.monotonic() < deadline:
        time.sleep(1)  # the kernel tears the namespaces down as their last processes go
    assert leftovers(str(release_build / "verify.")) == []


def test_a_rootless_daemon_dies_with_the_sandbox_when_its_scenario_blows_up(release_build: Path) -> None:
    """dockerd-rootless.sh runs in the machine's PID namespace: rootlesskit, slirp4netns, the user's dockerd and
    containerd and its container all go when a scenario crashes with them running."""
    if userns_forbidden():
        pytest.skip("this kernel gives no unprivileged user namespaces")
    project = load_project(ROOT)
    seen: dict[str, object] = {}

    def boom(context: Context) -> str:
        user, _ = rootless.prepare(context)
        daemon = rootless.daemon_for(context.sandbox, user, ())
        daemon.start()
        context.sandbox.write_file("/srv/crash.tar", busybox_rootfs(context.sandbox.read_file("/bin/busybox")))
        daemon.docker("import", "/srv/crash.tar", "dock32/crash")
        daemon.docker("run", "-d", "dock32/crash", "/bin/sleep", "301")
        seen["running"] = leftovers(str(release_build / "verify."))
        raise RuntimeError("scenario crashed with a rootless daemon up")

    with pytest.raises(RuntimeError, match="rootless daemon up"):
        verify_module.verify(project.config, project.packages, project.settings, project.layout, scenarios=(Scenario("crash", boom),))
    running = "\n".join(seen["running"])  # type: ignore[arg-type]
    assert all(name in running for name in ("rootlesskit", "slirp4netns", "dockerd", "sleep 301")), running
    assert leftovers(str(release_build / "verify.")) == []
