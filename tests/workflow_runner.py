"""A tiny local runner that plays GitHub Actions for the workflow's jobs: `run:` steps go to bash in the checkout with
the job's and step's environment; the actions the workflow uses are played for what it needs (checkout: the checkout
is here, or a callback makes it; upload/download-artifact: a local artifacts folder; the cache actions: below).

The cache actions are played one of two ways:
- emulated (the default, for tests/e2e/test_workflow.py): their keys are worked out, hashFiles included, every
  restore is a hit and nothing moves, since the cache is this machine's; the trim step runs with --dry-run, as that
  cache is shared with other checkouts; step `if:`s are not evaluated (the steps that have one are emulated actions);
- with a real store (`CacheStore`, for scripts/ci_warm.py): a folder of `<key>.tar.zst` that actions/cache/save
  writes and actions/cache/restore reads as GitHub's do, the step `if:`s are evaluated, a failed step lets only the
  `!cancelled()` steps run after it, and the trim runs for real, since the cache is the run's own.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMULATED_ACTIONS = {"actions/checkout", "actions/cache/restore", "actions/cache/save", "actions/upload-artifact", "actions/download-artifact"}
TRIM_STEP = "trim-caches"  # its run: is `dock32 cache prune`; with --dry-run when the caches are emulated
TRIM_COMMAND = ".venv/bin/dock32 cache prune"
# What actions/cache runs (@actions/cache, internal/tar.ts): a POSIX tar through zstd on every core with a 1 GiB
# window, so that the store's sizes are the ones GitHub would count against its 10 GB.
TAR_COMPRESS = "zstd -T0 --long=30"
TAR_DECOMPRESS = "zstd -d --long=30"
RESTORE_OUTPUTS = ("cache-hit", "cache-primary-key", "cache-matched-key")


def hash_files(workdir: Path, patterns: list[str]) -> str:
    """A stand-in for GitHub's hashFiles(): one digest of the files the patterns match. A pattern that matches no
    file fails, since GitHub would then hash nothing and the key would not follow that file."""
    digest = hashlib.sha256()
    for pattern in patterns:
        # A trailing ** matches files at any depth there, as in GitHub's globs (Python's matches folders only).
        found = sorted(p for p in workdir.glob(pattern + "/*" if pattern.endswith("**") else pattern) if p.is_file())
        assert found, f"hashFiles: {pattern!r} matches no file in {workdir}"
        for path in found:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def expand(text: str, context: Mapping[str, str], workdir: Path | None = None) -> str:
    """${{ name }} expressions of the workflow, from context (matrix.*, secrets.*, github.*, steps.*), and
    hashFiles(...) over workdir."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        call = re.fullmatch(r"hashFiles\((.*)\)", key)
        if call and workdir is not None:
            return hash_files(workdir, re.findall(r"'([^']*)'", call.group(1)))
        if key not in context:
            raise AssertionError(f"the local runner has no value for ${{{{ {key} }}}}")
        return context[key]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


# --- step if: conditions ---------------------------------------------------------------------------

_COMPARISON = re.compile(r"([A-Za-z_][\w.-]*)\s*(==|!=)\s*('(?:[^']|'')*'|-?\d+)")


@dataclass(frozen=True)
class Comparison:
    name: str  # a context value: steps.<id>.outputs.<name>, strategy.job-index, matrix.<key>, ...
    equal: bool  # == or !=
    literal: str | int

    def holds(self, context: Mapping[str, str]) -> bool:
        if self.name not in context:
            raise ValueError(f"if: the local runner has no value for {self.name}")
        value = context[self.name]
        if isinstance(self.literal, int):
            # A string against a number compares as numbers, and '' is 0 (GitHub's coercion).
            try:
                same = float(value or 0) == self.literal
            except ValueError:
                same = False
        else:
            same = value.casefold() == self.literal.casefold()  # GitHub compares strings ignoring case
        return same == self.equal


