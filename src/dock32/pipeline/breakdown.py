"""Where a build's time goes, per kind of task (toolchain, fetch, source, compile, ...): from the task times of
`dock32 build --json`, for `make bench`'s rounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dock32.pipeline.progress import KIND_SECONDS, kind_of

# The pipeline's order; a kind not named here (a new task) follows, by name.
KIND_ORDER = tuple(KIND_SECONDS)


def seconds_by_kind(report: Mapping[str, Any]) -> dict[str, float]:
    """The seconds of a --json report's tasks summed per kind, in the pipeline's order. Group tasks (`compile`)
    do nothing of their own and count under their kind like the rest; tasks that ran at once all count in full."""
    tasks = report.get("tasks")
    if not isinstance(tasks, Mapping):
        raise ValueError("not a dock32 --json report: it has no tasks")
    sums: dict[str, float] = {}
    for name, result in tasks.items():
        seconds = result.get("seconds") if isinstance(result, Mapping) else None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise ValueError(f"task {name}: no seconds in the report")
        sums[kind_of(name)] = sums.get(kind_of(name), 0.0) + float(seconds)
    return {kind: sums[kind] for kind in sorted(sums, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k))}


def kind_table(rounds: Sequence[Mapping[str, float]], walls: Sequence[float]) -> list[str]:
    """Per kind, its seconds in each round, then the split of the fastest round (by wall time): its seconds and
    their share of that round's summed task times. Tasks run at once, so the sum exceeds the wall time."""
    if not rounds or len(rounds) != len(walls):
        raise ValueError("one breakdown per round, and at least one")
    best = min(range(len(walls)), key=lambda i: walls[i])
    kinds = sorted({k for r in rounds for k in r}, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k))
    total = sum(rounds[best].values())
    heads = [f"round {i + 1}" for i in range(len(rounds))]
    lines = [f"{'dock32 time per task kind (s)':<32}" + "".join(f"{h:>10}" for h in heads) + f"  {'min round (' + str(best + 1) + ')':>16}"]
    for kind in kinds:
        mine = rounds[best].get(kind, 0.0)
        share = mine / total if total else 0.0
        cells = "".join(f"{r.get(kind, 0.0):10.1f}" for r in rounds)
        lines.append(f"{kind:<32}{cells}  {mine:9.1f} {share:5.1%}")
    lines.append(f"{'sum of task times':<32}" + "".join(f"{sum(r.values()):10.1f}" for r in rounds) + f"  {total:9.1f} {1:5.0%}")
    lines.append(f"{'wall time':<32}" + "".join(f"{w:10.1f}" for w in walls) + f"  {walls[best]:9.1f}")
    return lines
