"""Shared helpers: the project root and a factory for small dock32 projects in a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A dock32 project folder with the real toolchains/ and a buildcfg.yaml the test writes."""

    def make(buildcfg: str, patches: dict[str, dict[str, str]] | None = None) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        shutil.copytree(ROOT / "toolchains", root / "toolchains", dirs_exist_ok=True)
        (root / "buildcfg.yaml").write_text(buildcfg, encoding="utf-8")
        for component, files in (patches or {}).items():
            folder = root / "patches" / component
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (folder / name).write_text(text, encoding="utf-8")
        return root

    return make
