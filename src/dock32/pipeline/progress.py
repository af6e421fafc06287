"""How a run shows itself: one live line on a terminal, timestamped lines elsewhere (CI, logs), a summary at the end.

The reporter (tasks.py) says which tasks start and end; this module keeps their times beside doit's database,
so that the next run's ETA is learned from this one's, and falls back on a guess per task kind without them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from dock32.core import activity, atomic
from dock32.core.diskspace import human_size

# A first guess at each kind of task, in seconds, for a run with no earlier times (a cold build of Docker on
# 2 cores): replaced by what this machine measured as soon as one run has finished.
KIND_SECONDS = {
    "toolchain": 60.0,
    "fetch": 30.0,
    "source": 10.0,
    "compile": 150.0,
    "manifest": 10.0,
    "package": 30.0,
    "sbom": 3.0,
    "repository": 3.0,
    "verify": 600.0,
    "verify-upgrade": 900.0,
    "test-upstream": 900.0,
}
DEFAULT_SECONDS = 30.0
# Tasks that only look at the machine and print their own table: no progress, no summary.
UNCOUNTED = frozenset({"doctor"})
PLAIN_STILL_RUNNING_SECONDS = 30.0
LIVE_REFRESH_SECONDS = 1.0
SUMMARY_TASKS = 10  # the slowest ones; the rest are counted on one line


def kind_of(task: str) -> str:
    return task.split(":", 1)[0]


@dataclass(frozen=True)
class RunPlace:
    """What the display needs from the project: where times are kept, where artifacts and logs are."""

    history: Path  # per-task seconds of earlier runs, beside doit's database
    gomodcache: Path | None = None  # its download folder is watched for Go module downloads
    # (folder, glob): the files the summary lists with their sizes (the binaries, the .debs)
    artifacts: tuple[tuple[Path, str], ...] = ()
    logs: Path | None = None
    workers: int = 1
    # Said once a run has tasks, before the first starts: what dock32 chose for this machine and why; warnings
    # (the build may not fit its memory) go to stderr, also with --quiet.
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


# --- durations and estimates ---------------------------------------------------------------------


def clock(seconds: float) -> str:
    """0:42, 12:03, 1:02:03."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration(seconds: float) -> str:
    """4.2 s, 1:05 (for the summary: short tasks matter in tenths)."""
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)


def load_history(path: Path) -> dict[str, float]:
    """The seconds each task took when it last ran; {} when there is no record or it cannot be read (a guess then)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        return {}
    return {str(k): float(v) for k, v in tasks.items() if isinstance(v, int | float) and v >= 0}


def load_starts(path: Path) -> dict[str, float]:
    """When each task last ran (epoch seconds): what the Go build cache's last use by it can be told from."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    starts = data.get("started") if isinstance(data, dict) else None
    return {str(k): float(v) for k, v in starts.items() if isinstance(v, int | float)} if isinstance(starts, dict) else {}


def save_history(path: Path, earlier: dict[str, float], ran: dict[str, float], started: dict[str, float] | None = None) -> None:
    """Keep the latest time of every task that ran, and when it began; the others keep their earlier ones."""
    merged = {**earlier, **{name: round(seconds, 2) for name, seconds in ran.items()}}
    starts = {**load_starts(path), **{name: round(when, 1) for name, when in (started or {}).items() if name in ran}}
    atomic.write_text(path, json.dumps({"tasks": dict(sorted(merged.items())), "started": dict(sorted(starts.items()))}, indent=1) + "\n")


def estimate(task: str, history: dict[str, float]) -> tuple[float, bool]:
    """How long task should take, and whether that was learned (its own earlier time, or its kind's on this
    machine) rather than guessed from KIND_SECONDS."""
    if task in history:
        return history[task], True
    same_kind = [seconds for name, seconds in history.items() if kind_of(name) == kind_of(task)]
    if same_kind:
        return sum(same_kind) / len(same_kind), True
    return KIND_SECONDS.get(kind_of(task), DEFAULT_SECONDS), False


def eta(pending: Iterable[str], running: dict[str, float], history: dict[str, float], workers: int) -> tuple[float, bool]:
    """Seconds left: the work left spread over the workers, but never less than the longest single task left;
    and whether every part of it was learned. running maps a task to the seconds it has run."""
    left: list[float] = []
    learned = True
    for task in pending:
        seconds, known = estimate(task, history)
        left.append(seconds)
        learned &= known
    for task, elapsed in running.items():
        seconds, known = estimate(task, history)
        # Running past its estimate: it is nearly done, as far as anyone can tell.
        left.append(max(seconds - elapsed, 1.0))
        learned &= known
    if not left:
        return 0.0, learned
    return max(max(left), sum(left) / max(workers, 1)), learned


