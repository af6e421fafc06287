"""The local workflow runner with a real cache store (what scripts/ci_warm.py measures with), on a tiny workflow:
caches saved as tar + zstd relative to HOME and restored into another HOME, by exact key or by restore key (the
newest first), misses, the step `if:`s, a failed step, and the trim step run for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..workflow_runner import TAR_DECOMPRESS, CacheStore, Condition, JobFailed, StepResult, run_job

pytestmark = pytest.mark.integration

WORKFLOW = """
jobs:
  build:
    env:
      PINS_SEEN_BY: the job
    steps:
      - uses: actions/checkout@v4
      - name: Restore the things
        id: things
        uses: actions/cache/restore@v4
        with:
          path: |
            ~/.cache/demo/things
            ~/.cache/demo/more
          key: demo-things-${{ hashFiles('pins.txt') }}
          restore-keys: demo-things-
      - name: Make the things
        run: |
          mkdir -p ~/.cache/demo/things ~/.cache/demo/more
          if [ -f ~/.cache/demo/things/made ]; then cp ~/.cache/demo/things/made restored-from.txt; fi
          cp pins.txt ~/.cache/demo/things/made
          echo "$PINS_SEEN_BY" > ~/.cache/demo/more/by
      - name: Trim
        id: trim-caches
        run: .venv/bin/dock32 cache prune
      - name: Save the things
        if: ${{ strategy.job-index == 0 && steps.things.outputs.cache-hit != 'true' }}
        uses: actions/cache/save@v4
        with:
          path: |
            ~/.cache/demo/things
            ~/.cache/demo/more
          key: ${{ steps.things.outputs.cache-primary-key }}
      - name: Report
        if: ${{ !cancelled() }}
        run: echo "hit=${{ steps.things.outputs.cache-hit }} matched=${{ steps.things.outputs.cache-matched-key }}" > report.txt
