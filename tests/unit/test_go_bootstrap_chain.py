"""The bootstrap chain to the pinned Go where it is built from source (i386): which Gos are built, in what order and
with which Go, from the Gos a machine has and the pins of toolchains/go.yaml; and the one-line error when none
reaches it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dock32.core.arch import Arch
from dock32.core.errors import ConfigError, ToolchainError
from dock32.model.config import GoToolchainPin, load_config, load_toolchains
from dock32.model.settings import Settings
from dock32.sources import gocmd
from dock32.toolchains import toolchain
from dock32.toolchains.toolchain import BUILT_MARKER, LocalGo, SourceBuild, bootstrap_go_setup, cached_gos, go_from_source, plan_go_chain

ROOT = Path(__file__).resolve().parents[2]
AMD64_SUM = "h1:" + "A" * 43 + "="
STEP_SUM = "h1:" + "B" * 43 + "="
BACKPORTS = LocalGo(goroot="/usr/lib/go-1.23", version="go1.23.5")  # bookworm-backports' golang-go


def pins(*bootstrap: str, target: str = "1.26.8", plain: tuple[str, ...] = ()) -> dict[str, GoToolchainPin]:
    """A target pinned for linux-amd64 only (so built from source on i386), and bootstrap steps."""
    found = {target: GoToolchainPin(version=target, sums={"linux-amd64": AMD64_SUM})}
    found.update({v: GoToolchainPin(version=v, sums={"linux-amd64": STEP_SUM}, bootstrap=True) for v in bootstrap})
    found.update({v: GoToolchainPin(version=v, sums={"linux-amd64": STEP_SUM}) for v in plain})
    return found


def versions(steps: tuple[SourceBuild, ...]) -> list[str]:
    return [step.version for step in steps]


def test_backports_go_builds_the_bootstrap_step_then_the_pinned_go() -> None:
    chain = plan_go_chain("1.26.8", pins("1.24.9"), [BACKPORTS], Arch.I386)
    assert chain.start == BACKPORTS
    assert versions(chain.steps) == ["1.24.9", "1.26.8"]
    assert [step.source.ref for step in chain.steps] == [
        "golang.org/toolchain@v0.0.1-go1.24.9.linux-amd64",
        "golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64",
    ]
    assert [step.source.sum for step in chain.steps] == [STEP_SUM, AMD64_SUM]
    assert [step.name for step in chain.steps] == ["go1.24.9.linux-386", "go1.26.8.linux-386"]
    assert chain.describe() == "go1.23.5 (/usr/lib/go-1.23) builds go1.24.9 (a bootstrap step), which builds go1.26.8"


def test_a_go_new_enough_builds_the_pinned_go_directly() -> None:
    newer = LocalGo(goroot="/usr/lib/go-1.24", version="go1.24.7")
    chain = plan_go_chain("1.26.8", pins("1.24.9"), [newer], Arch.I386)
    assert (chain.start, versions(chain.steps)) == (newer, ["1.26.8"])
    # 1.24.6 is the minimum itself; 1.24.5 is not enough.
    assert versions(plan_go_chain("1.26.8", pins("1.24.9"), [LocalGo("/g", "go1.24.6")], Arch.I386).steps) == ["1.26.8"]
    assert versions(plan_go_chain("1.26.8", pins("1.24.9"), [LocalGo("/g", "go1.24.5")], Arch.I386).steps) == ["1.24.9", "1.26.8"]


def test_a_step_built_before_is_not_built_again() -> None:
    cached = LocalGo(goroot="/cache/go/toolchains/go1.24.9.linux-386", version="go1.24.9", origin="source ..., built for linux-386 with go1.23.5")
    chain = plan_go_chain("1.26.8", pins("1.24.9"), [BACKPORTS, cached], Arch.I386)
    assert (chain.start, versions(chain.steps)) == (cached, ["1.26.8"])
    assert chain.describe() == "go1.24.9 (built here before, cached) builds go1.26.8"


def test_the_pinned_go_built_before_needs_no_build() -> None:
    cached = LocalGo(goroot="/cache/go/toolchains/go1.26.8.linux-386", version="go1.26.8", origin="source ..., built for linux-386 with go1.24.9")
    chain = plan_go_chain("1.26.8", pins("1.24.9"), [BACKPORTS, cached], Arch.I386)
    assert (chain.start, chain.steps) == (cached, ())


def test_the_shortest_chain_and_the_newest_step_win() -> None:
    # Go 1.21 cannot build 1.24.9 (needs 1.22.6) but can build 1.22.12 (needs 1.20.6): three builds.
    old = LocalGo(goroot="/usr/lib/go-1.21", version="go1.21.13")
    assert versions(plan_go_chain("1.26.8", pins("1.24.9", "1.22.12"), [old], Arch.I386).steps) == ["1.22.12", "1.24.9", "1.26.8"]
    # Go 1.23 skips 1.22.12; of two steps that both do, the newer is taken.
    assert versions(plan_go_chain("1.26.8", pins("1.24.9", "1.22.12"), [BACKPORTS], Arch.I386).steps) == ["1.24.9", "1.26.8"]
    assert versions(plan_go_chain("1.26.8", pins("1.24.9", "1.25.3"), [BACKPORTS], Arch.I386).steps) == ["1.25.3", "1.26.8"]


def test_the_machines_gos_are_preferred_in_their_order() -> None:
    first, second = LocalGo("/usr/lib/go-1.25", "go1.25.1"), LocalGo("/usr/lib/go-1.24", "go1.24.9")
    assert plan_go_chain("1.26.8", pins(), [first, second], Arch.I386).start == first
    assert plan_go_chain("1.26.8", pins(), [BACKPORTS, second], Arch.I386).start == second


def test_only_older_gos_marked_bootstrap_are_steps() -> None:
    # 1.24.9 pinned without `bootstrap: true` (the Go an earlier release used), 1.27.0 newer than the target.
    with pytest.raises(ToolchainError) as caught:
        plan_go_chain("1.26.8", pins("1.27.0", plain=("1.24.9",)), [BACKPORTS], Arch.I386)
    assert caught.value.hint is not None
    assert "pin a Go 1.24 release >= 1.24.6 in toolchains/go.yaml with `bootstrap: true`" in caught.value.hint


def test_no_chain_is_one_line_naming_the_fix() -> None:
    bookworm = LocalGo(goroot="/usr/lib/go-1.19", version="go1.19.8")
    with pytest.raises(ToolchainError) as caught:
        plan_go_chain("1.26.8", pins("1.24.9"), [bookworm], Arch.I386, newer_go="`make setup` installs golang-go from bookworm-backports")
    error = caught.value
    assert "\n" not in str(error)
    assert error.message.startswith("Go 1.26.8 for linux-386 is built here from source and needs Go >= 1.24.6 to bootstrap")
    assert "found: go1.19.8 (/usr/lib/go-1.19)" in error.message and "pinned: 1.24.9 (needs 1.22.6)" in error.message
    # Down from the target: 1.24.9 is pinned, 1.22 and (for 1.19.8) 1.20 are not; or a newer Go.
    assert error.hint == (
        "pin a Go 1.20 release >= 1.20.6 and a Go 1.22 release >= 1.22.6 in toolchains/go.yaml with `bootstrap: true`, "
        "or install a newer Go (`make setup` installs golang-go from bookworm-backports)"
    )


def test_no_go_at_all_and_no_pin_say_so() -> None:
    with pytest.raises(ToolchainError, match=r"found: none"):
        plan_go_chain("1.26.8", pins("1.24.9"), [], Arch.I386)
    with pytest.raises(ToolchainError, match="no pin for Go 1.26.8"):
        plan_go_chain("1.26.8", {"1.26.8": GoToolchainPin(version="1.26.8", sums={})}, [BACKPORTS], Arch.I386)


def test_the_shipped_pins_reach_the_pinned_go_from_bookworm_backports() -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    toolchains = load_toolchains(ROOT / "toolchains")
    pin = toolchains.go[config.go_version]
    if "linux-386" in pin.sums:
        pytest.skip("a linux-386 toolchain module is pinned: nothing is built from source")
    chain = plan_go_chain(config.go_version, toolchains.go, [BACKPORTS], Arch.I386)
    assert chain.steps[-1].version == config.go_version
    assert all(step.source.version.endswith(".linux-amd64") for step in chain.steps)
    assert all(toolchains.go[step.version].bootstrap for step in chain.steps[:-1])


# --- the plan carried out: the order of the builds, each bootstrapped by the one before -------------------------


def settings_in(tmp_path: Path) -> Settings:
    return Settings(
        project_dir=tmp_path, cache_dir=tmp_path / "cache", build_dir=tmp_path / "build", dist_dir=tmp_path / "dist", offline=False, debian_mirror=None
    )


def test_go_from_source_builds_the_chain_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, str]] = []

    def build_go(step: SourceBuild, bootstrap: LocalGo, settings: Settings, helper_go: str) -> LocalGo:
        built.append((step.version, bootstrap.version))
        return LocalGo(goroot=f"/cache/{step.name}", version=step.go_version, origin=step.origin(bootstrap.note))

    monkeypatch.setattr(toolchain, "machine_gos", lambda: [BACKPORTS])
    monkeypatch.setattr(toolchain, "cached_gos", lambda *args: [])
    monkeypatch.setattr(toolchain, "newer_go_hint", lambda: "")
    monkeypatch.setattr(toolchain, "build_go", build_go)
    toolchains = load_toolchains(ROOT / "toolchains")
    toolchains.go.clear()
    toolchains.go.update(pins("1.24.9"))
    go, note = go_from_source("1.26.8", toolchains, Arch.I386, settings_in(tmp_path), "/usr/bin/go")
    assert built == [("1.24.9", "go1.23.5"), ("1.26.8", "go1.24.9")]
    assert go == Path("/cache/go1.26.8.linux-386/bin/go")
    assert note == (
        "source golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64, built for linux-386 with "
        "go1.24.9 (source golang.org/toolchain@v0.0.1-go1.24.9.linux-amd64, built for linux-386 with go1.23.5)"
    )


def test_cached_gos_are_those_of_the_pinned_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_in(tmp_path)
    toolchains = load_toolchains(ROOT / "toolchains")
    toolchains.go.clear()
    toolchains.go.update(pins("1.24.9", "1.22.12"))
    for name, source, sum_ in (
        ("go1.24.9.linux-386", "golang.org/toolchain@v0.0.1-go1.24.9.linux-amd64", STEP_SUM),
        ("go1.22.12.linux-386", "golang.org/toolchain@v0.0.1-go1.22.12.linux-amd64", AMD64_SUM),  # another pin's: stale
    ):
        goroot = settings.cache_dir / "go" / "toolchains" / name
        (goroot / "bin").mkdir(parents=True)
        (goroot / "bin" / "go").write_text("")
        (goroot / BUILT_MARKER).write_text(json.dumps({"source": source, "sum": sum_, "bootstrap": "go1.23.5"}))
    # A build cut short has no marker: not taken either.
    (settings.cache_dir / "go" / "toolchains" / "go1.26.8.linux-386" / "bin").mkdir(parents=True)
    monkeypatch.setattr(gocmd, "version_of", lambda go: Path(go).parent.parent.name.split(".linux")[0])
    found = cached_gos(toolchains, Arch.I386, settings)
    assert found == [
        LocalGo(
            goroot=str(settings.cache_dir / "go" / "toolchains" / "go1.24.9.linux-386"),
            version="go1.24.9",
            origin="source golang.org/toolchain@v0.0.1-go1.24.9.linux-amd64, built for linux-386 with go1.23.5",
        )
    ]
    # One that does not report its version is not taken.
    monkeypatch.setattr(gocmd, "version_of", lambda go: "go1.24.8")
    assert cached_gos(toolchains, Arch.I386, settings) == []


BACKPORTS_GO = (("golang-go",), "bookworm-backports")


@pytest.mark.parametrize(("machine", "wanted"), [("go1.23.5", ((), None)), ("go1.19.8", BACKPORTS_GO), (None, BACKPORTS_GO)])
def test_setup_installs_backports_go_only_where_the_machines_go_starts_no_chain(
    monkeypatch: pytest.MonkeyPatch, machine: str | None, wanted: tuple[tuple[str, ...], str | None]
) -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    toolchains = load_toolchains(ROOT / "toolchains")
    if "linux-386" in toolchains.go[config.go_version].sums:
        pytest.skip("a linux-386 toolchain module is pinned: nothing is built from source")
    monkeypatch.setattr(toolchain, "machine_go", lambda: LocalGo("/usr/lib/go", machine) if machine else None)
    monkeypatch.setattr(toolchain.platform, "freedesktop_os_release", lambda: {"VERSION_CODENAME": "bookworm"})
    assert bootstrap_go_setup(config, toolchains, Arch.I386) == wanted
    assert bootstrap_go_setup(config, toolchains, Arch.AMD64) == ((), None)  # amd64 takes the pinned module


# --- toolchains/go.yaml: the bootstrap mark ---------------------------------------------------------------------


def toolchains_dir(tmp_path: Path, go_yaml: str) -> Path:
    for name in ("c.yaml", "host.yaml"):
        (tmp_path / name).write_text((ROOT / "toolchains" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "go.yaml").write_text(go_yaml, encoding="utf-8")
    return tmp_path


def test_a_bootstrap_step_loads(tmp_path: Path) -> None:
    go_yaml = f'go:\n  "1.26.8":\n    linux-amd64: "{AMD64_SUM}"\n  "1.24.9":\n    linux-amd64: "{STEP_SUM}"\n    bootstrap: true\n'
    loaded = load_toolchains(toolchains_dir(tmp_path, go_yaml))
    assert loaded.go == pins("1.24.9")
    assert not loaded.go["1.26.8"].bootstrap and loaded.go["1.24.9"].sums == {"linux-amd64": STEP_SUM}


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ('    linux-amd64: "{sum}"\n    bootstrap: "yes"\n', "go.yaml:4: go.1.24.9.bootstrap: expected true or false, got str 'yes'"),
        ("    bootstrap: true\n", "go.yaml:3: go.1.24.9.bootstrap: a bootstrap step is built from the source in a golang.org/toolchain module"),
        ('    linux-amd64: "{sum}"\n    bootstrp: true\n', "go.yaml:4: go.1.24.9.bootstrp: unknown key (hint: did you mean 'bootstrap'?)"),
    ],
)
def test_a_bad_bootstrap_step_names_file_line_and_key(tmp_path: Path, entry: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_toolchains(toolchains_dir(tmp_path, 'go:\n  "1.24.9":\n' + entry.format(sum=STEP_SUM)))
    assert str(caught.value).startswith(error)
