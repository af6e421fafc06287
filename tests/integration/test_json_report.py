"""`dock32 build --json`: one JSON document on stdout with what CI needs, and exit codes that tell the kind of failure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .conftest import PATCH, run_dock32

pytestmark = pytest.mark.integration


def test_json_report_of_a_build_then_of_a_build_with_nothing_to_do(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    first = run_dock32(root, "build", "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)  # stdout holds the document alone; doit's lines went to stderr
    assert "compile:hello" in first.stderr
    assert (report["result"], report["exit_code"], report["error"], report["target"]) == ("ok", 0, None, "native32-i386")
    assert report["tasks"]["compile:hello"]["status"] == "ran" and report["tasks"]["compile:hello"]["seconds"] > 0
    binary = root / "build" / "native32-i386" / "bin" / "hello"
    assert report["binaries"]["hello"]["sha256"] == hashlib.sha256(binary.read_bytes()).hexdigest()
    again = json.loads(run_dock32(root, "build", "--json", env=env).stdout)
    assert {t["status"] for t in again["tasks"].values()} == {"up-to-date"}


@pytest.mark.parametrize(
    ("breakage", "code", "kind"),
    [("config", 2, "ConfigError"), ("patch", 5, "PatchError"), ("compile", 6, "BuildError")],
)
def test_exit_codes_and_json_tell_the_kind_of_failure(tiny, breakage: str, code: int, kind: str) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    patch = root / "patches" / "hello" / "0001-greet.patch"
    if breakage == "config":
        config = root / "buildcfg.yaml"
        config.write_text(config.read_text().replace("components:", "componnets:"))
    elif breakage == "patch":
        patch.write_text(PATCH.replace("v.major, v.minor)\n+", "v.major, v.MINOR)\n+"))
    else:
        patch.write_text(PATCH.replace("+15,5", "+15,6").replace('+\tfmt.Printf("patched', '+\tundefinedThing()\n+\tfmt.Printf("patched'))
    result = run_dock32(root, "build", "--json", env=env)
    assert result.returncode == code, result.stderr
    report = json.loads(result.stdout)
    assert (report["exit_code"], report["result"]) == (code, kind)
    assert report["error"] and "\n" not in report["error"]
    assert "Traceback" not in result.stderr


def test_the_exit_codes_are_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code in ("2 config", "3 fetch", "5 patch", "6 build", "7 package", "8 verify", "130"):
        assert code in readme, code
