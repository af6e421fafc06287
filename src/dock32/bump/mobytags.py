"""The engine's tags on the module proxy: which v2.0.0-beta.N (or vX+incompatible) is which Docker release."""

from __future__ import annotations

from datetime import datetime

from dock32.bump.enginetags import (
    MOBY_V2,
    Candidate,
    Identified,
    beta,
    beta_number,
    first_probe,
    further_probe,
    identify,
    near,
    parse_versions_file,
)
from dock32.bump.rules import CLI, CLI_MODULE, ENGINE
from dock32.core.errors import ConfigError, FetchError
from dock32.model.config import BuildConfig, Component, GoModuleSource
from dock32.sources.gocmd import Go, Module


class MobyTags:
    """The github.com/moby/moby/v2 v2.0.0-beta.N tags the proxy serves. Each is asked for directly, as the proxy's
    version list misses some (v2.0.0-beta.22 is served, not listed); .info times are cheap, and a tree is downloaded
    only where the times make it a candidate."""

    def __init__(self, go: Go) -> None:
        self.go = go
        self.times: dict[str, datetime] = {}
        self.refused: dict[str, str] = {}  # asked for, not served: why
        self.probed_to = 0
        self.candidates: dict[str, Candidate] = {}
        self.modules: dict[str, Module] = {}

    def probe(self, above: int = 0) -> None:
        try:
            listed = self.go.versions(MOBY_V2)
        except FetchError:
            listed = []  # the tags are asked for one by one all the same
        numbers = first_probe(listed, above)
        while numbers:
            infos = self.go.infos(MOBY_V2, [beta(n) for n in numbers])
            for version, info in infos.items():
                if info.time is not None:
                    self.times[version] = info.time
                else:
                    self.refused[version] = info.error or "no time"
            self.probed_to = numbers[-1]
            numbers = further_probe((n for v in self.times if (n := beta_number(v)) is not None), self.probed_to)

    def asked(self, above: int = 0) -> str:
        """What was asked for above `above`, in a phrase."""
        if self.probed_to <= above:
            return "asked for nothing"
        refused = [v for v in self.refused if (beta_number(v) or 0) > above]
        why = f": {version_runs(refused)} not served ({self.refused[refused[-1]]})" if refused else ""
        return f"asked the proxy for {beta(above + 1)} to {beta(self.probed_to)}{why}"

    def read(self, versions: list[str]) -> list[Candidate]:
        """The candidates, with what each tree's releases/versions.yaml says (trees downloaded in one go command)."""
        missing = [v for v in versions if v not in self.candidates]
        found = self.go.download_many([f"{MOBY_V2}@{v}" for v in missing])
        for version in missing:
            module = found[f"{MOBY_V2}@{version}"]
            when = self.times[version]
            if isinstance(module, str):
                self.candidates[version] = Candidate(version, when, None, f"cannot download it: {module}")
                continue
            self.modules[version] = module
            path = module.dir / "releases" / "versions.yaml"
            says = parse_versions_file(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else None
            self.candidates[version] = Candidate(version, when, says, None if says else "no releases/versions.yaml")
        return [self.candidates[v] for v in versions]

    def identify(self, release: str, cli: str, cli_time: datetime, neighbour_times: dict[str, datetime]) -> Identified:
        nearby = near(cli_time, self.times)
        outside = sorted((v for v in self.times if v not in nearby), key=lambda v: abs(self.times[v] - cli_time))[:2]
        return identify(release, cli, cli_time, self.read(nearby), [Candidate(v, self.times[v]) for v in outside], neighbour_times)

    def module(self, version: str) -> Module:
        if version not in self.modules:
            self.modules[version] = self.go.download(f"{MOBY_V2}@{version}", "engine")
        return self.modules[version]


def version_runs(versions: list[str]) -> str:
    """beta.1 to beta.14, beta.17: tag numbers in runs."""
    numbers = sorted(n for v in versions if (n := beta_number(v)) is not None)
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"beta.{run[0]}" + (f" to beta.{run[-1]}" if len(run) > 1 else "") for run in runs)


def engine_component(config: BuildConfig) -> Component:
    try:
        engine = config.component(ENGINE)
    except KeyError:
        raise ConfigError("buildcfg.yaml has no 'engine' component: bump reads the release's versions from moby's sources") from None
    if not isinstance(engine.source, GoModuleSource):
        raise ConfigError("components.engine.source: bump needs the engine as a Go module (its Dockerfile pins the other versions)")
    return engine


def cli_module(config: BuildConfig) -> str:
    try:
        source = config.component(CLI).source
    except KeyError:
        return CLI_MODULE
    return source.module if isinstance(source, GoModuleSource) else CLI_MODULE
