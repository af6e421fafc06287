"""Reading moby's own files in the engine tree: its Dockerfile ARGs and hack/dockerfile/install defaults."""

from __future__ import annotations

import re
from pathlib import Path

_ARG = re.compile(r"^[ \t]*ARG[ \t]+([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"']+)", re.MULTILINE)
_INSTALLER = re.compile(r"^[ \t]*:[ \t]+\"?\$\{([A-Za-z_][A-Za-z0-9_]*):=([^}\s]+)\}\"?", re.MULTILINE)


def dockerfile_args(text: str) -> dict[str, str]:
    """The ARGs with a literal default (the first one of each name), quotes removed."""
    found: dict[str, str] = {}
    for name, value in _ARG.findall(text):
        value = value.strip("\"'")
        if name not in found and "$" not in value:
            found[name] = value
    return found


def installer_defaults(text: str) -> dict[str, str]:
    """The `: "${NAME:=value}"` defaults of a hack/dockerfile/install/*.installer script."""
    return {name: value for name, value in _INSTALLER.findall(text) if "$" not in value}


def upstream_arg(tree: Path, name: str) -> tuple[str, str] | None:
    """(value, where it was found) of a build ARG of moby's tree: the Dockerfile first, then the installer scripts."""
    dockerfile = tree / "Dockerfile"
    if dockerfile.is_file():
        value = dockerfile_args(dockerfile.read_text(encoding="utf-8", errors="replace")).get(name)
        if value:
            return value, f"moby Dockerfile: ARG {name}"
    for script in sorted((tree / "hack" / "dockerfile" / "install").glob("*.installer")):
        value = installer_defaults(script.read_text(encoding="utf-8", errors="replace")).get(name)
        if value:
            return value, f"moby hack/dockerfile/install/{script.name}: {name}"
    return None
