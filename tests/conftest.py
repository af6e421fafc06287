"""Shared helpers: the project root and a factory for small dock32 projects in a temporary folder."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A dock32 project folder with the real toolchains/ and a buildcfg.yaml the test writes."""

    def make(buildcfg: str, patches: dict[str, dict[str, str]] | None = None) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        shutil.copytree(ROOT / "toolchains", root / "toolchains", dirs_exist_ok=True)
        (root / "buildcfg.yaml").write_text(buildcfg, encoding="utf-8")
        for component, files in (patches or {}).items():
            folder = root / "patches" / component
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (folder / name).write_text(text, encoding="utf-8")
        return root

    return make


# --- signals: a test that relies on one sets the disposition it needs --------------------------------
# A suite started as a background job of a script, by a nohup-style launcher or by some CI runners inherits SIGINT
# ignored: Python then installs no handler of its own (no KeyboardInterrupt, _thread.interrupt_main() does nothing),
# and every process it starts keeps ignoring SIGINT too, since exec keeps an ignored signal ignored.

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C (SIGINT, or _thread.interrupt_main()) raises KeyboardInterrupt in this process, as on a terminal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def default_signals() -> None:
    """subprocess's preexec_fn for a child that a test stops with a signal: it starts with the default
    dispositions, whatever the test run inherited."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
