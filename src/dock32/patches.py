"""Quilt-style patch series: patches/<component>/series, applied in order to a pristine copy with GNU patch."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dock32.errors import PatchError
from dock32.run import capture

_RANGE = re.compile(r"^(>=|<=|>|<|==)\s*v?(\d+(?:\.\d+)*)$")


@dataclass(frozen=True)
class Patch:
    path: Path
    strip: int
    versions: tuple[tuple[str, tuple[int, ...]], ...]  # all must hold, e.g. ((">=", (1, 3)), ("<", (1, 4)))

    def applies_to(self, version: str) -> bool:
        have = _numbers(version)
        return all(_compare(have, op, bound) for op, bound in self.versions)


def _numbers(version: str) -> tuple[int, ...]:
    match = re.match(r"^v?(\d+(?:\.\d+)*)", version)
    return tuple(int(n) for n in match.group(1).split(".")) if match else ()


def _compare(have: tuple[int, ...], op: str, bound: tuple[int, ...]) -> bool:
    width = max(len(have), len(bound))
    a, b = have + (0,) * (width - len(have)), bound + (0,) * (width - len(bound))
    return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b, "==": a == b}[op]


def read_series(directory: Path) -> list[Patch]:
    """Parse directory/series: one patch per line, optional `-pN` and `versions=>=1.3,<1.4`; `#` starts a comment."""
    series = directory / "series"
    if not series.is_file():
        return []
    patches = []
    for number, line in enumerate(series.read_text(encoding="utf-8").splitlines(), start=1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        where = f"{series}:{number}"
        path = directory / words[0]
        if not path.is_file():
            raise PatchError(f"{where}: patch {words[0]} does not exist", hint=f"add it to {directory} or remove the line")
        strip, versions = 1, []
        for option in words[1:]:
            if re.fullmatch(r"-p\d+", option):
                strip = int(option[2:])
            elif option.startswith("versions="):
                for clause in option[len("versions="):].split(","):
                    match = _RANGE.match(clause.strip())
                    if not match:
                        raise PatchError(f"{where}: bad version range {clause!r}", hint="write it like versions=>=1.3,<1.4")
                    versions.append((match.group(1), tuple(int(n) for n in match.group(2).split("."))))
            else:
                raise PatchError(f"{where}: unknown option {option!r}", hint="options are -pN and versions=>=A,<B")
        patches.append(Patch(path=path, strip=strip, versions=tuple(versions)))
    return patches


def _failure_summary(output: str) -> str:
    """The first failing file and hunk from GNU patch's report."""
    current = None
    for line in output.splitlines():
        if line.startswith(("patching file ", "checking file ")):
            current = line.split(" ", 2)[2].strip("'\"")
        match = re.search(r"Hunk #(\d+) FAILED at (\d+)", line)
        if match:
            return f"{current}: hunk #{match.group(1)} (at line {match.group(2)}) does not apply"
        if "can't find file to patch" in line or "No file to patch" in line:
            return "a file it patches does not exist"
        if "Reversed (or previously applied) patch detected" in line:
            return f"{current}: already applied (is it upstream now?)"
    return output.strip().splitlines()[-1] if output.strip() else "patch failed"


def apply_series(patches: list[Patch], tree: Path, version: str) -> list[Patch]:
    """Apply the patches that cover version; return those applied. Each is dry-run first, so a failure changes nothing."""
    applied = []
    for patch in patches:
        if not patch.applies_to(version):
            continue
        base = ["patch", f"-p{patch.strip}", "--batch", "--forward", "--no-backup-if-mismatch", "-d", str(tree), "-i", str(patch.path)]
        check = capture([*base, "--dry-run"])
        if check.returncode != 0:
            raise PatchError(
                f"{patch.path.name}: {_failure_summary(check.stdout + check.stderr)}",
                hint=f"refresh {patch.path} against {version}, or limit it with versions= in its series line",
            )
        done = capture(base)
        if done.returncode != 0:
            raise PatchError(f"{patch.path.name}: {_failure_summary(done.stdout + done.stderr)}")
        applied.append(patch)
    return applied
