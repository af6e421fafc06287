"""doit entry point: load the project once and hand doit the tasks that dock32 plans. All logic is in src/dock32."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

from dock32.core.errors import Dock32Error  # noqa: E402
from dock32.model.project import load_project  # noqa: E402
from dock32.pipeline.tasks import claim_workspace, doit_config, doit_tasks, fail, reporter_for  # noqa: E402

try:
    _project = load_project(Path(__file__).parent)
    claim_workspace(_project, sys.argv[1:])
except Dock32Error as exc:
    fail(exc)

_reporter = reporter_for(_project, sys.stdout)  # it holds the run's memory choice: tasks at once, the compiles' Go settings
DOIT_CONFIG = doit_config(_project.settings, _project.config.target, _reporter)


def task_dock32():  # type: ignore[no-untyped-def]
    """dock32's tasks, each under its own basename (toolchain, fetch, source, compile, manifest, build, doctor)."""
    yield from doit_tasks(_project, _reporter.memory)
