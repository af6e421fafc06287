"""`dock32 test-upstream`: docker/cli's, containerd's and runc's own Go tests, as 386 programs (make test-all)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import dock32

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_upstream_suites_fail_only_where_the_list_says(release_build: Path) -> None:
    result = dock32("test-upstream")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for component in ("cli", "containerd", "runc"):
        report = json.loads((release_build / f"upstream-tests-{component}.json").read_text())
        assert report["goarch"] == "386"
        assert report["passed"] > 100, f"{component}: only {report['passed']} tests passed"
        assert sum(verdict == "pass" for verdict in report["packages"].values()) > 10, report["packages"]
        assert all(o["status"] in ("known-failure", "environment") for o in report["outcomes"]), report["outcomes"]
