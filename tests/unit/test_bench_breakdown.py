"""make bench's breakdown of dock32's time per task kind: read from the --json report as dock32 writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dock32.core.errors import ConfigError
from dock32.model.project import load_project
from dock32.pipeline import breakdown, report

ROOT = Path(__file__).resolve().parents[2]


def json_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tasks: dict[str, dict[str, object]]) -> dict[str, object]:
    """The document `dock32 build --json` prints, made by the code that prints it, for the shipped project."""
    monkeypatch.setenv("DOCK32_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("DOCK32_DIST_DIR", str(tmp_path / "dist"))
    monkeypatch.delenv("DOCK32_SET", raising=False)
    project = load_project(ROOT, offline=True)
    return json.loads(json.dumps(report.run_report(project, "build", 0, None, tasks)))


def test_task_times_are_summed_per_kind_in_the_pipelines_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = json_report(tmp_path, monkeypatch, {
        "manifest": {"status": "ran", "seconds": 2.25},
        "compile:dockerd": {"status": "ran", "seconds": 100.0},
        "compile:docker": {"status": "ran", "seconds": 40.5},
        "compile": {"status": "ran", "seconds": 0.0},
        "fetch:engine": {"status": "up-to-date", "seconds": 0.5},
        "fetch:cli": {"status": "ran", "seconds": 1.5},
        "source:engine": {"status": "ran", "seconds": 3.0},
        "toolchain": {"status": "ran", "seconds": 0.75},
        "zz-new-kind:x": {"status": "ran", "seconds": 1.0},
    })
    kinds = breakdown.seconds_by_kind(document)
    assert kinds == {"toolchain": 0.75, "fetch": 2.0, "source": 3.0, "compile": 140.5, "manifest": 2.25, "zz-new-kind": 1.0}
    assert list(kinds) == ["toolchain", "fetch", "source", "compile", "manifest", "zz-new-kind"]
    assert sum(kinds.values()) == pytest.approx(document["seconds"])


def test_a_report_without_task_times_is_refused() -> None:
    with pytest.raises(ValueError, match="no tasks"):
        breakdown.seconds_by_kind(report.failure_report("build", ConfigError("buildcfg.yaml:1: bad")))
    with pytest.raises(ValueError, match="compile:runc: no seconds"):
        breakdown.seconds_by_kind({"tasks": {"compile:runc": {"status": "ran"}}})
    with pytest.raises(ValueError, match="no seconds"):
        breakdown.seconds_by_kind({"tasks": {"compile:runc": {"status": "ran", "seconds": True}}})


def test_the_table_has_each_round_and_the_split_of_the_fastest() -> None:
    rounds = [{"fetch": 10.0, "compile": 90.0}, {"fetch": 20.0, "source": 20.0, "compile": 60.0}]
    lines = breakdown.kind_table(rounds, walls=[120.0, 80.0])
    assert lines == [
        "dock32 time per task kind (s)      round 1   round 2     min round (2)",
        "fetch                                 10.0      20.0       20.0 20.0%",
        "source                                 0.0      20.0       20.0 20.0%",
        "compile                               90.0      60.0       60.0 60.0%",
        "sum of task times                    100.0     100.0      100.0  100%",
        "wall time                            120.0      80.0       80.0",
    ]


def test_the_fastest_round_is_the_one_with_the_least_wall_time() -> None:
    lines = breakdown.kind_table([{"compile": 50.0}, {"compile": 70.0}, {"compile": 40.0}], walls=[60.0, 55.0, 90.0])
    assert lines[0].endswith("min round (2)")
    assert lines[1].split()[-2:] == ["70.0", "100.0%"]


def test_a_table_needs_one_wall_time_per_round() -> None:
    with pytest.raises(ValueError):
        breakdown.kind_table([{"compile": 1.0}], walls=[])
    with pytest.raises(ValueError):
        breakdown.kind_table([], walls=[])