class ModuleDownloads:
    """Go module downloads seen in the module cache since the run began: module zips and their bytes (the go
    command says nothing while it downloads; its download folder shows what arrives)."""

    # Looking costs one stat per file (about 50 ms for Docker's 900 modules): at most this often.
    PROBE_SECONDS = 3.0

    def __init__(self, gomodcache: Path) -> None:
        self.folder = gomodcache / "cache" / "download"
        self.start = self._count()
        self._seen = (0, 0)
        self._looked = time.monotonic()

    def _count(self) -> tuple[int, int]:
        modules = size = 0
        for folder, _, names in os.walk(self.folder):
            for name in names:
                if ".zip" in name and not name.endswith(".ziphash") and not name.endswith(".lock"):
                    modules += name.endswith(".zip")  # a download in flight has a temporary name, its bytes count
                    try:
                        size += os.lstat(os.path.join(folder, name)).st_size
                    except OSError:
                        pass  # renamed or removed between listing and stat
        return modules, size

    def since_start(self) -> tuple[int, int]:
        if time.monotonic() - self._looked >= self.PROBE_SECONDS:
            modules, size = self._count()
            self._seen = (max(modules - self.start[0], 0), max(size - self.start[1], 0))
            self._looked = time.monotonic()
        return self._seen


# --- the display -----------------------------------------------------------------------------------


class Progress:
    """The run as tasks start and end; subclasses show it. Called from doit's worker threads and its main thread."""

    def __init__(self, stream: IO[str], place: RunPlace | None) -> None:
        self.stream = stream
        self.place = place
        self.lock = threading.RLock()  # RLock: the Ctrl-C handler writes through us on the main thread
        self.history = load_history(place.history) if place else {}
        self.names: list[str] = []
        self.running: dict[str, float] = {}
        self.started_at: dict[str, float] = {}  # wall clock, kept with the times
        self.results: dict[str, tuple[str, float]] = {}  # task: (status, seconds)
        self.transfers: dict[str, tuple[int, int | None]] = {}
        self.modules: ModuleDownloads | None = None
        self.began = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # what the reporter calls

    def begin(self, names: Iterable[str]) -> None:
        with self.lock:
            self.names = [n for n in names if kind_of(n) not in UNCOUNTED]
            self.began = time.monotonic()
        if not self.names:
            return
        if self.place and self.place.gomodcache:
            self.modules = ModuleDownloads(self.place.gomodcache)
        activity.listen(self._transfer)
        self._open()
        self._say_notes()
        self._ticker = threading.Thread(target=self._tick, name="dock32-progress", daemon=True)
        self._ticker.start()

    def _say_notes(self) -> None:
        if self.place is None:
            return
        for note in self.place.notes:
            self._note(note)
        for warning in self.place.warnings:
            sys.stderr.write(f"warning: {warning}\n")
            sys.stderr.flush()

    def _note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, name: str) -> None:
        if kind_of(name) in UNCOUNTED:
            return
        with self.lock:
            if name not in self.names:
                self.names.append(name)
            self.running[name] = time.monotonic()
            self.started_at[name] = time.time()
            self._on_start(name)

    def finished(self, name: str, status: str) -> None:
        if kind_of(name) in UNCOUNTED:
            return
        with self.lock:
            if name not in self.names:
                self.names.append(name)
            start = self.running.pop(name, None)
            seconds = time.monotonic() - start if start is not None else 0.0
            self.results[name] = (status, seconds)
            self._on_finish(name, status, seconds)

    def end(self, failed: bool) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        activity.listen(None)
        with self.lock:
            self._close()
            if self.names:
                self._summary(failed)
        ran = {name: seconds for name, (status, seconds) in self.results.items() if status == "ran"}
        if self.place and ran:
            try:
                save_history(self.place.history, self.history, ran, self.started_at)
            except OSError as exc:  # only the next run's estimate suffers
                sys.stderr.write(f"warning: cannot keep the task times in {self.place.history}: {exc.strerror or exc}\n")

    # what a display shows

    @property
    def done(self) -> int:
        return len(self.results)

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def eta(self) -> tuple[float, bool]:
        now = time.monotonic()
        pending = [n for n in self.names if n not in self.results and n not in self.running]
        running = {n: now - start for n, start in self.running.items()}
        return eta(pending, running, self.history, self.place.workers if self.place else 1)

    def running_text(self) -> list[str]:
        now = time.monotonic()
        return [f"{name} {clock(now - start)}" for name, start in sorted(self.running.items(), key=lambda item: item[1])]

    def downloads_text(self) -> str:
        parts = []
        for label, (got, total) in sorted(self.transfers.items()):
            parts.append(f"{label} {human_size(got)}" + (f"/{human_size(total)}" if total else ""))
        if self.modules is not None:
            modules, size = self.modules.since_start()
            if modules or size:
                parts.append(f"go modules +{modules} ({human_size(size)})")
        return ", ".join(parts)

    def _transfer(self, label: str, got: int, total: int | None, finished: bool) -> None:
        with self.lock:
            if finished:
                self.transfers.pop(label, None)
            else:
                self.transfers[label] = (got, total)

    def _tick(self) -> None:
        while not self._stop.wait(self._interval()):
            with self.lock:
                self._on_tick()

    def _summary(self, failed: bool) -> None:
        for line in summary_lines(self.results, self.elapsed(), failed, self.place):
            self.stream.write(line + "\n")
        self.stream.flush()

    # for subclasses

    def _interval(self) -> float:
        return LIVE_REFRESH_SECONDS

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _on_start(self, name: str) -> None:
        pass

    def _on_finish(self, name: str, status: str, seconds: float) -> None:
        pass

    def _on_tick(self) -> None:
        pass


