"""`dock32 bump --check`: the newer releases the module proxy can give."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dock32.bump.enginetags import (
    MOBY_V2,
    beta_number,
    neighbours,
    release_key,
)
from dock32.bump.mobytags import MobyTags, cli_module, engine_component, version_runs
from dock32.bump.rules import refusal
from dock32.bump.versions import core
from dock32.core.errors import FetchError
from dock32.model.config import GoModuleSource, load_config, load_toolchains
from dock32.model.settings import Settings, settings_from_env
from dock32.sources.gocmd import Go
from dock32.toolchains.toolchain import choose_go


@dataclass
class CheckFindings:
    """What `bump --check` found: the pinned release, the newer ones the proxy can give, and what it could not tell."""

    current: str  # the pinned release, 28.5.2
    pinned: str  # its engine module version, github.com/docker/docker@v28.5.2+incompatible
    asked: str  # what was asked of the proxy, in a phrase
    newer: list[tuple[str, str, str]] = field(default_factory=list)  # (release, engine module@version, how it was found)
    unidentified: list[str] = field(default_factory=list)  # one line each: a release named by a tag, not settled
    other_tags: list[str] = field(default_factory=list)  # newer tags that are no release found here (rcs, dev commits)
    cli_only: list[str] = field(default_factory=list)  # newer docker/cli releases without any engine tag found


def check_report(found: CheckFindings) -> str:
    lines = [f"dock32 bump --check: pinned Docker {found.current} ({found.pinned})"]
    if found.newer:
        lines.append(f"newer releases the proxy can give ({found.asked}):")
        width = max(len(release) for release, _, _ in found.newer)
        for release, ref, how in sorted(found.newer, key=lambda entry: release_key(entry[0]), reverse=True):
            refused = refusal(release)
            tail = f"  [{refused.split(' (', 1)[0]}: dock32 bump {release} --force]" if refused else f"  [dock32 bump {release}]"
            lines.append(f"  {release.ljust(width)}  {ref}: {how}{tail}")
    else:
        lines.append(f"no newer release: the proxy gives no engine newer than {found.current} ({found.asked})")
    if found.unidentified:
        lines.append("named by a newer tag, but not found or not settled:")
        lines.extend(f"  {entry}" for entry in found.unidentified)
    if found.other_tags:
        lines.append(
            f"newer tags matched to no release: {version_runs(found.other_tags)} "
            "(release candidates, development commits, trees without releases/versions.yaml, or not settled above)"
        )
    if found.cli_only:
        lines.append(f"docker/cli lists newer releases with no engine tag on the proxy: {', '.join(found.cli_only)}")
    return "\n".join(lines) + "\n"


def check_project(project: Path, settings: Settings | None = None) -> str:
    """`dock32 bump --check`: the newer releases the proxy can give, each with its engine module version."""
    config = load_config(project / "buildcfg.yaml")
    settings = settings or settings_from_env(project)
    engine = engine_component(config)
    assert isinstance(engine.source, GoModuleSource)
    current, cli = config.release.version, cli_module(config)
    with tempfile.TemporaryDirectory(prefix="dock32-bump.") as scratch:
        go = Go(choose_go(config, load_toolchains(project / "toolchains"), settings)[0], settings, Path(scratch))
        found = CheckFindings(current, engine.source.ref, "")
        if engine.source.module != MOBY_V2:
            found.newer.extend(_newer_module_versions(go, engine.source.module, current))
        above = (beta_number(engine.source.version) or 0) if engine.source.module == MOBY_V2 else 0
        _newer_tags(found, MobyTags(go), cli, above)
        found.cli_only = _cli_only(go, cli, [current, *(release for release, _, _ in found.newer)])
    return check_report(found)


def _newer_module_versions(go: Go, module: str, current: str) -> list[tuple[str, str, str]]:
    """28.x releases newer than current, where the engine still is github.com/docker/docker v<X>+incompatible."""
    newer = []
    for version in go.versions(module):
        release = core(version)
        if version.endswith("+incompatible") and release_key(release) and release_key(current) < release_key(release) < (29,):
            newer.append((release, f"{module}@{version}", "a module version of the release"))
    return newer


def _newer_tags(found: CheckFindings, tags: MobyTags, cli: str, above: int) -> None:
    """The releases that the moby/moby/v2 tags above the pinned one name, each found by identify()'s rule."""
    tags.probe()  # from the first tag: an older one can be a rival of a newer release's tag
    found.asked = tags.asked(above)
    newer_tags = sorted((v for v in tags.times if (beta_number(v) or 0) > above), key=lambda v: beta_number(v) or 0)
    named: dict[str, list[str]] = {}
    for candidate in tags.read(newer_tags):
        for release in candidate.says.releases() if candidate.says else []:
            if release_key(release) > release_key(found.current):
                named.setdefault(release, []).append(candidate.version)
    wanted = sorted({r for release in named for r in [release, *neighbours(release)]})
    infos = tags.go.infos(cli, [f"v{release}+incompatible" for release in wanted])
    times = {release: info.time for release in wanted if (info := infos[f"v{release}+incompatible"]).time}
    matched: set[str] = set()
    for release in sorted(named, key=release_key, reverse=True):
        if release not in times:
            error = infos[f"v{release}+incompatible"].error
            found.unidentified.append(f"{release}: named by {', '.join(named[release])}; the proxy has no {cli}@v{release}+incompatible ({error})")
            continue
        around = {other: times[other] for other in neighbours(release) if other in times}
        try:
            identified = tags.identify(release, f"{cli}@v{release}+incompatible", times[release], around)
        except FetchError as exc:
            found.unidentified.append(f"{release}: {exc.message.removeprefix('engine: ')}")
            continue
        matched.add(identified.candidate.version)
        found.newer.append((release, f"{MOBY_V2}@{identified.candidate.version}", identified.how))
    found.other_tags = [v for v in newer_tags if v not in matched]


def _cli_only(go: Go, cli: str, known: list[str]) -> list[str]:
    """The CLI's listed releases newer than every release known to have an engine: their engines are not served."""
    try:
        listed = go.versions(cli)
    except FetchError:
        return []
    newest = max(release_key(release) for release in known)
    return sorted({core(v) for v in listed if v.endswith("+incompatible") and release_key(core(v)) > newest}, key=release_key)
