"""Which Go module version holds a Docker release's engine: the two engine lines, and the rule that names the
github.com/moby/moby/v2 `v2.0.0-beta.N` tag of a 29.x release from what the proxy shows (pure; bump runs the go command).

moby tags each engine release commit twice: `docker-v29.8.1` (a git tag, not a module version: the proxy refuses it)
and `v2.0.0-beta.N`, a semver tag of the module that the proxy serves. Nothing links the two but the tree and the
time, so a tag is taken to be release X only when two pieces of evidence agree:

- its releases/versions.yaml names X (`next: X`, or `last:`/`current: X` where the release commit had already moved
  `next` on), and
- its .info time is within WINDOW of the time of github.com/docker/cli vX+incompatible (the CLI is tagged with every
  release, and the proxy serves it), which rules out X's release candidates: they share `next` with X, days earlier.

The closest such tag wins only when every other candidate within the window that could be X (its versions.yaml
has last <= X <= next, or cannot be read) is at least MARGIN farther from the CLI's time, and no neighbour of X (the
patch releases either side, X's rcs) has a CLI tag within MARGIN of X's, where times cannot separate the two.
Otherwise the evidence is ambiguous and bump stops, naming each candidate and what it says. moby's history
(tests/unit/test_bump.py holds it as data) has each case: 29.7.0 (beta.20, 28 minutes from the CLI; beta.21, 21 hours
away, says `last: 29.7.0`) is clear; 29.4.1 (beta.10 says `next: 29.4.1` 43 minutes from the CLI, beta.11, the
release, says `next: 29.4.2` 86 minutes from it) and 29.8.0 (beta.22 and beta.23, 15 minutes apart, both say
`next: 29.8.0`) are not; nor is 29.4.2, whose CLI tag is 29.4.1's commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import yaml

from dock32.core.errors import FetchError

MOBY_V2 = "github.com/moby/moby/v2"
DOCKER_DOCKER = "github.com/docker/docker"
BETA_PREFIX = "v2.0.0-beta."
WINDOW = timedelta(hours=24)
MARGIN = timedelta(hours=6)
LOOKAHEAD = 3  # tags asked for above the highest one known: the proxy's list misses some
MOST_TAGS = 1000  # a proxy that answers for every number is not asked forever


@dataclass(frozen=True)
class EngineLine:
    """How one series of Docker releases exists as a Go module, and what follows from it for the pins."""

    module: str | None  # None: the configured module (github.com/docker/docker or a stand-in), at v<X>+incompatible
    tag_prefix: str  # the engine's git tag of release X: v28.5.2, docker-v29.8.1
    modfile: str | None  # the module file the build reads: vendor.mod for 28.x (no go.mod), none for moby v2
    # 28.x: the plugins Docker shipped are the newest releases of the day (the Dockerfile's are its dev container's);
    # 29.x: moby's Dockerfile pins BUILDX_VERSION and COMPOSE_VERSION to the plugins of the release.
    plugins_from_dockerfile: bool
    tagged_by_beta: bool  # the module version is a v2.0.0-beta.N tag found by identify(), not derived from X

    def tag(self, release: str) -> str:
        return self.tag_prefix + release


INCOMPATIBLE_LINE = EngineLine(None, "v", "vendor.mod", plugins_from_dockerfile=False, tagged_by_beta=False)
MOBY_V2_LINE = EngineLine(MOBY_V2, "docker-v", None, plugins_from_dockerfile=True, tagged_by_beta=True)


def engine_line(release: str) -> EngineLine:
    key = release_key(release)
    return MOBY_V2_LINE if key and key[0] >= 29 else INCOMPATIBLE_LINE


_RELEASE = re.compile(r"\d+\.\d+\.\d+")


def release_key(release: str) -> tuple[int, ...]:
    """(29, 8, 1) of 29.8.1; () for anything that is not a release X.Y.Z."""
    return tuple(int(n) for n in release.split(".")) if _RELEASE.fullmatch(release) else ()


def beta_number(version: str) -> int | None:
    match = re.fullmatch(re.escape(BETA_PREFIX) + r"(\d+)", version)
    return int(match.group(1)) if match else None


def beta(number: int) -> str:
    return f"{BETA_PREFIX}{number}"


def first_probe(listed: Iterable[str], above: int = 0) -> list[int]:
    """The tag numbers to ask for first: above `above`, up to LOOKAHEAD past the highest the proxy lists."""
    top = max([above, *(n for v in listed if (n := beta_number(v)) is not None)])
    return list(range(above + 1, top + LOOKAHEAD + 1))


def further_probe(found: Iterable[int], probed_to: int) -> list[int]:
    """The next numbers to ask for: more only while the last LOOKAHEAD asked for held a tag."""
    if probed_to >= MOST_TAGS or not any(n > probed_to - LOOKAHEAD for n in found):
        return []
    return list(range(probed_to + 1, probed_to + LOOKAHEAD + 1))


@dataclass(frozen=True)
class VersionsFile:
    """moby's releases/versions.yaml: the release before the tree (`last`, `current` in older trees) and the next one."""

    last: str | None
    next: str | None

    def names(self, release: str) -> str | None:
        """Which key names release, or None."""
        if self.next == release:
            return "next"
        if self.last == release:
            return "last"
        return None

    def allows(self, release: str) -> bool:
        """Whether the tree can be release's: last <= release <= next, as far as they are releases X.Y.Z. (A release
        commit has sometimes moved `next` on already: moby's docker-v29.4.1 says `next: 29.4.2`.)"""
        want = release_key(release)
        last, upcoming = release_key(self.last or ""), release_key(self.next or "")
        return not (last and last > want) and not (upcoming and upcoming < want)

    def releases(self) -> list[str]:
        return [v for v in (self.next, self.last) if v and release_key(v)]

    def describe(self) -> str:
        return ", ".join(f"{key} {value}" for key, value in (("last", self.last), ("next", self.next)) if value) or "no versions"


