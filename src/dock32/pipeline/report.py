"""`dock32 <command> --json`: everything a CI job needs from a run, in one document on stdout.

Exit codes (also in the document): 0 ok, 2 config error, 3 fetch or verification of a download, 4 toolchain,
5 patch, 6 build, 7 package, 8 verify failure, 130 interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dock32 import __version__
from dock32.core.errors import BuildError, ConfigError, Dock32Error, FetchError, Interrupted, PackageError, PatchError, ToolchainError, VerifyError

if TYPE_CHECKING:
    from dock32.model.project import Project

EXIT_CODES = {
    0: "ok",
    **{error.exit_code: error.__name__ for error in (ConfigError, FetchError, ToolchainError, PatchError, BuildError, PackageError, VerifyError, Interrupted)},
}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def failure_report(command: str, error: Dock32Error) -> dict[str, Any]:
    """For a run that stopped before any task: a bad config, a busy workspace."""
    return {"dock32": __version__, "command": command, "exit_code": error.exit_code, "result": type(error).__name__, "error": str(error).splitlines()[0]}


def run_report(project: Project, command: str, exit_code: int, error: str | None, tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config, layout = project.config, project.layout
    manifest = _read(layout.manifest) or {}
    repository = _read(layout.dist_dir / "manifest.json") or {}
    upstream = {s.component: _read(layout.target_dir / f"upstream-tests-{s.component}.json") for s in project.upstream_suites}
    return {
        "dock32": __version__,
        "command": command,
        "exit_code": exit_code,
        "result": EXIT_CODES.get(exit_code, "error"),
        "error": error,
        "target": config.target,
        "release": config.release.version,
        "tasks": dict(sorted(tasks.items())),
        "seconds": round(sum(t["seconds"] for t in tasks.values()), 2),
        "binaries": {name: {"sha256": b.get("sha256"), "size": b.get("size")} for name, b in (manifest.get("binaries") or {}).items()},
        "packages": repository.get("packages", {}),
        "dist": str(layout.dist_dir),
        "verify": _read(layout.target_dir / "verify.json") if command == "verify" else None,
        "upstream_tests": upstream if command == "test-upstream" else None,
    }
