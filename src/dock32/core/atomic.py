"""Files that a later run or doit's dependency check trusts are written under a temporary name beside their
final one and renamed into place only when complete: a crash leaves the old file or none, never half of one.
Whatever a killed run left under a *.partial name is removed by the next run (workspace.sweep_leftovers)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dock32.core import modes


def write_bytes(path: Path, data: bytes) -> None:
    modes.make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            # Renamed only once the bytes are on disk, so that a power loss cannot leave an empty file under the name.
            os.fsync(out.fileno())
        # mkstemp makes it 0600: as it is, no other user could read a Packages index or a manifest.
        os.chmod(tmp, modes.FILE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