@dataclass(frozen=True)
class Condition:
    """A step's `if:` in the forms this workflow uses: comparisons of a context value with a literal, joined by &&,
    and `!cancelled()`. As on GitHub, one without a status function holds only while every earlier step succeeded."""

    comparisons: tuple[Comparison, ...]
    checks_status: bool  # !cancelled(): holds after a failure too, since nothing cancels a local run

    @classmethod
    def parse(cls, text: str) -> Condition:
        expression = text.strip()
        wrapped = re.fullmatch(r"\$\{\{(.*)\}\}", expression, re.DOTALL)
        if wrapped:
            expression = wrapped.group(1).strip()
        comparisons: list[Comparison] = []
        checks_status = False
        for term in (t.strip() for t in expression.split("&&")) if expression else ():
            if term == "!cancelled()":
                checks_status = True
                continue
            match = _COMPARISON.fullmatch(term)
            if not match:
                raise ValueError(f"if: {text!r}: the local runner cannot evaluate {term!r} (it knows ==, != against a literal, && and !cancelled())")
            name, operator, literal = match.groups()
            value: str | int = literal[1:-1].replace("''", "'") if literal.startswith("'") else int(literal)
            comparisons.append(Comparison(name, operator == "==", value))
        return cls(tuple(comparisons), checks_status)

    def holds(self, context: Mapping[str, str], job_failed: bool) -> bool:
        return self.runs_after(job_failed) and all(c.holds(context) for c in self.comparisons)

    def runs_after(self, job_failed: bool) -> bool:
        return self.checks_status or not job_failed


# --- the cache store ---------------------------------------------------------------------------------


def disk_usage(paths: list[Path]) -> int:
    """What the paths take on disk, as du counts it (hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        for path in [top, *top.rglob("*")] if top.is_dir() and not top.is_symlink() else [top]:
            info = path.lstat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


@dataclass(frozen=True)
class CacheStore:
    """A folder of caches as actions/cache keeps them: `<key>.tar.zst`, the step's paths relative to HOME, so that
    they restore into another runner's HOME. Not modelled: GitHub's cache version (a hash of the paths, which a
    restore must also match), as each cache of this workflow has a key prefix of its own."""

    folder: Path

    def archive(self, key: str) -> Path:
        if not key or "/" in key:
            raise ValueError(f"cache key {key!r}: the local store needs a non-empty key without '/'")
        return self.folder / f"{key}.tar.zst"

    def keys_newest_first(self) -> list[str]:
        archives = sorted(self.folder.glob("*.tar.zst"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        return [p.name.removesuffix(".tar.zst") for p in archives]

    def sizes(self) -> dict[str, int]:
        return {key: self.archive(key).stat().st_size for key in sorted(self.keys_newest_first())}

    def lookup(self, key: str, restore_keys: list[str]) -> str | None:
        """The key a restore takes, in GitHub's order: the key itself, then the newest cache whose key starts with
        the key, then with each restore key in turn."""
        if self.archive(key).is_file():
            return key
        stored = self.keys_newest_first()
        return next((k for prefix in [key, *restore_keys] for k in stored if k.startswith(prefix)), None)

    def restore(self, key: str, restore_keys: list[str], home: Path) -> str | None:
        matched = self.lookup(key, restore_keys)
        if matched is not None:
            home.mkdir(parents=True, exist_ok=True)
            subprocess.run(["tar", "--use-compress-program", TAR_DECOMPRESS, "-xf", self.archive(matched), "-P", "-C", home],
                           check=True, capture_output=True)
        return matched

    def save(self, key: str, paths: list[str], home: Path) -> str:
        """Stores the paths that exist under key, unless a cache of that key exists (caches are immutable: GitHub
        only warns); what happened, in one line."""
        if not key:
            return "not saved: no key (actions/cache/save only warns)"
        archive = self.archive(key)
        if archive.exists():
            return f"not saved: a cache of key {key} exists"
        relative = [p for p in (under_home(path, home) for path in paths) if (home / p).exists()]
        if not relative:
            return f"not saved: none of {', '.join(paths)} exists"
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(archive.name + ".partial")
        manifest = archive.with_name(archive.name + ".files")
        manifest.write_text("\n".join(relative) + "\n")
        try:
            subprocess.run(["tar", "--posix", "--use-compress-program", TAR_COMPRESS, "-cf", partial, "-P", "-C", home, "--files-from", manifest],
                           check=True, capture_output=True)
            os.replace(partial, archive)  # a store never holds half an archive under a key
        finally:
            manifest.unlink()
            partial.unlink(missing_ok=True)
        on_disk = disk_usage([home / p for p in relative])
        return f"saved {key}: {on_disk / 2**20:.1f} MiB on disk, {archive.stat().st_size / 2**20:.1f} MiB stored"


def cache_paths(step_inputs: Mapping[str, str]) -> list[str]:
    return [line.strip() for line in step_inputs["path"].splitlines() if line.strip()]


def under_home(path: str, home: Path) -> str:
    """A cache step's path as stored: relative to HOME, with ~ read as the job's HOME."""
    if any(c in path for c in "*?[!"):
        raise ValueError(f"cache path {path!r}: the local store takes plain paths, not patterns")
    absolute = home / path.removeprefix("~").lstrip("/") if path == "~" or path.startswith("~/") else Path(path)
    if not absolute.is_absolute() or not absolute.is_relative_to(home):
        raise ValueError(f"cache path {path!r}: the local store keeps paths under HOME ({home}) only")
    return str(absolute.relative_to(home)) if absolute != home else "."


# --- running a job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    outcome: str  # what happened, in one line (a failure's output follows it when there is no log folder)
    failed: bool = False


class StepWatcher:
    """What a caller of run_job sees of the steps as they run; this one sees nothing."""

    def started(self, name: str) -> None:
        pass

    def finished(self, result: StepResult) -> None:
        pass


class JobFailed(Exception):
    """A step of a job run with a real cache store failed; the `!cancelled()` steps after it have run."""

    def __init__(self, step: str, results: list[StepResult]) -> None:
        super().__init__(f"step {step!r} failed")
        self.step = step
        self.results = results


def uses(step: Mapping[str, Any]) -> str:
    """The action a step uses, without its version; '' for a run: step."""
    return str(step.get("uses", "")).split("@")[0]


def step_name(step: Mapping[str, Any]) -> str:
    """A step's name as GitHub shows it: its name:, else what it uses or runs."""
    return str(step.get("name") or step.get("uses") or str(step["run"]).strip().splitlines()[0])


