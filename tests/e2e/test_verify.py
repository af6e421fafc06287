"""`dock32 verify` on the packages of the real build: every scenario passes, and nothing is left running or
mounted, also when a scenario blows up half-way."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dock32 import verify as verify_module
from dock32.layout import Layout
from dock32.tasks import load_project

from .conftest import ROOT, dock32

pytestmark = pytest.mark.e2e


def leftovers(marker: str) -> list[str]:
    """Mounts and processes that mention marker (a path only this run uses)."""
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if marker in line]
    processes = subprocess.run(["pgrep", "-a", "-f", marker], capture_output=True, text=True, check=False).stdout.splitlines()
    return mounts + processes


def test_every_scenario_passes_and_nothing_is_left_behind(release_build: Path) -> None:
    result = dock32("verify")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((release_build / "verify.json").read_text())
    statuses = {s["name"]: s["status"] for s in report["scenarios"]}
    assert statuses and set(statuses.values()) == {"pass"}, statuses
    assert "amd64 image under the default seccomp profile" in statuses
    assert leftovers(str(release_build / "verify.")) == []


def test_a_scenario_that_blows_up_still_stops_daemons_and_unmounts(release_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, _, settings, packages = load_project(ROOT)
    layout = Layout.of(settings.build_dir, settings.dist_dir, config.target, config.project_dir)
    seen: dict[str, object] = {}

    def exploding(config, sandbox, scratch, log):  # type: ignore[no-untyped-def]
        def boom() -> str:
            seen["root"] = str(sandbox.root)
            seen["answered"] = sandbox.docker("version").returncode == 0
            raise RuntimeError("scenario crashed")

        return [("crash", boom)]

    monkeypatch.setattr(verify_module, "scenarios", exploding)
    with pytest.raises(RuntimeError, match="scenario crashed"):
        verify_module.verify(config, packages, settings, layout)
    assert seen["answered"] is True, "the daemons were up when the scenario crashed"
    assert leftovers(str(seen["root"])) == []
    assert not Path(str(seen["root"])).exists()
