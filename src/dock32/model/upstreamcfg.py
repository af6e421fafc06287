"""upstream-tests.yaml, loaded once: per component, the Go test packages `doit test-upstream` runs and the failures
known on this architecture (dock32.checks.upstream runs them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dock32.model.config import BuildConfig, GoModuleSource
from dock32.model.yamlsrc import Node, load_yaml

# A package's own failure (it does not build, or it fails outside any test) is listed under this name.
PACKAGE_LEVEL = "(package)"
_PATTERN = re.compile(r"^\./[A-Za-z0-9_./-]*$")
_TEST_NAME = re.compile(r"^(Test\w+(/\S+)?|\(package\))$")
_BUILD_TAG = re.compile(r"^[A-Za-z0-9_.]+$")
_KEYS = ("packages", "exclude", "sequential", "tags", "flaky", "on_path", "timeout_minutes", "known_failures", "environment_failures")


@dataclass(frozen=True)
class UpstreamSuite:
    component: str
    packages: tuple[str, ...]  # go test patterns in the component's tree, e.g. ./...
    exclude: tuple[str, ...]  # patterns whose packages are left out, as upstream's own test targets do (./e2e/...)
    timeout_minutes: int
    known_failures: dict[tuple[str, str], str]  # (import path, test name) -> reason; must fail
    # Failures that depend on the machine (no internet, fewer capabilities): may fail or pass.
    environment_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()  # build tags, as upstream's test target passes them (moby: netgo journald)
    # Patterns whose packages cannot be tested beside each other (moby's libnetwork: they all use iptables): they run
    # after the rest, in a `go test -p=1` of their own.
    sequential: tuple[str, ...] = ()
    flaky: str | None = None  # regexp of top-level test names that, when they fail, run again up to FLAKY_RERUNS times
    # Commands of the tree (./cmd/docker-proxy) that the tests run from PATH: built first, for the target, as
    # hack/test/unit installs docker-proxy.
    on_path: tuple[str, ...] = ()


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
        fields = node.mapping(allowed=_KEYS, required=("packages",))
        patterns, excluded, sequential, on_path = (
            _patterns(fields[key]) if key in fields else () for key in ("packages", "exclude", "sequential", "on_path")
        )
        timeout = fields["timeout_minutes"].value if "timeout_minutes" in fields else 30
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise fields["timeout_minutes"].error(f"expected a whole number of minutes, got {timeout!r}")
        known, environment = (_failure_list(fields[key]) if key in fields else {} for key in ("known_failures", "environment_failures"))
        suites.append(
            UpstreamSuite(
                name, patterns, excluded, timeout, known, environment,
                tags=_tags(fields["tags"]) if "tags" in fields else (),
                sequential=sequential,
                flaky=_regexp(fields["flaky"]) if "flaky" in fields else None,
                on_path=on_path,
            )
        )
    return tuple(suites)


def _patterns(node: Node) -> tuple[str, ...]:
    for pattern in node.sequence():
        if not _PATTERN.match(pattern.string("./...")):
            raise pattern.error(f"expected a package pattern inside the tree like './...', got {pattern.value!r}")
    return node.strings()


def _tags(node: Node) -> tuple[str, ...]:
    for tag in node.sequence():
        if not _BUILD_TAG.match(tag.string("netgo")):
            raise tag.error(f"expected a build tag like 'netgo' (letters, digits, '_' and '.'), got {tag.value!r}")
    return node.strings()


def _regexp(node: Node) -> str:
    text = node.string("TestFlaky.*")
    try:
        re.compile(text)
    except re.error as error:
        raise node.error(f"expected a regular expression of test names like 'TestFlaky.*': {error}") from None
    return text


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
