"""upstream-tests.yaml loading and the reading of `go test -json` output: pure logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dock32.checks.upstream import (
    GoTestRun,
    Outcome,
    classify,
    failures_from_go_test_json,
    flaky_failures,
    go_test_runs,
    on_path_build,
    package_results,
    passed_tests,
    rerun,
)
from dock32.core.errors import ConfigError
from dock32.model.config import GoModuleSource, load_config
from dock32.model.upstreamcfg import PACKAGE_LEVEL, UpstreamSuite, load_upstream_suites

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
    assert {"cli", "containerd", "runc", "engine"} <= set(suites)
    assert all(reason.strip() for s in suites.values() for reason in [*s.known_failures.values(), *s.environment_failures.values()])
    # Each listed package is one of the component's own: an import path that the module's path starts.
    modules = {c.name: c.source.module for c in CONFIG.components if isinstance(c.source, GoModuleSource)}
    for s in suites.values():
        assert all(package.startswith(modules[s.component]) for package, _ in [*s.known_failures, *s.environment_failures]), s.component


def test_the_engine_suite_is_hack_test_unit() -> None:
    engine = next(s for s in load_upstream_suites(ROOT / "upstream-tests.yaml", CONFIG) if s.component == "engine")
    assert engine.tags == ("netgo", "journald")
    assert engine.sequential == ("./daemon/libnetwork/...",)
    assert engine.on_path == ("./cmd/docker-proxy",)
    assert {"./integration/...", "./integration-cli/..."} <= set(engine.exclude)
    assert flaky_failures({("p", "TestFlakyDNS"): "", ("p", "TestDNS"): ""}, engine.flaky) == {"p": {"TestFlakyDNS"}}


def test_the_new_keys_load(tmp_path: Path) -> None:
    path = tmp_path / "upstream-tests.yaml"
    path.write_text(
        "suites:\n  engine:\n    packages: [./...]\n    tags: [netgo, journald]\n    sequential: [./daemon/libnetwork/...]\n"
        "    flaky: TestFlaky\n    on_path: [./cmd/docker-proxy]\n"
    )
    (suite,) = load_upstream_suites(path, CONFIG)
    assert (suite.tags, suite.sequential, suite.flaky, suite.on_path) == (
        ("netgo", "journald"), ("./daemon/libnetwork/...",), "TestFlaky", ("./cmd/docker-proxy",)
    )
    path.write_text("suites:\n  cli:\n    packages: [./...]\n")
    (plain,) = load_upstream_suites(path, CONFIG)
    assert (plain.tags, plain.sequential, plain.flaky, plain.on_path) == ((), (), None, ())


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
        ("suites:\n  cli:\n    packages: [./...]\n    tags: [net go]\n", "upstream-tests.yaml:4: suites.cli.tags[0]: expected a build tag like 'netgo'"),
        ("suites:\n  cli:\n    packages: [./...]\n    tags: netgo\n", "upstream-tests.yaml:4: suites.cli.tags: expected a list"),
        ("suites:\n  cli:\n    packages: [./...]\n    sequential: [libnet]\n", "upstream-tests.yaml:4: suites.cli.sequential[0]: expected a package pattern"),
        ("suites:\n  cli:\n    packages: [./...]\n    on_path: [docker-proxy]\n", "upstream-tests.yaml:4: suites.cli.on_path[0]: expected a package pattern"),
        ("suites:\n  cli:\n    packages: [./...]\n    flaky: 'Test(Flaky'\n", "upstream-tests.yaml:4: suites.cli.flaky: expected a regular expression"),
        ("suites:\n  cli:\n    packages: [./...]\n    flaky: [TestFlaky]\n", "upstream-tests.yaml:4: suites.cli.flaky: expected a string like 'TestFlaky.*'"),
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


SUITE = UpstreamSuite(
    "engine", ("./...",), ("./integration/...",), 15, {}, tags=("netgo", "journald"), sequential=("./daemon/libnetwork/...",), flaky="TestFlaky"
)


def test_packages_that_must_run_alone_run_after_the_rest_one_at_a_time() -> None:
    flags = ["-tags=netgo,journald"]
    runs = go_test_runs(SUITE, "go", flags, ["m/daemon", "m/daemon/libnetwork/iptables", "m/pkg/x"], {"m/daemon/libnetwork/iptables"})
    common = ("go", "test", "-json", "-count=1", "-timeout=15m", "-tags=netgo,journald")
    assert runs == [
        GoTestRun("main", (*common, "m/daemon", "m/pkg/x")),
        GoTestRun("sequential", (*common, "-p=1", "m/daemon/libnetwork/iptables")),
    ]
    assert [r.name for r in go_test_runs(SUITE, "go", [], ["m/daemon/libnetwork/iptables"], {"m/daemon/libnetwork/iptables"})] == ["sequential"]
    assert [r.name for r in go_test_runs(SUITE, "go", [], ["./..."], set())] == ["main"]


def test_commands_the_tests_run_are_built_with_the_tests_flags() -> None:
    argv = on_path_build("go", ["-tags=netgo,journald"], ("./cmd/docker-proxy",), Path("/t/bin"))
    assert argv == ("go", "build", "-tags=netgo,journald", "-o", "/t/bin/", "./cmd/docker-proxy")


def test_only_flaky_tests_run_again_and_by_their_top_level_name() -> None:
    failed = {("p", "TestFlakyDNS/udp"): "timeout", ("p", "TestSteady"): "boom", ("q", "TestFlakyPort"): "x", ("q", PACKAGE_LEVEL): "panic"}
    pending = flaky_failures(failed, "TestFlaky")
    assert pending == {"p": {"TestFlakyDNS"}, "q": {"TestFlakyPort"}}
    assert flaky_failures(failed, None) == {}
    again = rerun(SUITE, "go", ["-tags=netgo"], pending, 2)
    assert again == GoTestRun(
        "rerun-2", ("go", "test", "-json", "-count=1", "-timeout=15m", "-tags=netgo", "-p=1", "-run=^(TestFlakyDNS|TestFlakyPort)$", "p", "q")
    )


def test_the_tests_that_passed_in_a_rerun() -> None:
    lines = [event("pass", package="p", test="TestFlakyDNS"), event("fail", package="q", test="TestFlakyPort"), event("pass", package="p"), "PASS"]
    assert passed_tests(lines) == {("p", "TestFlakyDNS")}