"""


class Runner:
    """Each run: a fresh HOME and a fresh workdir that the checkout fills with pins.txt and a stand-in dock32."""

    def __init__(self, tmp_path: Path, workflow: str) -> None:
        self.tmp_path = tmp_path
        self.job: dict[str, Any] = yaml.safe_load(workflow)["jobs"]["build"]
        self.store = CacheStore(tmp_path / "store")
        self.runs = 0

    def run(self, pins: str, job_index: int = 0, **options: Any) -> tuple[Path, Path, list[StepResult]]:
        self.runs += 1
        home, workdir = self.tmp_path / f"home{self.runs}", self.tmp_path / f"work{self.runs}"
        home.mkdir()
        workdir.mkdir()

        def checkout(folder: Path) -> None:
            (folder / "pins.txt").write_text(pins)
            dock32 = folder / ".venv" / "bin" / "dock32"
            dock32.parent.mkdir(parents=True)
            dock32.write_text('#!/bin/sh\necho "$@" > trim-args.txt\n')
            dock32.chmod(0o755)

        environment = {"PATH": os.environ["PATH"], "HOME": str(home)}
        context = {"strategy.job-index": str(job_index)}
        results = run_job(self.job, context, workdir, self.tmp_path / "artifacts", None, {}, caches=self.store, base_env=environment,
                          checkout=checkout, **options)
        return home, workdir, results


def outcome(results: list[StepResult], name: str) -> str:
    return next(r.outcome for r in results if r.name == name)


def test_caches_move_between_homes_by_exact_key_or_the_newest_restore_key(tmp_path: Path) -> None:
    runner = Runner(tmp_path, WORKFLOW)

    # An empty store: a miss (cache-hit and cache-matched-key unset), so the save runs.
    home, workdir, results = runner.run("v1")
    assert [r.name for r in results] == ["actions/checkout@v4", "Restore the things", "Make the things", "Trim", "Save the things", "Report"]
    assert outcome(results, "Restore the things").startswith("cache miss")
    assert (workdir / "report.txt").read_text() == "hit= matched=\n"
    assert outcome(results, "Save the things").startswith("saved demo-things-")
    # The trim runs as written: the cache is the run's own.
    assert (workdir / "trim-args.txt").read_text() == "cache prune\n"
    [v1_key] = runner.store.sizes()
    listing = subprocess.run(["tar", "--use-compress-program", TAR_DECOMPRESS, "-tf", runner.store.archive(v1_key)],
                             capture_output=True, text=True, check=True).stdout.split()
    # Stored relative to HOME, so they restore into another HOME.
    assert ".cache/demo/things/made" in listing and ".cache/demo/more/by" in listing
    assert not any(str(home).lstrip("/") in name or name.startswith("/") for name in listing), listing

    # The same pins in a fresh HOME: an exact hit restores there, and the save is skipped.
    home, workdir, results = runner.run("v1")
    assert outcome(results, "Restore the things") == f"restored {v1_key} (the exact key)"
    assert (home / ".cache" / "demo" / "things" / "made").read_text() == "v1"
    assert (home / ".cache" / "demo" / "more" / "by").read_text() == "the job\n"
    assert (workdir / "report.txt").read_text() == f"hit=true matched={v1_key}\n"
    assert outcome(results, "Save the things").startswith("skipped: if: ${{ strategy.job-index == 0 && ")
    assert runner.store.sizes().keys() == {v1_key}

    # New pins: a restore key brings the older cache (not a hit), and the new key is saved.
    home, workdir, results = runner.run("v2")
    assert outcome(results, "Restore the things").startswith(f"restored {v1_key} (a partial match")
    assert (workdir / "restored-from.txt").read_text() == "v1"
    assert (workdir / "report.txt").read_text() == f"hit=false matched={v1_key}\n"
    [v2_key] = runner.store.sizes().keys() - {v1_key}

    # Two caches match the restore key: the newest is taken, whichever key sorts first.
    for newest, older in ((v1_key, v2_key), (v2_key, v1_key)):
        os.utime(runner.store.archive(older), (1_000_000_000, 1_000_000_000))
        os.utime(runner.store.archive(newest), (2_000_000_000, 2_000_000_000))
        home, workdir, results = runner.run("v3", job_index=1)
        assert outcome(results, "Restore the things").startswith(f"restored {newest} (a partial match")
        assert (workdir / "restored-from.txt").read_text() == ("v1" if newest == v1_key else "v2")
        # Not the first matrix job: it restores, but leaves the save to the first.
        assert outcome(results, "Save the things").startswith("skipped: if:")
    assert runner.store.sizes().keys() == {v1_key, v2_key}


def test_after_a_failed_step_only_the_not_cancelled_steps_run(tmp_path: Path) -> None:
    failing = WORKFLOW.replace("cp pins.txt ~/.cache/demo/things/made\n", "cp pins.txt ~/.cache/demo/things/made\n          false\n")
    runner = Runner(tmp_path, failing)
    with pytest.raises(JobFailed, match="'Make the things' failed") as failed:
        runner.run("v1", logs=tmp_path / "logs")
    outcomes = {r.name: r.outcome for r in failed.value.results}
    assert outcomes["Make the things"].startswith("failed (exit 1)")
    assert outcomes["Trim"] == outcomes["Save the things"] == "skipped: an earlier step failed"
    assert outcomes["Report"].startswith("ran")
    assert not runner.store.sizes()


def test_a_save_after_a_failure_whose_restore_never_ran_has_no_key(tmp_path: Path) -> None:
    """The Debian root's save runs if !cancelled(): when the build failed before its restore, it has no key and
    saves nothing, as actions/cache/save only warns then."""
    job = yaml.safe_load("""
      steps:
        - name: Fail
          run: "false"
        - name: Restore the root
          id: root
          uses: actions/cache/restore@v4
          with: {path: ~/root, key: root-1}
        - name: Save the root
          if: ${{ !cancelled() && steps.root.outputs.cache-hit != 'true' }}
          uses: actions/cache/save@v4
          with: {path: ~/root, key: "${{ steps.root.outputs.cache-primary-key }}"}
    """)
    (tmp_path / "home" / "root").mkdir(parents=True)
    with pytest.raises(JobFailed) as failed:
        run_job(job, {}, tmp_path, tmp_path, None, {}, caches=CacheStore(tmp_path / "store"),
                base_env={"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")})
    assert [r.outcome for r in failed.value.results][1:] == ["skipped: an earlier step failed", "not saved: no key (actions/cache/save only warns)"]


def test_until_stops_after_its_step_and_skip_leaves_a_step_out(tmp_path: Path) -> None:
    runner = Runner(tmp_path, WORKFLOW)
    _, workdir, results = runner.run("v1", until="Trim", skip={"Make the things": "already made"})
    assert [(r.name, r.outcome) for r in results][-2:] == [("Make the things", "skipped: already made"), ("Trim", "ran")]
    assert not (workdir / "restored-from.txt").exists() and not runner.store.sizes()
    with pytest.raises(ValueError, match="the job has no step 'Buld'"):
        runner.run("v1", until="Buld")


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ("${{ strategy.job-index == 0 }}", True),
        ("strategy.job-index == 1", False),
        ("${{ steps.y.outputs.cache-hit != 'true' }}", False),
        ("${{ steps.missed.outputs.cache-hit != 'true' }}", True),
        ("${{ steps.y.outputs.cache-hit == 'TRUE' && !cancelled() }}", True),  # strings compare ignoring case
        ("${{ steps.missed.outputs.cache-hit == 'true' && !cancelled() }}", False),
        ("", True),
    ],
)
def test_the_if_forms_the_workflow_uses(condition: str, holds: bool) -> None:
    context = {"strategy.job-index": "0", "steps.y.outputs.cache-hit": "true", "steps.missed.outputs.cache-hit": ""}
    assert Condition.parse(condition).holds(context, job_failed=False) is holds
    assert Condition.parse("${{ !cancelled() }}").holds(context, job_failed=True)
    assert not Condition.parse("strategy.job-index == 0").holds(context, job_failed=True)


@pytest.mark.parametrize("condition", ["${{ always() }}", "a == 'x' || b == 'y'", "startsWith(github.ref, 'refs/tags/v')", "failure()"])
def test_an_if_the_runner_cannot_read_fails_before_any_step(condition: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the local runner cannot evaluate"):
        Condition.parse(condition)
    job = {"steps": [{"name": "first", "run": "touch ran"}, {"name": "second", "if": condition, "run": "true"}]}
    with pytest.raises(ValueError):
        run_job(job, {}, tmp_path, tmp_path, None, {}, caches=CacheStore(tmp_path / "store"), base_env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert not (tmp_path / "ran").exists()


def test_an_unknown_context_value_fails_loudly() -> None:
    with pytest.raises(ValueError, match="no value for matrix.target"):
        Condition.parse("matrix.target == 'x'").holds({}, job_failed=False)
    # A step id that no restore has (a typo) is not read as an unset output.
    with pytest.raises(ValueError, match="no value for steps.modulez.outputs.cache-hit"):
        Condition.parse("steps.modulez.outputs.cache-hit != 'true'").holds({"steps.modules.outputs.cache-hit": ""}, job_failed=False)


def test_the_runner_reads_every_step_if_of_the_real_build_job() -> None:
    """What scripts/ci_warm.py runs: a condition it cannot read would stop it before the first step."""
    job = yaml.safe_load((Path(__file__).resolve().parents[2] / ".github" / "workflows" / "build.yml").read_text())["jobs"]["build"]
    conditions = [Condition.parse(str(step["if"])) for step in job["steps"] if "if" in step]
    assert len(conditions) >= 4 and any(c.checks_status for c in conditions)
