"""`doit test-upstream`: the components' own Go tests, built for the target's GOARCH and run on this machine.

x86_64 kernels run i386 programs natively, so `go test` with GOARCH=386 runs the real 386 code. Which tests
fail on 386 for a known reason is checked in (upstream-tests.yaml): a failure not on the list fails the task,
and so does a listed test that passes ("FIXED?"), so the list stays true.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dock32.build.steps import go_build_env
from dock32.core import atomic, modes
from dock32.core.errors import BuildError
from dock32.core.run import capture, run, stream
from dock32.model.config import BuildConfig, GoModuleSource
from dock32.model.layout import Layout
from dock32.model.settings import Settings
from dock32.model.upstreamcfg import PACKAGE_LEVEL, UpstreamSuite
from dock32.toolchains.toolchain import ResolvedToolchain

# A failing test that `flaky` names runs again, alone, up to this many times: hack/test/unit's gotestsum --rerun-fails=4.
FLAKY_RERUNS = 4
@dataclass(frozen=True)
class GoTestRun:
    """One `go test` of a suite; a suite is one or more (the packages that must run one at a time, reruns)."""

    name: str  # main, sequential, rerun-<n>
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    package: str
    test: str
    status: str  # FAIL, known-failure, environment (a failure this machine causes), FIXED?, flaky (passed when run again)
    detail: str


def failures_from_go_test_json(lines: list[str]) -> tuple[dict[tuple[str, str], str], int, int]:
    """The failed (package, test) pairs with the tail of their output, and the counts of passed and skipped tests.

    A failed subtest fails its parent too; only the innermost failures are kept, so the list names what broke.
    """
    output: dict[tuple[str, str], list[str]] = {}
    failed: dict[tuple[str, str], str] = {}
    passed = skipped = 0
    for line in lines:
        if not line.startswith("{"):
            continue  # build errors of a package arrive as plain text too; its JSON "fail" event covers them
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        package, test, action = event.get("Package", ""), event.get("Test") or PACKAGE_LEVEL, event.get("Action")
        if action == "build-output":
            # The compiler's and linker's words on a package that did not build (ImportPath "p.test" or "p [p.test]").
            package = event.get("ImportPath", "").split(" ")[0].removesuffix(".test")
            action = "output"
        key = (package, test)
        if action == "output":
            output.setdefault(key, []).append(event.get("Output", ""))
        elif action == "fail":
            failed[key] = _telling_line(output.get(key, []))
        elif action == "pass" and test != PACKAGE_LEVEL:
            passed += 1
        elif action == "skip" and test != PACKAGE_LEVEL:
            skipped += 1
    innermost = {
        (package, test): detail
        for (package, test), detail in failed.items()
        if not any(other_package == package and other.startswith(test + "/") for other_package, other in failed)
    }
    # A package that failed only because some of its tests did is not a failure of its own.
    for package in {p for p, t in innermost if t != PACKAGE_LEVEL}:
        innermost.pop((package, PACKAGE_LEVEL), None)
    return innermost, passed, skipped


_TELLING = re.compile(r"^\s*(panic:|fatal error:|.*undefined reference|.*\bError:|.*error:|.*must be set)", re.IGNORECASE)


def _telling_line(output: list[str]) -> str:
    """The line that says why: a panic, a build or link error, or else the last words before the verdict."""
    lines = [line.rstrip() for chunk in output for line in chunk.splitlines() if line.strip()]
    for line in lines:
        if _TELLING.match(line):
            return line.strip()
    verdicts = ("FAIL", "--- FAIL", "=== RUN", "ok ")
    words = [line.strip() for line in lines if not line.lstrip().startswith(verdicts)]
    return words[-1] if words else (lines[-1].strip() if lines else "")


def package_results(lines: list[str]) -> dict[str, str]:
    """Each package's verdict: pass, fail, or skip (no test files)."""
    results: dict[str, str] = {}
    for line in lines:
        if not line.startswith("{") or '"Test"' in line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("Action") in ("pass", "fail", "skip") and event.get("Package"):
            results[event["Package"]] = event["Action"]
    return dict(sorted(results.items()))


def classify(
    failed: dict[tuple[str, str], str], known: dict[tuple[str, str], str], ran_packages: set[str], environment: dict[tuple[str, str], str] | None = None
) -> list[Outcome]:
    outcomes = []
    for (package, test), detail in sorted(failed.items()):
        if (package, test) in known:
            outcomes.append(Outcome(package, test, "known-failure", known[(package, test)]))
        elif (package, test) in (environment or {}):
            outcomes.append(Outcome(package, test, "environment", (environment or {})[(package, test)]))
        else:
            outcomes.append(Outcome(package, test, "FAIL", detail or "failed"))
    for (package, test), reason in sorted(known.items()):
        if (package, test) not in failed and package in ran_packages:
            outcomes.append(Outcome(package, test, "FIXED?", f"passes now: remove it from upstream-tests.yaml ({reason})"))
    return outcomes


