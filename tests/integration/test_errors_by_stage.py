"""Errors by stage: every command the package task runs (dpkg-deb, then ar and xz for the xz .debs) fails with the
package exit code, 7, and one line naming the task and the command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import TINY_PACKAGES, run_dock32

pytestmark = pytest.mark.integration


def failing_tool(folder: Path, name: str) -> Path:
    """A real `name` that fails as a broken tool would: it says so and exits 1. Put first on PATH."""
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho \"{name}: broken on purpose\" >&2\nexit 1\n", encoding="utf-8")
    tool.chmod(0o755)
    return folder


def test_dpkg_deb_ar_and_xz_failing_in_the_package_task_all_exit_with_the_package_code(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    (root / "packaging" / "scripts").mkdir(parents=True)
    (root / "packaging" / "packages.yaml").write_text(TINY_PACKAGES, encoding="utf-8")
    # xz (the default): dpkg-deb packs, ar unpacks, xz compresses the members, ar packs them again.
    built = run_dock32(root, "build", env=env)
    assert built.returncode == 0, built.stderr
    (deb,) = (root / "dist" / "native32-i386").glob("hello_*.deb")
    for tool, what in (("dpkg-deb", "pack hello"), ("ar", "unpack hello"), ("xz", "compress hello")):
        deb.unlink(missing_ok=True)  # only the package task runs again
        result = run_dock32(root, "build", "--json", env={**env, "PATH": f"{failing_tool(tmp_path / tool, tool)}:{os.environ['PATH']}"})
        assert result.returncode == 7, f"{tool}: {result.stderr}"
        report = json.loads(result.stdout)
        assert (report["exit_code"], report["result"]) == (7, "PackageError"), tool
        assert report["tasks"]["package:hello"]["status"] == "failed"
        line = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
        assert line.startswith(f"error: package:hello: {what}: command failed with exit code 1: "), line
        assert f" {tool} " in line, line
        assert f"{tool}: broken on purpose" in result.stderr  # the log's tail
        assert "Traceback" not in result.stderr
        assert not deb.exists() and not list(deb.parent.glob(".*.partial")), f"{tool}: nothing half-written"
        assert not list((root / "build" / "native32-i386").glob("hello.*.partial")), f"{tool}: the staging folder is gone"
