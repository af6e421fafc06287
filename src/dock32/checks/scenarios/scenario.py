"""A verify scenario as data: its name, what it needs of the machine, which flavours it is for and its check; the
context a check works with; which scenarios apply to a flavour on a machine; and running one of them."""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dock32.checks.scenarios.check import Skipped
from dock32.checks.scenarios.machine import Machine, Need
from dock32.core.errors import CommandFailed, VerifyError
from dock32.model.config import BuildConfig, DebPackage
from dock32.model.flavour import Flavour
from dock32.model.layout import Layout

# In a scenario's name, the Go architecture of the flavour's programs (386, amd64).
GOARCH = "{goarch}"


@dataclass(frozen=True)
class Context:
    """What a check works with: the build it verifies, and the machine where its packages are installed and running
    (named sandbox: every kind of machine is one to the scenarios)."""

    config: BuildConfig
    packages: tuple[DebPackage, ...]
    layout: Layout
    sandbox: Machine
    scratch: Path  # this run's own folder, for downloads and tools
    log: Path

    @property
    def goarch(self) -> str:
        """What the programs are: 386 for native32, amd64 for multiarch64 (in the same i386 packages and root)."""
        return self.config.host_arch.names.go


def every_flavour(flavour: Flavour) -> bool:
    return True


@dataclass(frozen=True)
class Scenario:
    """One check of the installed packages. It returns what it saw (one line), fails by raising ScenarioFailed and
    may count on what the scenarios before it made (the i386 image): the catalogue's order is part of it."""

    name: str  # may hold GOARCH
    check: Callable[[Context], str]
    needs: tuple[Need, ...] = ()
    # A scenario for other flavours is left out, not skipped: it checks nothing that this build has.
    applies_to: Callable[[Flavour], bool] = every_flavour
    # Why it fails today, for a bug found and not yet fixed. It still runs: a failure shows as "known-bug" with this
    # reason and does not fail the run; a pass shows as "FIXED?", which does, so that the reason is removed.
    known_bug: str | None = None

    def name_for(self, flavour: Flavour) -> str:
        return self.name.replace(GOARCH, flavour.host_arch.names.go)


@dataclass(frozen=True)
class Selected:
    """A scenario as it runs for this flavour on this machine."""

    name: str
    scenario: Scenario
    skip: str | None = None  # why it cannot run here: the first need the machine lacks


def select(scenarios: Sequence[Scenario], flavour: Flavour, offers: frozenset[Need]) -> list[Selected]:
    """The scenarios for flavour, in their order, each skipped where the machine (which offers `offers`) lacks a need."""
    return [
        Selected(scenario.name_for(flavour), scenario, next((need.value for need in scenario.needs if need not in offers), None))
        for scenario in scenarios
        if scenario.applies_to(flavour)
    ]


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    status: str  # pass, FAIL, skipped, known-bug, FIXED?
    detail: str
    seconds: float


def run_selected(selected: Selected, context: Context) -> ScenarioResult:
    if selected.skip is not None:
        return ScenarioResult(selected.name, "skipped", selected.skip, 0.0)
    return run_scenario(selected.name, functools.partial(selected.scenario.check, context), selected.scenario.known_bug)


def run_scenario(name: str, check: Callable[[], str], known_bug: str | None = None) -> ScenarioResult:
    """Run one check and classify it. Anything but a failed check or a skip (a crash, Ctrl-C) propagates, so that
    the caller's cleanup runs and the run stops."""
    start = time.monotonic()
    try:
        status, detail = "pass", check()
    except Skipped as exc:
        status, detail = "skipped", str(exc)
    except (VerifyError, CommandFailed, subprocess.TimeoutExpired) as exc:  # ScenarioFailed is a VerifyError; CommandFailed a failed command
        status, detail = "FAIL", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if known_bug is not None and status == "FAIL":
        status, detail = "known-bug", f"{known_bug} ({detail})"
    elif known_bug is not None and status == "pass":
        status, detail = "FIXED?", "passes: remove its known_bug"
    return ScenarioResult(name, status, detail, round(time.monotonic() - start, 1))
