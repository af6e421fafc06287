"""src/dock32 reads as the pipeline: groups by stage, and imports only ever go down the list, never up or across."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dock32"
# Lowest first: a group may import from itself and from the groups before it.
ORDER = ("core", "model", "sources", "toolchains", "build", "packaging", "checks", "bump", "pipeline", "cli")


def group_of(module: str) -> str | None:
    """dock32.sources.fetch -> sources; dock32.cli -> cli; dock32 itself (its version) -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "dock32" else None


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dock32":
            found |= {f"dock32.{alias.name}" for alias in node.names} if node.module == "dock32" else {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "dock32"}
    return found


def test_every_module_is_in_a_group_of_the_pipeline() -> None:
    loose = [p.name for p in SRC.glob("*.py") if p.stem not in ("__init__", "cli")]
    assert loose == []
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(g for g in ORDER if g != "cli")


def test_imports_go_down_the_pipeline_only() -> None:
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        mine = group_of(module)
        if mine is None or mine == "__init__":
            continue
        for imported in imports_of(path):
            theirs = group_of(imported)
            if theirs in ORDER and ORDER.index(theirs) > ORDER.index(mine):
                upward.append(f"{module} imports {imported}")
    assert upward == []
