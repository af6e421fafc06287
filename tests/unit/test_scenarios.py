"""verify's scenarios as data: which apply to a flavour on a machine, in what order, and that a failing check fails
by ScenarioFailed, never by an assert that `python -O` would drop (tests/integration/test_verify_optimized.py runs
this file under -O)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import itertools
import pkgutil
import subprocess
from pathlib import Path

import pytest

from dock32.checks import scenarios as scenarios_package
from dock32.checks.scenarios import containers, engine
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.check import ScenarioFailed, expect, expect_equal
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.sandbox import Sandbox
from dock32.checks.scenarios.scenario import Context, Scenario, run_selected, select
from dock32.model.config import BuildConfig, load_config
from dock32.model.flavour import Flavour
from dock32.model.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "dock32" / "checks"
EVERYTHING = frozenset(Need)
FLAVOURS = (Flavour("native32", "sse2"), Flavour("native32", "softfloat"), Flavour("multiarch64", "sse2"))
UPGRADE_THEN_PURGE = "upgrade with a --restart=always container, then purge"

# The names, in the order they run (README and the e2e tests quote them).
NATIVE32_NAMES = [
    "systemd: containerd.service, docker.socket, docker.service enabled and active",
    "docker version: client and server linux/386",
    "docker info",
    "containerd and runc are the pinned builds",
    "containerd runs with the packaged config",
    "run an i386 image",
    "systemd: docker.socket starts a stopped docker.service",
    "systemd: systemctl restart docker brings back --restart=always",
    "sysvinit: /etc/init.d/docker status, stop, start, restart",
    "sysvinit: DOCKER_OPTS in /etc/default/docker is honoured",
    "/run/docker.sock refuses users outside the docker group",
    "--init runs docker-init as PID 1",
    "i386 container has seccomp on",
    "bridge network: container reaches container by name",
    "published port via docker-proxy",
    "SCTP port published",
    "docker build through BuildKit",
    "registry round-trip on loopback",
    "docker compose up and down",
    "docker exec enters the container",
    "rootless: an unprivileged user's own daemon",
    "rootless with RootlessKit's built-in network (gvisor-tap-vsock)",
    "amd64 image under the default seccomp profile",
    "amd64-only image pulled without --platform",
    "amd64-only index refused by pull on a 32-bit kernel",
    "amd64 image refused by run on a 32-bit kernel",
    "uname -m in an i386 container says i686",
    "uname -m in a RUN step of an i386 build says i686",
    "uname -m in docker exec into an i386 container says i686",
    "uname -m in an amd64 container still says x86_64",
    'systemd: daemon.json "personality-linux32": false gives x86_64 back',
    "--restart=always container runs again after a reboot",
    UPGRADE_THEN_PURGE,
]
SYSTEMD_ONLY = {name: "systemd is not PID 1 here" for name in NATIVE32_NAMES if name.startswith("systemd: ")}
SYSVINIT_ONLY = {name: "sysvinit is not PID 1 here" for name in NATIVE32_NAMES if name.startswith("sysvinit: ")}
# What only the QEMU-booted 32-bit kernel runs (verify-i386-kernel), skipped on the others.
KERNEL_ONLY = {
    "amd64-only index refused by pull on a 32-bit kernel": "this kernel runs x86_64 programs",
    "amd64 image refused by run on a 32-bit kernel": "this kernel runs x86_64 programs",
    "--restart=always container runs again after a reboot": "only a booted kernel reboots",
}
# What the machines offer: an amd64 machine with SCTP, its root booted under systemd or sysvinit.
AMD64_KERNEL = frozenset({Need.X86_64_KERNEL, Need.AMD64_BUSYBOX, Need.SCTP})
UNDER_SYSTEMD = AMD64_KERNEL | {Need.SYSTEMD, Need.SYSTEM_CONTAINERD}
UNDER_SYSVINIT = AMD64_KERNEL | {Need.SYSVINIT}


def names(flavour: Flavour, offers: frozenset[Need] = EVERYTHING) -> list[str]:
    return [s.name for s in select(SCENARIOS, flavour, offers)]


def skips(flavour: Flavour, offers: frozenset[Need]) -> dict[str, str]:
    return {s.name: s.skip for s in select(SCENARIOS, flavour, offers) if s.skip is not None}


def test_native32_runs_every_scenario_but_softfloats_in_order() -> None:
    assert names(Flavour()) == NATIVE32_NAMES
    assert skips(Flavour(), EVERYTHING) == {}


def test_softfloat_adds_its_check_before_the_last() -> None:
    softfloat = "softfloat: no SSE outside the runtime's CPU checks"
    assert names(Flavour("native32", "softfloat")) == [*NATIVE32_NAMES[:-2], softfloat, *NATIVE32_NAMES[-2:]]


def test_the_version_scenario_names_the_flavours_go_architecture() -> None:
    multiarch64 = names(Flavour("multiarch64"))
    assert multiarch64[1] == "docker version: client and server linux/amd64"
    assert multiarch64[:1] + multiarch64[2:] == NATIVE32_NAMES[:1] + NATIVE32_NAMES[2:]


def test_under_systemd_only_the_sysvinit_scenarios_skip() -> None:
    assert skips(Flavour(), UNDER_SYSTEMD) == {**SYSVINIT_ONLY, **KERNEL_ONLY}


def test_under_sysvinit_the_systemd_scenarios_and_containerds_own_config_skip() -> None:
    """containerd.io has no /etc/init.d script: under sysvinit, dockerd runs a containerd of its own."""
    assert skips(Flavour(), UNDER_SYSVINIT) == {
        **SYSTEMD_ONLY,
        **KERNEL_ONLY,
        "containerd runs with the packaged config": "no containerd.service here: dockerd runs a containerd of its own, with its own config",
    }


def test_a_kernel_without_sctp_skips_only_the_sctp_scenario() -> None:
    assert skips(Flavour(), EVERYTHING - {Need.SCTP}) == {"SCTP port published": "no SCTP in this kernel"}


def test_an_i386_machine_skips_both_amd64_scenarios_with_their_reasons() -> None:
    i386_under_systemd = UNDER_SYSTEMD - {Need.X86_64_KERNEL, Need.AMD64_BUSYBOX}
    assert skips(Flavour(), i386_under_systemd) == {
        **SYSVINIT_ONLY,
        **KERNEL_ONLY,
        "amd64 image under the default seccomp profile": "this build machine is not amd64, so it has no amd64 busybox at hand",
        "amd64-only image pulled without --platform": "this kernel does not run x86_64 programs",
        "uname -m in an i386 container says i686": "this kernel does not run x86_64 programs",
        "uname -m in a RUN step of an i386 build says i686": "this kernel does not run x86_64 programs",
        "uname -m in docker exec into an i386 container says i686": "this kernel does not run x86_64 programs",
        "uname -m in an amd64 container still says x86_64": "this build machine is not amd64, so it has no amd64 busybox at hand",
        'systemd: daemon.json "personality-linux32": false gives x86_64 back': "this kernel does not run x86_64 programs",
    }


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.target_name)
def test_whatever_the_machine_the_same_scenarios_run_in_the_same_order_upgrade_then_purge_last(flavour: Flavour) -> None:
    """A missing need skips a scenario in its place; it never drops or moves one, and the purge stays last."""
    for size in range(len(Need) + 1):
        for offers in itertools.combinations(Need, size):
            assert names(flavour, frozenset(offers)) == names(flavour)
    assert names(flavour)[-1] == UPGRADE_THEN_PURGE
    assert len(set(names(flavour))) == len(names(flavour))


def test_every_scenario_in_the_package_is_in_the_catalogue_once() -> None:
    defined = [
        value
        for module in pkgutil.iter_modules(scenarios_package.__path__)
        for value in vars(importlib.import_module(f"dock32.checks.scenarios.{module.name}")).values()
        if isinstance(value, Scenario) and module.name != "catalogue"
    ]
    everything = SCENARIOS
    assert sorted(s.name for s in defined) == sorted(s.name for s in everything)
    assert len(everything) == len(set(everything))


@pytest.mark.parametrize("path", [*sorted((SRC / "scenarios").glob("*.py")), SRC / "verify.py", SRC / "upgrade.py"], ids=lambda p: p.name)
def test_no_check_is_an_assert(path: Path) -> None:
    """`python -O -m dock32.cli verify` drops assert statements: a check written as one would always pass."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert asserts == [], f"{path.name}: assert on lines {asserts}; use expect() or fail() from dock32.checks.scenarios.check"


