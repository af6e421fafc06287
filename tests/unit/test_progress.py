"""The progress display's arithmetic and lines, without a build: estimates, the ETA, the kept times, the summary."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from dock32.pipeline import progress
from dock32.pipeline.tasks import tasks_to_run


def test_an_estimate_is_learned_from_the_task_then_its_kind_else_guessed_from_its_kind() -> None:
    history = {"compile:dockerd": 200.0, "compile:docker": 100.0}
    assert progress.estimate("compile:dockerd", history) == (200.0, True)
    assert progress.estimate("compile:runc", history) == (150.0, True)  # the kind's mean on this machine
    assert progress.estimate("fetch:engine", history) == (progress.KIND_SECONDS["fetch"], False)
    assert progress.estimate("something-new", {}) == (progress.DEFAULT_SECONDS, False)


def test_the_eta_spreads_the_work_over_the_workers_but_waits_for_the_longest_task() -> None:
    history = {"compile:a": 100.0, "compile:b": 100.0, "manifest": 10.0}
    assert progress.eta(["compile:a", "compile:b", "manifest"], {}, history, workers=2) == (105.0, True)
    assert progress.eta(["manifest"], {"compile:a": 30.0}, history, workers=2) == (70.0, True)
    # A task past its estimate is nearly done, not done in negative time.
    assert progress.eta([], {"compile:a": 500.0}, history, workers=1) == (1.0, True)
    assert progress.eta(["fetch:x"], {}, history, workers=1)[1] is False


def test_times_are_kept_per_task_and_a_bad_record_means_no_history(tmp_path: Path) -> None:
    record = tmp_path / ".doit-t.times.json"
    assert progress.load_history(record) == {}
    progress.save_history(record, {"compile:a": 5.0, "fetch:a": 1.0}, {"compile:a": 7.123}, {"compile:a": 1000.0, "fetch:a": 900.0})
    assert progress.load_history(record) == {"compile:a": 7.12, "fetch:a": 1.0}
    assert progress.load_starts(record) == {"compile:a": 1000.0}  # only for what ran
    progress.save_history(record, progress.load_history(record), {"fetch:a": 2.0}, {"fetch:a": 2000.0})
    assert progress.load_starts(record) == {"compile:a": 1000.0, "fetch:a": 2000.0}
    record.write_text("{not json")
    assert progress.load_history(record) == {}


def test_plain_lines_are_timestamped_and_name_what_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "PLAIN_STILL_RUNNING_SECONDS", 0.05)
    out = io.StringIO()
    shown = progress.Lines(out, None)
    shown.begin(["fetch:a", "compile:a"])
    shown.finished("fetch:a", "up-to-date")
    shown.started("compile:a")
    deadline = time.monotonic() + 60
    while "running compile:a" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    shown.finished("compile:a", "failed")
    shown.end(failed=True)
    lines = out.getvalue().splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines[:4]), lines
    assert lines[0].endswith("2 tasks, about 3:00 (a guess: no earlier run to learn from)")
    assert lines[1].endswith("up to date fetch:a [1/2]") and lines[2].endswith("start compile:a")
    assert re.search(r"running compile:a 0:\d\d$", lines[3])
    assert re.search(r"FAILED compile:a in \d+\.\d s \[2/2\]$", out.getvalue(), re.M)
    assert re.search(r"^stopped after 0:\d\d: 2 tasks \(1 up to date, 1 failed\)$", out.getvalue(), re.M)


def test_the_summary_lists_the_slowest_first_then_the_artifacts_and_logs(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "hello").write_bytes(b"x" * 3000)
    (tmp_path / "bin" / "hello.partial").write_bytes(b"x")
    (tmp_path / "logs").mkdir()
    place = progress.RunPlace(history=tmp_path / "times.json", artifacts=((tmp_path / "bin", "*"),), logs=tmp_path / "logs")
    results = {"fetch:a": ("ran", 1.5), "compile:a": ("ran", 75.0), "source:a": ("up-to-date", 0.0)}
    lines = progress.summary_lines(results, 80.0, False, place)
    assert lines[0] == "finished after 1:20: 3 tasks (2 ran, 1 up to date)"
    assert [line.split()[0] for line in lines[2:4]] == ["compile:a", "fetch:a"]
    assert lines[2].endswith("1:15") and lines[3].endswith("1.5 s")
    assert lines[4:] == ["artifacts:", f"    2.9 KiB  {tmp_path}/bin/hello", f"logs: {tmp_path}/logs/"]
    many = {f"compile:{i}": ("ran", float(i)) for i in range(15)}
    assert progress.summary_lines(many, 1.0, False, None)[-1] == "  and 5 more, 10.0 s in all"


class _Task:
    def __init__(self, name: str, deps: list[str], actions: bool = True) -> None:
        self.name, self.task_dep, self.setup_tasks, self.actions = name, deps, [], [object()] if actions else []


def test_the_tasks_to_run_are_the_selected_ones_and_their_dependencies_with_actions() -> None:
    tasks = {
        t.name: t
        for t in (
            _Task("build", ["manifest"], actions=False),
            _Task("manifest", ["compile:a"]),
            _Task("compile:a", ["source:a", "toolchain"]),
            _Task("source:a", ["fetch:a"]),
            _Task("fetch:a", ["toolchain"]),
            _Task("toolchain", []),
            _Task("doctor", []),
        )
    }
    assert tasks_to_run(tasks, ["build"]) == ["toolchain", "fetch:a", "source:a", "compile:a", "manifest"]
    assert tasks_to_run(tasks, ["source:a"]) == ["toolchain", "fetch:a", "source:a"]
