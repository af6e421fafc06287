"""`dock32 verify` on the packages of the real build: every scenario passes, and nothing is left running or
mounted, also when a scenario blows up half-way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dock32 import verify as verify_module
from dock32.layout import Layout
from dock32.tasks import load_project

from .conftest import ROOT, dock32

pytestmark = pytest.mark.e2e


def clock_ticks_since_boot() -> int:
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def leftovers(marker: str, since_ticks: int) -> list[str]:
    """Mounts under marker (a path only verify runs use), and processes that a verify run started: those in
    a PID namespace other than ours (the daemons, shims and containers) started after since_ticks, and any
    whose root or command line is under marker."""
    found = [line for line in Path("/proc/mounts").read_text().splitlines() if marker in line]
    own_pid_namespace = os.readlink("/proc/self/ns/pid")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            root = os.readlink(proc / "root")
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            pid_namespace = os.readlink(proc / "ns" / "pid")
            # Field 22 of stat, counted after the command name, which may itself hold spaces.
            started = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        if root.startswith(marker) or marker in command or (pid_namespace != own_pid_namespace and started >= since_ticks):
            found.append(f"{proc.name}: {command or root}")
    return found


def test_every_scenario_passes_and_nothing_is_left_behind(release_build: Path) -> None:
    started = clock_ticks_since_boot()
    result = dock32("verify")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((release_build / "verify.json").read_text())
    statuses = {s["name"]: s["status"] for s in report["scenarios"]}
    expected = {name: "known-bug" if name in verify_module.KNOWN_BUGS else "pass" for name in statuses}
    if not verify_module.kernel_has_sctp():
        expected["SCTP port published"] = "skipped"
        assert {s["name"]: s["detail"] for s in report["scenarios"]}["SCTP port published"] == "no SCTP in this kernel"
    assert len(statuses) >= 12 and statuses == expected
    assert "amd64 image under the default seccomp profile" in statuses
    assert leftovers(str(release_build / "verify."), started) == []


def test_a_scenario_that_blows_up_still_stops_daemons_and_unmounts(release_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(ROOT)
    config, settings, packages = project.config, project.settings, project.packages
    layout = Layout.of(settings.build_dir, settings.dist_dir, config.target, config.project_dir)
    seen: dict[str, object] = {}
    started = clock_ticks_since_boot()

    def exploding(config, packages, layout, sandbox, scratch, log):  # type: ignore[no-untyped-def]
        def boom() -> str:
            seen["root"] = str(sandbox.root)
            seen["answered"] = sandbox.docker("version").returncode == 0
            busybox = (sandbox.root / "bin" / "busybox").read_bytes()
            sandbox.docker("import", "-", "dock32/crash", stdin=verify_module.busybox_rootfs(busybox))
            sandbox.docker("run", "-d", "dock32/crash", "/bin/sleep", "300")  # a shim and a container left running
            raise RuntimeError("scenario crashed")

        return [("crash", boom)]

    monkeypatch.setattr(verify_module, "scenarios", exploding)
    with pytest.raises(RuntimeError, match="scenario crashed"):
        verify_module.verify(config, packages, settings, layout)
    assert seen["answered"] is True, "the daemons were up when the scenario crashed"
    assert leftovers(str(release_build / "verify."), started) == []
    assert not Path(str(seen["root"])).exists()