class Quiet(Progress):
    """--quiet: errors only (the reporter prints those)."""

    def begin(self, names: Iterable[str]) -> None:
        with self.lock:
            self.names = [n for n in names if kind_of(n) not in UNCOUNTED]
        # A listener that shows nothing: with none, a download would draw its own bar.
        activity.listen(lambda label, done, total, finished: None)
        if self.names and self.place is not None:
            for warning in self.place.warnings:
                sys.stderr.write(f"warning: {warning}\n")

    def _summary(self, failed: bool) -> None:
        pass


class Lines(Progress):
    """Not a terminal: a timestamped line per task start and end, and every 30 s one naming what still runs."""

    STATUS = {"ran": "done ", "up-to-date": "up to date", "failed": "FAILED", "ignored": "ignored"}

    def _interval(self) -> float:
        return PLAIN_STILL_RUNNING_SECONDS

    def _line(self, text: str) -> None:
        self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.stream.flush()

    def _note(self, text: str) -> None:
        self._line(text)

    def _open(self) -> None:
        seconds, learned = self.eta()
        self._line(f"{len(self.names)} tasks, about {clock(seconds)}{'' if learned else ' (a guess: no earlier run to learn from)'}")

    def _on_start(self, name: str) -> None:
        self._line(f"start {name}")

    def _on_finish(self, name: str, status: str, seconds: float) -> None:
        took = f" in {duration(seconds)}" if status in ("ran", "failed") else ""
        self._line(f"{self.STATUS.get(status, status)} {name}{took} [{self.done}/{len(self.names)}]")

    def _on_tick(self) -> None:
        if self.running:
            downloads = self.downloads_text()
            self._line(f"running {', '.join(self.running_text())}" + (f"; {downloads}" if downloads else ""))