# --- checks on a recorded sandbox ----------------------------------------------------------------


class RecordedSandbox(Sandbox):
    """A sandbox whose commands answer what the daemons printed in a run: (exit code, stdout) by argv."""

    def __init__(self, folder: Path, answers: dict[tuple[str, ...], tuple[int, str]]) -> None:
        super().__init__(folder, folder, folder / "verify.log")
        self.answers = answers

    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        code, stdout = self.answers.get(tuple(argv), (127, ""))
        return subprocess.CompletedProcess(argv, code, stdout, "" if code == 0 else f"{argv[0]}: failed\n")


@pytest.fixture
def config() -> BuildConfig:
    return load_config(ROOT / "buildcfg.yaml")


def context_of(config: BuildConfig, folder: Path, answers: dict[tuple[str, ...], tuple[int, str]]) -> Context:
    layout = Layout.of(folder / "build", folder / "dist", config.target, config.project_dir)
    return Context(config, (), layout, RecordedSandbox(folder, answers), folder, folder / "verify.log")


VERSION_COMMAND = (
    "/usr/bin/docker", "version", "--format",
    "{{.Client.Os}}/{{.Client.Arch}} {{.Client.Version}} {{.Server.Os}}/{{.Server.Arch}} {{.Server.Version}}",
)