def run_job(job: dict[str, Any], context: dict[str, str], workdir: Path, artifacts: Path, tools: Path | None, env: dict[str, str], *,
            caches: CacheStore | None = None, base_env: Mapping[str, str] | None = None, checkout: Callable[[Path], None] | None = None,
            until: str | None = None, skip: Mapping[str, str] | None = None, logs: Path | None = None,
            watcher: StepWatcher | None = None) -> list[StepResult]:
    """Runs the job's steps in workdir; tools (stand-ins) go first on PATH. Without caches the cache actions are
    emulated and a failed step fails at once; with them they move real archives and the job runs as on GitHub.
    base_env is the runner's environment (default: this process's; its HOME is the ~ of the cache paths), checkout
    makes the checkout in workdir, until names the last step to run, skip maps step names to why they are skipped,
    and logs is a folder for each run: step's output (else it is captured and shown on failure)."""
    base = dict(os.environ if base_env is None else base_env)
    skip = skip or {}
    watcher = watcher or StepWatcher()
    names = [step_name(s) for s in job["steps"]]
    for name in [*([until] if until is not None else []), *skip]:
        if name not in names:
            raise ValueError(f"the job has no step {name!r}; its steps: {', '.join(names)}")
    job_env = {k: expand(str(v), context) for k, v in (job.get("env") or {}).items()}
    context = dict(context)
    if caches is not None:
        # A restore that misses or does not run leaves its outputs unset, which expressions read as ''.
        context.update({f"steps.{s['id']}.outputs.{o}": "" for s in job["steps"] if uses(s) == "actions/cache/restore" and "id" in s for o in RESTORE_OUTPUTS})
    # Parsed before the first step runs, so that a condition the runner cannot read fails before an hour of build.
    conditions = [Condition.parse(str(s.get("if", ""))) for s in job["steps"]] if caches is not None else []
    # The job's HOME: what ~ means in the cache paths (the emulated caches read no path).
    home = Path({**base, **env, **job_env}["HOME"]) if caches is not None else None
    results: list[StepResult] = []
    failed: str | None = None
    for index, (step, name) in enumerate(zip(job["steps"], names, strict=True)):
        watcher.started(name)
        start = time.monotonic()
        outcome, step_failed = "ran", False
        if caches is not None and not conditions[index].runs_after(job_failed=failed is not None):
            outcome = "skipped: an earlier step failed"
        elif caches is not None and not conditions[index].holds(context, job_failed=failed is not None):
            outcome = f"skipped: if: {step['if']} is false"
        elif name in skip:
            outcome = f"skipped: {skip[name]}"
        elif "uses" in step and caches is None:
            outcome = play_action(step, context, workdir, artifacts, checkout, None, home)
        elif "uses" in step:
            try:
                outcome = play_action(step, context, workdir, artifacts, checkout, caches, home)
            except subprocess.CalledProcessError as error:
                output = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else str(error.stderr or "")
                step_failed, outcome = True, f"failed: {' '.join(map(str, error.cmd))} exited {error.returncode}: {output.strip()[-500:]}"
            except OSError as error:
                step_failed, outcome = True, f"failed: {error}"
        else:
            step_env = {k: expand(str(v), context) for k, v in (step.get("env") or {}).items()}
            script = expand(step["run"], context)
            if step.get("id") == TRIM_STEP:
                assert script.strip() == TRIM_COMMAND, script
                if caches is None:
                    script += " --dry-run"
            run_env = {**base, **env, **job_env, **step_env, "PATH": f"{tools}:{base['PATH']}" if tools is not None else base["PATH"]}
            if caches is None:
                result = subprocess.run(["bash", "-e", "-c", script], cwd=workdir, capture_output=True, text=True, check=False, env=run_env)
                assert result.returncode == 0, f"step {step.get('name', script)!r} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            else:
                step_failed, outcome = run_logged(script, workdir, run_env, logs / f"{index + 1:02d}-{slug(name)}.log" if logs else None)
        step_result = StepResult(name, time.monotonic() - start, outcome, step_failed)
        results.append(step_result)
        watcher.finished(step_result)
        if step_failed and failed is None:
            failed = name
        if name == until:
            break
    if failed is not None:
        raise JobFailed(failed, results)
    return results


