"""The Go tests that our patches add run for the build's GOARCH, in the patched trees of the real build.

Each patch that adds a `*_test.go` file brings the test that proves its fix (the SCTP patch's tests show the
socketcall arguments reach the kernel); they run here natively, as 386 programs on this kernel.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dock32.build.steps import go_build_env
from dock32.model.project import load_project
from dock32.sources.patches import Patch, read_series
from dock32.toolchains.toolchain import ResolvedToolchain

from .conftest import ROOT

pytestmark = pytest.mark.e2e

PROJECT = load_project(ROOT)
CONFIG, SETTINGS = PROJECT.config, PROJECT.settings
LAYOUT = PROJECT.layout


def go_tests_of(patch: Patch) -> list[tuple[str, tuple[str, ...]]]:
    """(test file path in the tree, test function names) for each test file the patch adds."""
    found = []
    text = patch.path.read_text(encoding="utf-8")
    for match in re.finditer(r"^\+\+\+ (\S+_test\.go)$", text, re.MULTILINE):
        path = match.group(1).split("/", patch.strip)[-1]
        body = text[match.end():].split("\n--- ", 1)[0]
        found.append((path, tuple(re.findall(r"^\+func (Test\w+)\(t \*testing\.T\)", body, re.MULTILINE))))
    return found


def added_go_tests() -> list[tuple[str, str, tuple[str, ...]]]:
    """(component, test file path in its tree, test function names) for each test file a patch for the pinned
    version adds."""
    return [
        (component.name, path, names)
        for component in CONFIG.components
        for patch in read_series(LAYOUT.patch_dir(component.name))
        if patch.applies_to(component.version, CONFIG.host_arch.names.go)
        for path, names in go_tests_of(patch)
    ]


TESTS = added_go_tests()


def test_the_shipped_patches_bring_go_tests() -> None:
    # Every patch of the series, whichever versions it is for: which of them the pinned engine takes changes with a bump.
    every = [(path, names) for patch in read_series(LAYOUT.patch_dir("engine")) for path, names in go_tests_of(patch)]
    assert ("libnetwork/drivers/bridge/port_mapping_linux_386_test.go", ("TestSetSCTPInitMsgReachesTheKernel",)) in every
    assert ("daemon/libnetwork/portallocator/sctp_linux_386_test.go", ("TestSetSCTPInitMsgReachesTheKernel",)) in every
    assert ("daemon/seccomp_linux_test.go", ("TestDefaultSeccompProfileCoversAmd64On386",)) in every
    assert any(path == "daemon/internal/distribution/platform_fallback_linux_test.go" for path, _ in every)
    assert any(path.endswith("ishidawataru/sctp/sockopt_linux_386_test.go") and len(names) == 3 for path, names in every)
    linux32 = dict(every)
    assert len(linux32["daemon/internal/linux32/linux32_linux_test.go"]) == 3
    assert linux32["daemon/internal/builder-next/executor_linux32_linux_test.go"] == ("TestLinux32ExecutorGivesLinux386StepsLinux32OnAnX86_64Kernel",)
    assert len(linux32["daemon/command/personality_linux32_linux_test.go"]) == 3


@pytest.mark.parametrize(("component_name", "path", "names"), TESTS, ids=[f"{c}:{p}" for c, p, _ in TESTS])
def test_patch_go_test_passes_for_the_target_arch(release_build: Path, component_name: str, path: str, names: tuple[str, ...]) -> None:
    component = next(c for c in CONFIG.components if c.name == component_name)
    tree = LAYOUT.source_tree(component_name)
    package = (tree / path).parent
    # The test runs in the module that holds it: a patched dependency copy has its own go.mod.
    module_root = next(d for d in (package, *package.parents) if (d / "go.mod").is_file())
    toolchain = ResolvedToolchain.from_file(LAYOUT.toolchain_record)
    env = {**go_build_env(component, CONFIG.flavour, CONFIG.release.date, toolchain, SETTINGS), "PATH": "/usr/bin:/bin"}
    modfile = getattr(component.source, "modfile", None)
    argv = [toolchain.go, "test", "-count=1", "-v", "-run", "^(" + "|".join(names) + ")$"]
    if modfile and module_root == tree:
        argv.append(f"-modfile={modfile}")
    argv.append("./" + str(package.relative_to(module_root)))
    result = subprocess.run(argv, cwd=module_root, env=env, capture_output=True, text=True, check=False, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for name in names:
        assert re.search(rf"^--- (PASS|SKIP): {name} ", output, re.MULTILINE), f"{name} did not run:\n{output[-2000:]}"
    # A test may skip where the kernel lacks what it needs (SCTP), but not all of a patch's tests.
    assert re.search(r"^--- PASS: ", output, re.MULTILINE), f"none of {names} passed:\n{output[-2000:]}"
