"""How a scenario's check passes, fails or skips.

Checks fail by raising ScenarioFailed, never with `assert`: `python -O` drops every assert statement, and with them
every check, so that each scenario would pass. tests/unit/test_scenarios.py keeps assert out of this package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

from dock32.core.errors import VerifyError

T = TypeVar("T")


class ScenarioFailed(VerifyError):
    """A check found the installed packages wrong: the scenario fails and the run goes on with the next one.

    A VerifyError, so that one raised outside a scenario (the sandbox's commands) still ends dock32 as a verify error."""


class Skipped(Exception):
    """A scenario that cannot run on this machine, with the reason."""


def fail(message: str) -> NoReturn:
    raise ScenarioFailed(message)


def expect(condition: bool, message: str) -> None:
    """Fail with message unless condition holds. The message is built either way: where building it needs the
    failure (an item that is only there when the check fails), call fail() under an `if` instead."""
    if not condition:
        fail(message)


def expect_equal(actual: T, expected: T, what: str = "") -> T:
    """actual, if it is expected; else fail with both, after what was compared."""
    if actual != expected:
        fail(f"{what}: {actual!r}, expected {expected!r}" if what else f"{actual!r}, expected {expected!r}")
    return actual


def retry(action: Callable[[], T], attempts: int = 10) -> T:
    """A freshly started server may need a moment before it answers: action again, a second apart, while it fails."""
    for _ in range(attempts - 1):
        try:
            return action()
        except ScenarioFailed:
            time.sleep(1)
    return action()