def go_test_runs(suite: UpstreamSuite, go: str, flags: list[str], packages: list[str], one_at_a_time: set[str]) -> list[GoTestRun]:
    """The suite's `go test` commands: its packages together, then those that must run one at a time (-p=1)."""
    common = (go, "test", "-json", "-count=1", f"-timeout={suite.timeout_minutes}m", *flags)
    together = [p for p in packages if p not in one_at_a_time]
    alone = [p for p in packages if p in one_at_a_time]
    runs = [GoTestRun("main", (*common, *together))] if together else []
    if alone:
        runs.append(GoTestRun("sequential", (*common, "-p=1", *alone)))
    return runs


def on_path_build(go: str, flags: list[str], commands: tuple[str, ...], bin_dir: Path) -> tuple[str, ...]:
    """The `go build` of the commands the tests find on PATH, into bin_dir, with the tests' own flags and tags."""
    return (go, "build", *flags, "-o", f"{bin_dir}/", *commands)


def flaky_failures(failed: dict[tuple[str, str], str], pattern: str | None) -> dict[str, set[str]]:
    """package -> the top-level tests that failed and that the suite's flaky pattern names (matched as go test -run does)."""
    tests: dict[str, set[str]] = {}
    for package, test in failed:
        top = test.split("/", 1)[0]
        if pattern is not None and test != PACKAGE_LEVEL and re.search(pattern, top):
            tests.setdefault(package, set()).add(top)
    return tests


def rerun(suite: UpstreamSuite, go: str, flags: list[str], tests: dict[str, set[str]], attempt: int) -> GoTestRun:
    """The flaky tests that failed, again, one package at a time, as hack/test/unit reruns libnetwork's TestFlaky* tests."""
    names = sorted({name for names in tests.values() for name in names})
    argv = (go, "test", "-json", "-count=1", f"-timeout={suite.timeout_minutes}m", *flags, "-p=1", f"-run=^({'|'.join(names)})$", *sorted(tests))
    return GoTestRun(f"rerun-{attempt}", argv)


def passed_tests(lines: list[str]) -> set[tuple[str, str]]:
    """The (package, test) pairs that passed, in `go test -json` output."""
    passed = set()
    for line in lines:
        if line.startswith("{") and '"pass"' in line:
            event = json.loads(line)
            if event.get("Action") == "pass" and event.get("Test"):
                passed.add((event.get("Package", ""), event["Test"]))
    return passed


