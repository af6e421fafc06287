"""How this machine builds: cache and output locations, offline mode, mirrors. Read from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dock32.core.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    cache_dir: Path  # shared by every workspace on the machine
    build_dir: Path
    dist_dir: Path
    offline: bool
    debian_mirror: str | None  # None: read from apt's sources at fetch time
    # DOCK32_SET: buildcfg.yaml keys set for this run, space-separated (go386=softfloat packaging.distro=debian-13)
    overrides: tuple[str, ...] = ()
    # DOCK32_UPGRADE_FROM: an earlier release's dist/<target> folder, for `verify-upgrade`
    upgrade_from: Path | None = None
    # DOCK32_JOBS (`--jobs N`): how many tasks run at once, over what the memory would allow (core.memory)
    jobs: int | None = None
    # DOCK32_MEMORY (`--memory SIZE`): the most memory the build plans for, below what the machine offers (core.memory)
    memory: int | None = None

    @property
    def downloads_dir(self) -> Path:
        return self.cache_dir / "downloads"

    @property
    def trees_dir(self) -> Path:
        return self.cache_dir / "trees"

    @property
    def gomodcache(self) -> Path:
        return self.cache_dir / "go" / "mod"

    @property
    def gocache(self) -> Path:
        return self.cache_dir / "go" / "build"

    @property
    def quarantine_dir(self) -> Path:
        return self.cache_dir / "quarantine"


def _truthy(name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment: {name}={value!r}: expected 1 or 0")


def _jobs(value: str) -> int | None:
    if value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"environment: DOCK32_JOBS={value!r}: expected a number of tasks, 1 or more", hint="unset it to let dock32 choose from the memory")
    return int(value)


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_memory(value: str) -> int | None:
    """A size such as 1GiB, 1G, 800MiB or 800M (binary units; a bare number is bytes) in bytes; None for ""."""
    if value == "":
        return None
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", value.strip().lower())
    amount = int(float(found.group(1)) * _SIZE_UNITS[found.group(2)]) if found else 0
    if amount < 64 * 1024**2:
        hint = "unset it to plan for the memory the machine has"
        raise ConfigError(f"environment: DOCK32_MEMORY={value!r}: expected a size of 64MiB or more, such as 1GiB or 800MiB", hint=hint)
    return amount


def settings_from_env(project_dir: Path, env: dict[str, str] | None = None, offline: bool | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    xdg = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = Path(env["DOCK32_CACHE_DIR"]) if env.get("DOCK32_CACHE_DIR") else xdg / "dock32"
    build = Path(env["DOCK32_BUILD_DIR"]) if env.get("DOCK32_BUILD_DIR") else project_dir / "build"
    dist = Path(env["DOCK32_DIST_DIR"]) if env.get("DOCK32_DIST_DIR") else project_dir / "dist"
    mirror = env.get("DOCK32_DEBIAN_MIRROR") or None
    if mirror and not re.match(r"^(https?|file)://", mirror):
        raise ConfigError(f"environment: DOCK32_DEBIAN_MIRROR={mirror!r}: expected an http(s):// or file:// URL")
    return Settings(
        project_dir=project_dir.resolve(),
        cache_dir=cache.resolve(),
        build_dir=build.resolve(),
        dist_dir=dist.resolve(),
        offline=offline if offline is not None else _truthy("DOCK32_OFFLINE", env.get("DOCK32_OFFLINE", "")),
        debian_mirror=mirror.rstrip("/") if mirror else None,
        overrides=tuple(env.get("DOCK32_SET", "").split()),
        upgrade_from=Path(env["DOCK32_UPGRADE_FROM"]).resolve() if env.get("DOCK32_UPGRADE_FROM") else None,
        jobs=_jobs(env.get("DOCK32_JOBS", "").strip()),
        memory=parse_memory(env.get("DOCK32_MEMORY", "").strip()),
    )
