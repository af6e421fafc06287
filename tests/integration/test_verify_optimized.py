"""Under `python -O`, which drops every assert statement, a failing verify check still fails: the unit tests of the
scenarios' checks run again in an interpreter started with -O."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


def test_failing_checks_still_fail_under_python_o() -> None:
    result = subprocess.run(
        [sys.executable, "-O", "-m", "pytest", "tests/unit/test_scenarios.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