def version_answer(config: BuildConfig, goarch: str) -> dict[tuple[str, ...], tuple[int, str]]:
    cli, daemon = config.component("cli").version, config.component("engine").version
    return {VERSION_COMMAND: (0, f"linux/{goarch} {cli} linux/{goarch} {daemon}\n")}


def test_the_version_check_passes_on_the_flavours_architecture(config: BuildConfig, tmp_path: Path) -> None:
    out = engine.version(context_of(config, tmp_path, version_answer(config, "386")))
    assert out.startswith("linux/386 ")
    multiarch64 = dataclasses.replace(config, flavour=Flavour("multiarch64"))
    assert engine.version(context_of(multiarch64, tmp_path, version_answer(config, "amd64"))).startswith("linux/amd64 ")


def test_the_version_check_fails_on_another_architecture(config: BuildConfig, tmp_path: Path) -> None:
    with pytest.raises(ScenarioFailed, match=r"docker version: 'linux/amd64 .*', expected 'linux/386 "):
        engine.version(context_of(config, tmp_path, version_answer(config, "amd64")))


def test_a_command_that_fails_fails_the_check(config: BuildConfig, tmp_path: Path) -> None:
    with pytest.raises(ScenarioFailed, match=r"`/usr/bin/docker version --format .*` exited 127"):
        engine.version(context_of(config, tmp_path, {}))
    assert "(exit 127," in (tmp_path / "verify.log").read_text(), "the sandbox logs every command"


def test_seccomp_fails_where_the_filter_lets_the_probe_through(config: BuildConfig, tmp_path: Path) -> None:
    image = "dock32/busybox:i386"
    probe = ("/bin/busybox", "linux32", "-R", "/bin/true")
    answers = {
        ("/usr/bin/docker", "run", "--rm", image, "grep", "Seccomp:", "/proc/self/status"): (0, "Seccomp:\t2\n"),
        ("/usr/bin/docker", "run", "--rm", "--security-opt", "seccomp=unconfined", image, *probe): (0, ""),
    }
    # The default profile refuses the probe (an unrecorded command exits 127), as it should.
    assert containers.seccomp_i386(context_of(config, tmp_path, answers)).startswith("Seccomp: 2;")
    answers[("/usr/bin/docker", "run", "--rm", image, *probe)] = (0, "")
    with pytest.raises(ScenarioFailed, match=r"personality\(ADDR_NO_RANDOMIZE\) succeeded under the default profile"):
        containers.seccomp_i386(context_of(config, tmp_path, answers))


def test_a_failing_scenario_is_reported_as_failed(config: BuildConfig, tmp_path: Path) -> None:
    (selected,) = [s for s in select(SCENARIOS, config.flavour, EVERYTHING) if s.name.startswith("docker version")]
    result = run_selected(selected, context_of(config, tmp_path, version_answer(config, "amd64")))
    assert (result.name, result.status) == ("docker version: client and server linux/386", "FAIL")
    assert result.detail.startswith("docker version: 'linux/amd64 ")


def test_a_skipped_scenario_is_not_run(config: BuildConfig, tmp_path: Path) -> None:
    (sctp,) = [s for s in select(SCENARIOS, config.flavour, frozenset()) if s.name == "SCTP port published"]
    result = run_selected(sctp, context_of(config, tmp_path, {}))
    assert (result.status, result.detail, result.seconds) == ("skipped", "no SCTP in this kernel", 0.0)
    assert not (tmp_path / "verify.log").exists(), "no command was sent"


def test_expect_helpers() -> None:
    expect(True, "never shown")
    assert expect_equal("a", "a") == "a"
    with pytest.raises(ScenarioFailed, match="^the reason$"):
        expect(False, "the reason")
    with pytest.raises(ScenarioFailed, match=r"^running: 'false', expected 'true'$"):
        expect_equal("false", "true", "running")
    with pytest.raises(ScenarioFailed, match=r"^\[1\], expected \[\]$"):
        expect_equal([1], [])