class Live(Progress):
    """A terminal: one tqdm line for the whole run, redrawn every second; what tasks write goes above it."""

    bar: tqdm | None = None

    def _open(self) -> None:
        self.bar = tqdm(
            total=len(self.names), file=self.stream, leave=False, dynamic_ncols=True, mininterval=0, miniters=0,
            bar_format="{n_fmt}/{total_fmt} {bar:10} {desc}",
        )
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _AboveTheLine(sys.stdout, self)
        sys.stderr = _AboveTheLine(sys.stderr, self)
        self._draw()

    def _close(self) -> None:
        if self.bar is None:
            return
        for wrapper in (sys.stdout, sys.stderr):
            if isinstance(wrapper, _AboveTheLine):
                wrapper.flush_partial()
        sys.stdout, sys.stderr = self._saved
        self.bar.close()
        self.bar = None

    def _on_start(self, name: str) -> None:
        self._draw()

    def _on_finish(self, name: str, status: str, seconds: float) -> None:
        self._draw()

    def _on_tick(self) -> None:
        self._draw()

    def text(self, width: int) -> str:
        seconds, learned = self.eta()
        head = f"{clock(self.elapsed())} ETA {'' if learned else '~'}{clock(seconds)}"
        downloads = self.downloads_text()
        # The head always; then as many running tasks as fit, the rest counted; the downloads last.
        text = head
        shown = 0
        running = self.running_text()
        for item in running:
            more = len(running) - shown - 1
            candidate = text + (" | " if shown == 0 else ", ") + item
            if len(candidate) + (len(f" +{more} more") if more else 0) > width:
                break
            text = candidate
            shown += 1
        if shown < len(running):
            text += f" +{len(running) - shown} more"
        if downloads and len(text) + 3 + len(downloads) <= width:
            text += " | " + downloads
        return text[:width]

    def _draw(self) -> None:
        if self.bar is None:
            return
        columns = shutil.get_terminal_size((100, 24)).columns
        fixed = len(f"{len(self.names)}/{len(self.names)} ") + 10 + 1
        self.bar.n = self.done
        self.bar.set_description_str(self.text(max(columns - fixed - 1, 20)), refresh=False)
        self.bar.refresh()

    def _note(self, text: str) -> None:
        self.write_above(self.stream, text + "\n")

    def write_above(self, real: IO[str], text: str) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.clear()
            real.write(text)
            real.flush()
            if self.bar is not None:
                self.bar.refresh()


class _AboveTheLine(io.TextIOBase):
    """sys.stdout or sys.stderr while the live line is up: whole lines are written above it, never across it."""

    def __init__(self, real: IO[str], live: Live) -> None:
        self._real = real
        self._live = live
        self._partial = ""

    def write(self, text: str) -> int:
        whole, newline, rest = (self._partial + text).rpartition("\n")
        self._partial = rest
        if newline:
            self._live.write_above(self._real, whole + newline)
        return len(text)

    def flush_partial(self) -> None:
        if self._partial:
            self._live.write_above(self._real, self._partial + "\n")
            self._partial = ""

    def flush(self) -> None:
        self._real.flush()

    def isatty(self) -> bool:
        return self._real.isatty()

    def fileno(self) -> int:
        return self._real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def summary_lines(results: dict[str, tuple[str, float]], elapsed: float, failed: bool, place: RunPlace | None) -> list[str]:
    """The end of a run: each task's time (slowest first), the artifacts with their sizes, where the logs are."""
    counts: dict[str, int] = {}
    for status, _ in results.values():
        counts[status] = counts.get(status, 0) + 1
    said = ", ".join(f"{counts[s]} {label}" for s, label in (("ran", "ran"), ("up-to-date", "up to date"), ("failed", "failed")) if counts.get(s))
    lines = [f"{'stopped' if failed else 'finished'} after {clock(elapsed)}: {len(results)} tasks" + (f" ({said})" if said else "")]
    timed = sorted(((seconds, name) for name, (status, seconds) in results.items() if status in ("ran", "failed")), reverse=True)
    if timed:
        lines.append("task times, slowest first:")
        width = max(len(name) for _, name in timed[:SUMMARY_TASKS])
        for seconds, name in timed[:SUMMARY_TASKS]:
            lines.append(f"  {name:<{width}}  {duration(seconds):>8}{'  FAILED' if results[name][0] == 'failed' else ''}")
        if len(timed) > SUMMARY_TASKS:
            rest = timed[SUMMARY_TASKS:]
            lines.append(f"  and {len(rest)} more, {duration(sum(s for s, _ in rest))} in all")
    elif results and not failed:
        lines.append("nothing to do: everything is up to date")
    if place is None:
        return lines
    if not failed:
        files = [p for folder, pattern in place.artifacts for p in sorted(folder.glob(pattern)) if _is_artifact(p)]
        if files:
            lines.append("artifacts:")
            for path in files:
                lines.append(f"  {human_size(path.stat().st_size):>9}  {_shown(path)}")
    if place.logs is not None and place.logs.is_dir():
        lines.append(f"logs: {_shown(place.logs)}/")
    return lines


def _is_artifact(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and not path.name.endswith(".partial")


def _shown(path: Path) -> str:
    """A path relative to the working folder when it is below it: shorter, and what the user would type."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def for_stream(stream: IO[str], place: RunPlace | None, quiet: bool = False) -> Progress:
    """The display that suits where the run's output goes."""
    if quiet:
        return Quiet(stream, place)
    if _is_terminal(stream) and os.environ.get("TERM") != "dumb":
        return Live(stream, place)
    return Lines(stream, place)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