def run_suite(config: BuildConfig, suite: UpstreamSuite, settings: Settings, layout: Layout) -> None:
    component = config.component(suite.component)
    source = component.source
    assert isinstance(source, GoModuleSource)
    toolchain = ResolvedToolchain.from_file(layout.toolchain_record)
    modes.make_dirs(layout.log(f"test-upstream-{component.name}").parent)
    flags = [*([f"-modfile={source.modfile}"] if source.modfile else []), *([f"-tags={','.join(suite.tags)}"] if suite.tags else [])]
    env = go_build_env(component, config.flavour, config.release.date, toolchain, settings)
    go_test = _GoTest(component.name, env, layout.source_tree(component.name), layout)
    packages, one_at_a_time = list(suite.packages), set()
    if suite.exclude or suite.sequential:
        packages = sorted(go_test.listed(toolchain.go, flags, suite.packages) - go_test.listed(toolchain.go, flags, suite.exclude))
        one_at_a_time = go_test.listed(toolchain.go, flags, suite.sequential)
    start = time.monotonic()
    # A .partial name: what a killed run leaves here, the next run's sweep removes.
    with tempfile.TemporaryDirectory(prefix=f"test-upstream-{component.name}.", suffix=".partial", dir=layout.target_dir) as bin_dir:
        if suite.on_path:
            log = layout.log(f"test-upstream-{component.name}-on-path")
            log.unlink(missing_ok=True)
            what = f"build {', '.join(suite.on_path)} for {component.name}'s tests"
            run(on_path_build(toolchain.go, flags, suite.on_path, Path(bin_dir)), log=log, env=go_test.env, cwd=go_test.tree, what=what)
            go_test.env["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)])
        lines: list[str] = []
        for planned in go_test_runs(suite, toolchain.go, flags, packages, one_at_a_time):
            lines += go_test.checked(planned)
        failed, passed, skipped = failures_from_go_test_json(lines)
        per_package = package_results(lines)
        recovered: dict[tuple[str, str], int] = {}
        for attempt in range(1, FLAKY_RERUNS + 1):
            pending = flaky_failures(failed, suite.flaky)
            if not pending:
                break
            passing = passed_tests(go_test(rerun(suite, toolchain.go, flags, pending, attempt))[1])
            for package, tests in pending.items():
                for test in tests & {t for p, t in passing if p == package}:
                    recovered[(package, test)] = attempt
                    for key in [k for k in failed if k[0] == package and (k[1] == test or k[1].startswith(test + "/"))]:
                        del failed[key]
                    passed += 1
                if per_package.get(package) == "fail" and not any(p == package for p, _ in failed):
                    per_package[package] = "pass"
    outcomes = classify(failed, suite.known_failures, set(per_package), suite.environment_failures)
    outcomes += [Outcome(p, t, "flaky", f"failed {n} time(s), then passed") for (p, t), n in sorted(recovered.items())]
    seconds = round(time.monotonic() - start, 1)
    for o in outcomes:
        print(f"{o.status:>13}  {o.package} {o.test}: {o.detail}")
    known = sum(o.status in ("known-failure", "environment") for o in outcomes)
    print(f"{component.name}: {passed} passed, {skipped} skipped, {len(failed)} failed ({known} listed) in {seconds} s")
    report = {
        "component": component.name, "goarch": go_test.env["GOARCH"], "patterns": list(suite.packages), "tags": list(suite.tags),
        "seconds": seconds, "passed": passed, "skipped": skipped, "outcomes": [asdict(o) for o in outcomes], "packages": per_package,
    }
    results = layout.target_dir / f"upstream-tests-{component.name}.json"
    atomic.write_text(results, json.dumps(report, indent=2) + "\n")
    bad = [o for o in outcomes if o.status in ("FAIL", "FIXED?")]
    if bad:
        names = ", ".join(f"{o.package.rsplit('/', 1)[-1]}.{o.test}" for o in bad[:6]) + (" ..." if len(bad) > 6 else "")
        raise BuildError(
            f"{component.name}: {len(bad)} upstream test results not on the known list: {names}",
            hint=f"details in {results} and {', '.join(str(log) for log in go_test.logs)}",
        )


class _GoTest:
    """Runs a suite's go commands in the component's tree, with one environment, each `go test` into its own log."""

    def __init__(self, component: str, env: dict[str, str], tree: Path, layout: Layout) -> None:
        self.component, self.env, self.tree, self.layout = component, env, tree, layout
        self.logs: list[Path] = []

    def listed(self, go: str, flags: list[str], patterns: tuple[str, ...]) -> set[str]:
        if not patterns:
            return set()
        result = capture([go, "list", *flags, *patterns], env=self.env, cwd=self.tree)
        if result.returncode != 0:
            raise BuildError(
                f"go list failed in {self.component}: {result.stderr.strip()[-300:]}",
                hint="check the packages, exclude and sequential patterns in upstream-tests.yaml",
            )
        return set(result.stdout.split())

    def __call__(self, planned: GoTestRun) -> tuple[int, list[str]]:
        """The run's exit code and output lines."""
        log = self.layout.log(f"test-upstream-{self.component}" + ("" if planned.name == "main" else f"-{planned.name}"))
        self.logs.append(log)
        packages = [a for a in planned.argv[2:] if not a.startswith("-")]
        shown = " ".join(packages) if len(packages) <= 3 else f"{len(packages)} packages"
        print(f"go test {shown} in {self.component} ({planned.name}) for GOARCH={self.env['GOARCH']} (log: {log})", flush=True)
        lines: list[str] = []

        def on_line(line: str) -> None:
            lines.append(line)
            _show_progress(line)

        return stream(list(planned.argv), log=log, on_line=on_line, env=self.env, cwd=self.tree), lines

    def checked(self, planned: GoTestRun) -> list[str]:
        """The run's output lines; an error if it did not run, or failed without saying which package failed."""
        returncode, lines = self(planned)
        if not any(line.startswith("{") for line in lines) and returncode != 0:
            raise BuildError(
                f"go test did not run in {self.component} (exit {returncode}): {lines[-1].strip() if lines else ''}", hint=f"see {self.logs[-1]}"
            )
        if returncode < 0 or (returncode != 0 and not failures_from_go_test_json(lines)[0]):
            # Killed (the OOM killer, a timeout) or failed outside any package: what did not run is unknown.
            raise BuildError(f"go test in {self.component} ended with exit code {returncode} without reporting the failure", hint=f"see {self.logs[-1]}")
        return lines


def _show_progress(line: str) -> None:
    """One line per finished package, so a long run shows it is moving."""
    if '"Test"' in line or not line.startswith("{"):
        return
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return
    if event.get("Action") in ("pass", "fail", "skip") and "Elapsed" in event:
        print(f"  {event['Action']:>4}  {event.get('Package', '')} ({event['Elapsed']} s)", flush=True)

