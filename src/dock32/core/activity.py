"""What a task is doing inside its step (a download's bytes so far), for whoever shows the build's progress.

The steps below the pipeline cannot know how the run is shown; they report here, and the progress display
(pipeline/progress.py) listens. With no listener (a test, `dock32 bump`), a step shows its own bar.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

# label, bytes so far, bytes in all (None: unknown); done=True when the transfer ended, whichever way.
Listener = Callable[[str, int, "int | None", bool], None]

_lock = threading.Lock()
_listener: Listener | None = None


def listen(listener: Listener | None) -> None:
    """Send every report to listener from now on (None: to nobody)."""
    global _listener
    with _lock:
        _listener = listener


def listening() -> bool:
    return _listener is not None


def transferred(label: str, done: int, total: int | None, finished: bool = False) -> None:
    listener = _listener
    if listener is not None:
        listener(label, done, total, finished)
