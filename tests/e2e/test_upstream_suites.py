"""`dock32 test-upstream`: docker/cli's, containerd's, runc's and moby's own Go tests, as 386 programs (make test-all)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import dock32

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMPONENTS = ("cli", "containerd", "runc", "engine")
LIBNETWORK = "github.com/moby/moby/v2/daemon/libnetwork/"


def test_upstream_suites_fail_only_where_the_list_says(release_build: Path) -> None:
    # As in moby's dev container: libnetwork's tests run iptables and nft, and without them hundreds fail.
    missing = [tool for tool in ("iptables", "iptables-save", "nft") if shutil.which(tool) is None]
    assert not missing, f"the engine's tests need {', '.join(missing)}: apt-get install iptables nftables"
    result = dock32("test-upstream")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    reports = {c: json.loads((release_build / f"upstream-tests-{c}.json").read_text()) for c in COMPONENTS}
    for component, report in reports.items():
        assert report["goarch"] == "386"
        assert report["passed"] > 100, f"{component}: only {report['passed']} tests passed"
        assert sum(verdict == "pass" for verdict in report["packages"].values()) > 10, report["packages"]
        assert all(o["status"] in ("known-failure", "environment", "flaky") for o in report["outcomes"]), report["outcomes"]
    engine = reports["engine"]
    # hack/test/unit's selection: its build tags, the daemon's packages, and libnetwork's in their own run.
    assert engine["tags"] == ["netgo", "journald"]
    assert engine["packages"].get("github.com/moby/moby/v2/daemon") in ("pass", "fail"), sorted(engine["packages"])[:20]
    assert sum(verdict == "pass" for package, verdict in engine["packages"].items() if package.startswith(LIBNETWORK)) > 20
    assert not any("/integration" in package for package in engine["packages"])