def play_action(step: Mapping[str, Any], context: dict[str, str], workdir: Path, artifacts: Path, checkout: Callable[[Path], None] | None,
                caches: CacheStore | None, home: Path | None) -> str:
    """One uses: step; a restore sets its outputs in context. What happened, in one line."""
    action = step["uses"].split("@")[0]
    assert action in EMULATED_ACTIONS, f"the local runner cannot play {step['uses']}"
    if action == "actions/checkout":
        if checkout is None:
            return "the checkout is here"
        checkout(workdir)
        return "checked out"
    inputs = {k: expand(str(v), context, workdir) for k, v in (step.get("with") or {}).items()}
    if action == "actions/cache/restore" and caches is None:
        # The cache is this machine's, all of it: a hit, with the key the step would have looked up.
        context[f"steps.{step['id']}.outputs.cache-primary-key"] = inputs["key"]
        context[f"steps.{step['id']}.outputs.cache-hit"] = "true"
        return "emulated: a hit"
    if action == "actions/cache/restore":
        assert caches is not None and home is not None
        key = inputs["key"]
        restore_keys = [line.strip() for line in inputs.get("restore-keys", "").splitlines() if line.strip()]
        for path in cache_paths(inputs):
            under_home(path, home)  # a path the store could not have saved fails here, not as a silent miss
        matched = caches.restore(key, restore_keys, home)
        # actions/cache leaves cache-hit and cache-matched-key unset on a miss: '' in an expression.
        outputs = {"cache-primary-key": key, "cache-hit": "" if matched is None else str(matched == key).lower(), "cache-matched-key": matched or ""}
        if "id" in step:
            context.update({f"steps.{step['id']}.outputs.{name}": value for name, value in outputs.items()})
        if matched is None:
            return f"cache miss ({key})"
        return f"restored {matched}" + (" (the exact key)" if matched == key else f" (a partial match: {key} is not stored)")
    if action == "actions/cache/save" and caches is None:
        return "emulated: nothing saved"
    if action == "actions/cache/save":
        assert caches is not None and home is not None
        return caches.save(inputs["key"], cache_paths(inputs), home)
    if action == "actions/upload-artifact":
        if any(c in inputs["path"] for c in "*?["):
            (artifacts / inputs["name"]).mkdir()
            for found in sorted(workdir.glob(inputs["path"])):
                shutil.copy2(found, artifacts / inputs["name"] / found.name)
        else:
            shutil.copytree(workdir / inputs["path"], artifacts / inputs["name"])
        return f"uploaded {inputs['name']}"
    pattern = inputs.get("pattern", "*")  # actions/download-artifact
    for found in sorted(artifacts.glob(pattern)):
        shutil.copytree(found, workdir / inputs["path"] / found.name)
    return f"downloaded {pattern}"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]


def run_logged(script: str, workdir: Path, env: dict[str, str], log: Path | None) -> tuple[bool, str]:
    """A run: step, its output in log (or kept for the message): whether it failed, and what happened."""
    command = ["bash", "-e", "-c", script]
    if log is None:
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            return True, f"failed (exit {result.returncode}): {(result.stdout + result.stderr)[-3000:]}"
        return False, "ran"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        code = subprocess.run(command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT, check=False, env=env).returncode
    if code != 0:
        return True, f"failed (exit {code}): its output is in {log}"
    return False, f"ran (output: {log})"
