"""upstream-tests.yaml loading and the reading of `go test -json` output: pure logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dock32.config import load_config
from dock32.errors import ConfigError
from dock32.upstream import PACKAGE_LEVEL, Outcome, classify, failures_from_go_test_json, load_upstream_suites, package_results

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "buildcfg.yaml")


def event(action: str, package: str = "example.com/p", test: str | None = None, output: str | None = None) -> str:
    data: dict[str, object] = {"Action": action, "Package": package}
    if test:
        data["Test"] = test
    if output is not None:
        data["Output"] = output
    if action in ("pass", "fail", "skip"):
        data["Elapsed"] = 0.1
    return json.dumps(data)


def test_the_shipped_list_loads() -> None:
    suites = {s.component: s for s in load_upstream_suites(ROOT / "upstream-tests.yaml", CONFIG)}
    assert {"cli", "containerd", "runc"} <= set(suites)
    assert all(reason.strip() for s in suites.values() for reason in s.known_failures.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("suites:\n  nosuch:\n    packages: [./...]\n", "upstream-tests.yaml:3: suites.nosuch: no component 'nosuch' in buildcfg.yaml"),
        ("suites:\n  tini:\n    packages: [./...]\n", "upstream-tests.yaml:3: suites.tini: tini is not a Go module"),
        ("suites:\n  cli:\n    packages: [/etc]\n", "upstream-tests.yaml:3: suites.cli.packages[0]: expected a package pattern inside the tree"),
        ("suites:\n  cli:\n    packages: [./...]\n    timeout_minutes: 0\n", "upstream-tests.yaml:4: suites.cli.timeout_minutes: expected a whole number"),
        (
            "suites:\n  cli:\n    packages: [./...]\n    known_failures:\n      a/b:\n        notATest: x\n",
            "upstream-tests.yaml:6: suites.cli.known_failures.a/b.notATest: expected a test name",
        ),
        ("suites:\n  cli:\n    pakages: [./...]\n", "upstream-tests.yaml:3: suites.cli.pakages: unknown key"),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "upstream-tests.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_upstream_suites(path, CONFIG)
    assert str(caught.value).startswith(message), str(caught.value)


def test_innermost_failures_with_their_output_and_counts() -> None:
    lines = [
        event("start"),
        event("run", test="TestA"),
        event("output", test="TestA", output="ok\n"),
        event("pass", test="TestA"),
        event("output", test="TestB/sub", output="want 4, got 8\n"),
        event("fail", test="TestB/sub"),
        event("fail", test="TestB"),
        event("skip", test="TestC"),
        "# example.com/p [example.com/p.test]",
        event("fail"),
        event("start", package="example.com/broken"),
        event("output", package="example.com/broken", output="undefined: x\n"),
        event("fail", package="example.com/broken"),
    ]
    failed, passed, skipped = failures_from_go_test_json(lines)
    assert failed == {("example.com/p", "TestB/sub"): "want 4, got 8", ("example.com/broken", PACKAGE_LEVEL): "undefined: x"}
    assert (passed, skipped) == (1, 1)
    assert package_results(lines) == {"example.com/broken": "fail", "example.com/p": "fail"}


def test_a_package_that_does_not_link_names_the_linker_error() -> None:
    build = {"ImportPath": "example.com/c.test", "Action": "build-output"}
    lines = [
        json.dumps({**build, "Output": "# example.com/c.test\n"}),
        json.dumps({**build, "Output": "/tmp/go-build/escape.cgo2.c:54: undefined reference to `escape_json_string'\n"}),
        json.dumps({**build, "Output": "collect2: error: ld returned 1 exit status\n"}),
        event("output", package="example.com/c", output="FAIL\texample.com/c [build failed]\n"),
        event("fail", package="example.com/c"),
    ]
    failed, _, _ = failures_from_go_test_json(lines)
    assert failed == {("example.com/c", PACKAGE_LEVEL): "/tmp/go-build/escape.cgo2.c:54: undefined reference to `escape_json_string'"}


def test_a_panic_at_init_is_the_reason() -> None:
    lines = [
        event("output", package="example.com/i", output="panic: getImages error: permission denied\n"),
        event("output", package="example.com/i", output="goroutine 1 [running]:\n"),
        event("output", package="example.com/i", output="FAIL\texample.com/i\t0.02s\n"),
        event("fail", package="example.com/i"),
    ]
    failed, _, _ = failures_from_go_test_json(lines)
    assert failed == {("example.com/i", PACKAGE_LEVEL): "panic: getImages error: permission denied"}


def test_known_failures_are_shown_new_ones_fail_and_fixed_ones_must_go() -> None:
    failed = {("p", "TestOld"): "boom", ("p", "TestNew"): "last line"}
    known = {("p", "TestOld"): "int overflow on 386", ("p", "TestGone"): "was flaky", ("q", "TestNotRun"): "q was not tested"}
    outcomes = classify(failed, known, ran_packages={"p"})
    assert outcomes == [
        Outcome("p", "TestNew", "FAIL", "last line"),
        Outcome("p", "TestOld", "known-failure", "int overflow on 386"),
        Outcome("p", "TestGone", "FIXED?", "passes now: remove it from upstream-tests.yaml (was flaky)"),
    ]


def test_machine_caused_failures_may_fail_or_pass() -> None:
    environment = {("p", "TestNeedsInternet"): "clones from the internet"}
    failing = classify({("p", "TestNeedsInternet"): "could not resolve host"}, {}, {"p"}, environment)
    assert failing == [Outcome("p", "TestNeedsInternet", "environment", "clones from the internet")]
    assert classify({}, {}, {"p"}, environment) == []
