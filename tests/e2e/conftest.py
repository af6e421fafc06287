"""One real `dock32 build` of the shipped config per test session, shared by the e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dock32.model.config import load_config
from dock32.model.settings import settings_from_env

ROOT = Path(__file__).resolve().parents[2]
# Where `dock32 build` puts its outputs: build/ and dist/, or DOCK32_BUILD_DIR and DOCK32_DIST_DIR, in the
# target's folder (DOCK32_SET may change the target).
SETTINGS = settings_from_env(ROOT)
CONFIG = load_config(ROOT / "buildcfg.yaml", SETTINGS.overrides)
BIN = SETTINGS.build_dir / CONFIG.target / "bin"
DIST = SETTINGS.dist_dir / CONFIG.target


def dock32(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Run from outside the checkout: the command must find its project by --project.
    return subprocess.run(
        [sys.executable, "-m", "dock32.cli", *args, "--project", str(ROOT)],
        capture_output=True, text=True, cwd="/", env={**os.environ, **(env or {})}, check=False,
    )


@pytest.fixture(scope="session")
def release_build() -> Path:
    """build/<target>/ after a complete `dock32 build`: binaries, manifest, and dist/<target>/ with the .debs."""
    result = dock32("build")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return BIN.parent
