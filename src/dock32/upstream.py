"""`doit test-upstream`: the components' own Go tests, built for the target's GOARCH and run on this machine.

x86_64 kernels run i386 programs natively, so `go test` with GOARCH=386 runs the real 386 code. Which tests
fail on 386 for a known reason is checked in (upstream-tests.yaml): a failure not on the list fails the task,
and so does a listed test that passes ("FIXED?"), so the list stays true.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dock32 import atomic
from dock32.build import go_build_env
from dock32.config import BuildConfig, GoModuleSource
from dock32.errors import BuildError
from dock32.layout import Layout
from dock32.run import capture, stream
from dock32.settings import Settings
from dock32.toolchain import ResolvedToolchain
from dock32.yamlsrc import Node, load_yaml

# A package's own failure (it does not build, or it fails outside any test) is listed under this name.
PACKAGE_LEVEL = "(package)"
_PATTERN = re.compile(r"^\./[A-Za-z0-9_./-]*$")
_TEST_NAME = re.compile(r"^(Test\w+(/\S+)?|\(package\))$")


@dataclass(frozen=True)
class UpstreamSuite:
    component: str
    packages: tuple[str, ...]  # go test patterns in the component's tree, e.g. ./...
    exclude: tuple[str, ...]  # patterns whose packages are left out, as upstream's own test targets do (./e2e/...)
    timeout_minutes: int
    known_failures: dict[tuple[str, str], str]  # (import path, test name) -> reason; must fail
    # Failures that depend on the machine (no internet, fewer capabilities): may fail or pass.
    environment_failures: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    package: str
    test: str
    status: str  # FAIL, known-failure, environment (a failure this machine causes), FIXED?
    detail: str


def load_upstream_suites(path: Path, config: BuildConfig) -> tuple[UpstreamSuite, ...]:
    """upstream-tests.yaml: per component, the packages to test and the failures known on this architecture."""
    root = load_yaml(path).mapping(allowed=("suites",), required=("suites",))
    components = {c.name: c for c in config.components}
    suites = []
    for name, node in root["suites"].mapping().items():
        if name not in components:
            raise node.error(f"no component {name!r} in buildcfg.yaml", hint=f"components: {', '.join(components)}")
        if not isinstance(components[name].source, GoModuleSource):
            raise node.error(f"{name} is not a Go module: its tests are not Go tests")
        fields = node.mapping(allowed=("packages", "exclude", "timeout_minutes", "known_failures", "environment_failures"), required=("packages",))
        patterns = fields["packages"].sequence()
        excluded = fields["exclude"].sequence() if "exclude" in fields else []
        for pattern in [*patterns, *excluded]:
            if not _PATTERN.match(pattern.string("./...")):
                raise pattern.error(f"expected a package pattern inside the tree like './...', got {pattern.value!r}")
        timeout = fields["timeout_minutes"].value if "timeout_minutes" in fields else 30
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise fields["timeout_minutes"].error(f"expected a whole number of minutes, got {timeout!r}")
        known, environment = (_failure_list(fields[key]) if key in fields else {} for key in ("known_failures", "environment_failures"))
        suites.append(UpstreamSuite(name, tuple(p.string() for p in patterns), tuple(p.string() for p in excluded), timeout, known, environment))
    return tuple(suites)


def _failure_list(node: Node) -> dict[tuple[str, str], str]:
    """package import path -> test name -> reason."""
    failures: dict[tuple[str, str], str] = {}
    for package, tests in node.mapping().items():
        for test, reason in tests.mapping().items():
            if not _TEST_NAME.match(test):
                raise reason.error(f"expected a test name like TestFoo or TestFoo/sub, or {PACKAGE_LEVEL}")
            failures[(package, test)] = reason.string("why it fails on this architecture")
    return failures


def load_optional(path: Path, config: BuildConfig) -> tuple[UpstreamSuite, ...]:
    return load_upstream_suites(path, config) if path.is_file() else ()


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


def run_suite(config: BuildConfig, suite: UpstreamSuite, settings: Settings, layout: Layout) -> None:
    component = config.component(suite.component)
    source = component.source
    assert isinstance(source, GoModuleSource)
    toolchain = ResolvedToolchain.from_file(layout.toolchain_record)
    tree = layout.source_tree(component.name)
    log = layout.log(f"test-upstream-{component.name}")
    log.parent.mkdir(parents=True, exist_ok=True)
    modfile = [f"-modfile={source.modfile}"] if source.modfile else []
    env = go_build_env(config, component, toolchain, settings)
    packages = list(suite.packages)
    if suite.exclude:
        listed = capture([toolchain.go, "list", *modfile, *suite.packages], env=env, cwd=tree)
        left_out = capture([toolchain.go, "list", *modfile, *suite.exclude], env=env, cwd=tree)
        if listed.returncode != 0 or left_out.returncode != 0:
            reason = (listed.stderr or left_out.stderr).strip()[-300:]
            raise BuildError(f"go list failed in {component.name}: {reason}", hint="check the packages and exclude patterns in upstream-tests.yaml")
        packages = sorted(set(listed.stdout.split()) - set(left_out.stdout.split()))
    argv = [toolchain.go, "test", "-json", "-count=1", f"-timeout={suite.timeout_minutes}m", *modfile, *packages]
    print(f"go test {' '.join(suite.packages)} in {component.name} for GOARCH={env['GOARCH']} (log: {log})", flush=True)
    start = time.monotonic()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        _show_progress(line)

    returncode = stream(argv, log=log, on_line=on_line, env=env, cwd=tree)
    failed, passed, skipped = failures_from_go_test_json(lines)
    per_package = package_results(lines)
    ran_packages = set(per_package)
    outcomes = classify(failed, suite.known_failures, ran_packages, suite.environment_failures)
    seconds = round(time.monotonic() - start, 1)
    for o in outcomes:
        print(f"{o.status:>13}  {o.package} {o.test}: {o.detail}")
    known = sum(o.status in ("known-failure", "environment") for o in outcomes)
    print(f"{component.name}: {passed} passed, {skipped} skipped, {len(failed)} failed ({known} listed) in {seconds} s")
    report = {
        "component": component.name, "goarch": env["GOARCH"], "patterns": list(suite.packages), "seconds": seconds,
        "passed": passed, "skipped": skipped, "outcomes": [asdict(o) for o in outcomes], "packages": per_package,
    }
    atomic.write_text(layout.target_dir / f"upstream-tests-{component.name}.json", json.dumps(report, indent=2) + "\n")
    bad = [o for o in outcomes if o.status in ("FAIL", "FIXED?")]
    if not any(line.startswith("{") for line in lines) and returncode != 0:
        raise BuildError(f"go test did not run in {component.name} (exit {returncode}): {lines[-1].strip() if lines else ''}", hint=f"see {log}")
    if returncode < 0 or (returncode != 0 and not failed):
        # Killed (the OOM killer, a timeout) or failed outside any package: what did not run is unknown.
        raise BuildError(f"go test in {component.name} ended with exit code {returncode} without reporting the failure", hint=f"see {log}")
    if bad:
        names = ", ".join(f"{o.package.rsplit('/', 1)[-1]}.{o.test}" for o in bad[:6]) + (" ..." if len(bad) > 6 else "")
        raise BuildError(
            f"{component.name}: {len(bad)} upstream test results not on the known list: {names}",
            hint=f"details in {layout.target_dir / f'upstream-tests-{component.name}.json'} and {log}",
        )


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

