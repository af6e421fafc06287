"""Version strings as bump moves them: cores, majors, module versions and paths, commits, module paths in text."""

from __future__ import annotations

import re
from datetime import datetime

from dock32.model.config import Component, GoModuleSource

SEMVER = re.compile(r"v(\d+)\.(\d+)\.(\d+)")


def core(version: str) -> str:
    """28.5.2 of v28.5.2+incompatible, 1.7.28 of v1.7.28."""
    return version.removeprefix("v").split("+", 1)[0]


def major(version: str) -> int:
    match = re.match(r"v?(\d+)", version)
    return int(match.group(1)) if match else 0


def version_field(old: str, new_core: str) -> str:
    """The component's version in the form the pin uses: with or without the leading v."""
    return ("v" if old.startswith("v") else "") + new_core


def module_version(old: GoModuleSource, old_core: str, new_core: str) -> str:
    """The module version in the pin's form: v1.2.3, or v28.5.2+incompatible for modules without a go.mod."""
    if old_core and old_core in old.version:
        return old.version.replace(old_core, new_core, 1)
    return "v" + new_core


def module_path(old: GoModuleSource, new_version: str) -> str:
    """The module path for the new version's major: github.com/containerd/containerd/v2 from v2 on."""
    if new_version.endswith("+incompatible"):
        return old.module
    base = re.sub(r"/v\d+$", "", old.module)
    number = major(new_version)
    return f"{base}/v{number}" if number >= 2 else base


def commit_for(
    old: Component, new_version: str, new_source_version: str, origin_hash: str | None, missing: str = "", tag: str | None = None, old_tag: str | None = None
) -> tuple[str, str | None]:
    """(commit, warning) in the pin's form: a tag name where the pin is one, else a hash prefix of the pin's length.
    missing: why there is no hash (default: the proxy's .info has none); tag, old_tag: the git tags of the new and the
    old version where they are not v<version> (moby's docker-v29.8.1)."""
    old_source_version = old.source.version if isinstance(old.source, GoModuleSource) else None
    if old.commit == old_source_version:
        return new_source_version, None
    if old.commit == old.version:
        return new_version, None
    tag = tag or "v" + core(new_version)
    if old.commit in ("v" + core(old.version), old_tag):
        return tag, None
    if re.fullmatch(r"[0-9a-f]{7,40}", old.commit):
        if origin_hash and re.fullmatch(r"[0-9a-f]{40}", origin_hash):
            return origin_hash[: len(old.commit)], None
        missing = missing or f"the proxy records no commit for {tag} (its .info has no Origin.Hash)"
        return tag, f"{old.name}: {missing}; wrote the tag {tag} as commit: put the hash there"
    return tag, f"{old.name}: commit {old.commit!r} is neither a hash nor the tag; wrote the tag {tag}"


def _module_pattern(module: str) -> re.Pattern[str]:
    """module where it is a whole path or a path's start: not inside a longer word or path."""
    return re.compile(rf"(?<![\w.\-/]){re.escape(module)}(?=[/\"'\s]|$)")


def names_module(text: str, module: str) -> bool:
    return _module_pattern(module).search(text) is not None


def rewrite_module_path(text: str, old: str, new: str) -> str:
    """text with the module path old, wherever it names that module or one of its packages (old/pkg.Name, =old), as
    new: -X github.com/docker/docker/dockerversion.Version=... becomes -X github.com/moby/moby/v2/dockerversion.Version=...
    A path that already is new (new = old/v2) stays as it is."""
    pattern = _module_pattern(old)

    def replace(match: re.Match[str]) -> str:
        if new.startswith(old + "/") and re.match(re.escape(new[len(old) :]) + r"(?=[/\"'\s]|$)", text[match.end() :]):
            return match.group(0)
        return new

    return pattern.sub(replace, text)


def newest_before(versions: dict[str, datetime | None], limit: datetime) -> str | None:
    """The highest release (vX.Y.Z, no pre-release) whose time is at or before limit."""
    candidates = [(tuple(int(n) for n in m.groups()), v) for v in versions if (m := SEMVER.fullmatch(v))]
    for _, version in sorted(candidates, reverse=True):
        when = versions[version]
        if when is not None and when <= limit:
            return version
    return None