def parse_versions_file(text: str) -> VersionsFile | None:
    """None where the text is not such a file."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    docker = data.get("docker") if isinstance(data, dict) else None
    if not isinstance(docker, dict):
        return None
    last = docker.get("last", docker.get("current"))
    upcoming = docker.get("next")
    return VersionsFile(str(last) if last is not None else None, str(upcoming) if upcoming is not None else None)


@dataclass(frozen=True)
class Candidate:
    """A v2.0.0-beta.N tag: its .info time and what its tree's releases/versions.yaml says (None: unread, see problem)."""

    version: str
    time: datetime
    says: VersionsFile | None = None
    problem: str | None = None  # why says is None: the tree has no releases/versions.yaml, or it could not be downloaded


def span(delta: timedelta) -> str:
    """4h07m, 37m, 12s, 3d04h: short and exact enough to compare."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60:02d}m" if minutes % 60 else f"{hours}h"
    return f"{hours // 24}d{hours % 24:02d}h"


def relative(when: datetime, reference: datetime, what: str) -> str:
    return f"{span(when - reference)} {'after' if when >= reference else 'before'} {what}"


def near(cli_time: datetime, times: dict[str, datetime]) -> list[str]:
    """The tags within WINDOW of the CLI's time, closest first: the only ones whose trees are worth downloading."""
    within = [version for version, when in times.items() if abs(when - cli_time) <= WINDOW]
    return sorted(within, key=lambda version: (abs(times[version] - cli_time), version))


@dataclass(frozen=True)
class Identified:
    release: str
    candidate: Candidate
    cli: str  # github.com/docker/cli@v29.8.1+incompatible
    cli_time: datetime

    @property
    def how(self) -> str:
        """The evidence, in a line: what the report and the YAML comment say."""
        assert self.candidate.says is not None
        return f"releases/versions.yaml {self._key}: {self.release}, tagged {relative(self.candidate.time, self.cli_time, self.cli)}"

    def comment(self, tag: str) -> str:
        """The evidence, shorter: for the YAML comment beside the pinned tag."""
        when = relative(self.candidate.time, self.cli_time, f"the CLI's v{self.release}")
        return f"{tag}: releases/versions.yaml {self._key}: {self.release}, tagged {when}"

    @property
    def _key(self) -> str:
        assert self.candidate.says is not None
        return self.candidate.says.names(self.release) or "?"


def _said(candidate: Candidate, cli_time: datetime) -> str:
    what = candidate.says.describe() if candidate.says else candidate.problem
    return f"{candidate.version} ({relative(candidate.time, cli_time, 'the CLI')}{': ' + what if what else ''})"


def neighbours(release: str) -> list[str]:
    """The releases whose CLI tags may fall at the same time as release's: the patch releases either side and
    release's candidates (v29.4.0-rc.1 and v29.4.0 of the CLI are one commit; so are v29.4.1 and v29.4.2)."""
    key = release_key(release)
    if not key:
        return []
    x, y, z = key[:3]
    return [*([f"{x}.{y}.{z - 1}"] if z else []), f"{x}.{y}.{z + 1}", *(f"{release}-rc.{n}" for n in range(1, 4))]


def identify(
    release: str,
    cli: str,
    cli_time: datetime,
    candidates: list[Candidate],
    nearest: list[Candidate] | None = None,
    neighbour_times: dict[str, datetime] | None = None,
) -> Identified:
    """The tag that is release, by the rule in this module's docstring; FetchError naming the candidates otherwise.
    candidates: the tags near() the CLI's time, read; nearest: the closest tags outside the window, for the message;
    neighbour_times: the CLI's times of the neighbours() of release that the proxy has."""
    hint = (
        f"if you know which tag moby's docker-v{release} is, name it: dock32 bump {release} --engine-version {BETA_PREFIX}N "
        "(`dock32 bump --check` lists what the proxy has)"
    )
    where = f"{cli} ({cli_time:%Y-%m-%dT%H:%M:%SZ})"
    twins = sorted(other for other, when in (neighbour_times or {}).items() if abs(when - cli_time) < MARGIN)
    if twins:
        raise FetchError(
            f"engine: the CLI's tags of {release} and {', '.join(twins)} are less than {span(MARGIN)} apart, so times cannot tell their engine tags apart",
            hint=hint,
        )
    within = sorted((c for c in candidates if abs(c.time - cli_time) <= WINDOW), key=lambda c: abs(c.time - cli_time))
    if not within:
        others = "; nearest: " + ", ".join(_said(c, cli_time) for c in nearest) if nearest else ""
        raise FetchError(f"engine: no {MOBY_V2} tag the proxy serves is within {span(WINDOW)} of {where}{others}", hint=hint)
    naming = [c for c in within if c.says is not None and c.says.names(release)]
    if not naming:
        said = ", ".join(_said(c, cli_time) for c in within)
        raise FetchError(f"engine: no {MOBY_V2} tag within {span(WINDOW)} of {where} has a releases/versions.yaml naming {release}: {said}", hint=hint)
    best = naming[0]
    distance = abs(best.time - cli_time)
    rivals = [c for c in within if c is not best and (c.says is None or c.says.allows(release)) and abs(c.time - cli_time) - distance < MARGIN]
    if rivals:
        said = ", ".join(_said(c, cli_time) for c in [best, *rivals])
        raise FetchError(
            f"engine: cannot tell which {MOBY_V2} tag is Docker {release}: {said} could each be it "
            f"(their distances from the CLI's tag differ by less than {span(MARGIN)})",
            hint=hint,
        )
    return Identified(release, best, cli, cli_time)
