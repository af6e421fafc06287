"""The personality scenarios' checks on a scripted machine: what they send, what they accept, and that the daemon.json
they change is put back however the check ends."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from dock32.checks.scenarios import personality
from dock32.checks.scenarios.check import ScenarioFailed
from dock32.checks.scenarios.machine import RootMachine
from dock32.checks.scenarios.scenario import Context
from dock32.model.config import BuildConfig, load_config
from dock32.model.flavour import Flavour
from dock32.model.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker"
RUN_I386 = (DOCKER, "run", "--rm", "dock32/busybox:i386", "uname", "-m")
RUN_BUILT = (DOCKER, "run", "--rm", personality.BUILT)
RESTART = ("systemctl", "restart", "docker.service")
RESET_FAILED = ("systemctl", "reset-failed", "docker.service")
Answer = tuple[int, str]


class ScriptedMachine(RootMachine):
    """A machine whose commands answer from a script: argv -> its answers in turn, the last one repeated; anything
    else exits 127. It keeps every argv it was sent, and what daemon.json held at each dockerd restart."""

    def __init__(self, root: Path, script: dict[tuple[str, ...], list[Answer]]) -> None:
        super().__init__(root / "verify.log")
        self._root = root
        self.script = script
        self.sent: list[tuple[str, ...]] = []
        self.daemon_json_at_restart: list[bytes | None] = []

    @property
    def root(self) -> Path:
        return self._root

    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        key = tuple(argv)
        self.sent.append(key)
        if key == RESTART:
            path = self.root / personality.DAEMON_JSON.lstrip("/")
            self.daemon_json_at_restart.append(path.read_bytes() if path.exists() else None)
        answers = self.script.get(key, [(127, "")])
        code, stdout = answers.pop(0) if len(answers) > 1 else answers[0]
        return subprocess.CompletedProcess(argv, code, stdout, "" if code == 0 else f"{argv[0]}: failed\n")

    def restart_after_upgrade(self) -> None:
        """Not used by these scenarios."""

    def stop_before_purge(self) -> None:
        """Not used by these scenarios."""


@pytest.fixture
def config() -> BuildConfig:
    return load_config(ROOT / "buildcfg.yaml")


def context_of(config: BuildConfig, machine: ScriptedMachine) -> Context:
    layout = Layout.of(machine.root / "build", machine.root / "dist", config.target, config.project_dir)
    return Context(config, (), layout, machine, machine.root, machine.log)


def build_argv(*platform: str) -> tuple[str, ...]:
    return (DOCKER, "build", "--no-cache", *platform, "-t", personality.BUILT, personality.BUILD_CONTEXT)


def test_the_i386_container_must_say_i686(config: BuildConfig, tmp_path: Path) -> None:
    assert personality.run_i386(context_of(config, ScriptedMachine(tmp_path, {RUN_I386: [(0, "i686\n")]}))) == "docker run: uname -m says i686"
    with pytest.raises(ScenarioFailed, match=r"^uname -m in the i386 container: 'x86_64', expected 'i686'$"):
        personality.run_i386(context_of(config, ScriptedMachine(tmp_path, {RUN_I386: [(0, "x86_64\n")]})))


def test_the_amd64_container_must_still_say_x86_64(config: BuildConfig, tmp_path: Path) -> None:
    run_amd64 = (DOCKER, "run", "--rm", "dock32/busybox:amd64", "uname", "-m")
    assert personality.amd64_keeps_x86_64(context_of(config, ScriptedMachine(tmp_path, {run_amd64: [(0, "x86_64\n")]})))
    with pytest.raises(ScenarioFailed, match=r"'i686', expected 'x86_64'"):
        personality.amd64_keeps_x86_64(context_of(config, ScriptedMachine(tmp_path, {run_amd64: [(0, "i686\n")]})))


def test_the_build_names_linux_386_only_to_an_amd64_daemon(config: BuildConfig, tmp_path: Path) -> None:
    # native32: the build's default platform is the daemon's, linux/386, as a user's build gets it.
    native = ScriptedMachine(tmp_path, {build_argv(): [(0, "")], RUN_BUILT: [(0, "i686\n")]})
    assert personality.build_run_step(context_of(config, native)) == "RUN uname -m > /m wrote i686"
    dockerfile = (tmp_path / personality.BUILD_CONTEXT.lstrip("/") / "Dockerfile").read_text()
    assert dockerfile.splitlines()[:2] == ["FROM dock32/busybox:i386", "RUN uname -m > /m"]
    multiarch64 = dataclasses.replace(config, flavour=Flavour("multiarch64"))
    amd64_daemon = ScriptedMachine(tmp_path, {build_argv("--platform", "linux/386"): [(0, "")], RUN_BUILT: [(0, "i686\n")]})
    assert personality.build_run_step(context_of(multiarch64, amd64_daemon)) == "RUN uname -m > /m wrote i686"
    with pytest.raises(ScenarioFailed, match=r"^uname -m in a RUN step FROM the i386 image: 'x86_64', expected 'i686'$"):
        personality.build_run_step(context_of(config, ScriptedMachine(tmp_path, {build_argv(): [(0, "")], RUN_BUILT: [(0, "x86_64\n")]})))


def test_exec_removes_its_container_when_the_check_fails(config: BuildConfig, tmp_path: Path) -> None:
    exec_uname = (DOCKER, "exec", personality.EXEC_CONTAINER, "uname", "-m")
    start = (DOCKER, "run", "-d", "--name", personality.EXEC_CONTAINER, "dock32/busybox:i386", "sleep", "300")
    machine = ScriptedMachine(tmp_path, {start: [(0, "abc\n")], exec_uname: [(0, "x86_64\n")]})
    with pytest.raises(ScenarioFailed, match=r"^uname -m in docker exec: 'x86_64', expected 'i686'$"):
        personality.exec_i386(context_of(config, machine))
    assert machine.sent[-1] == (DOCKER, "rm", "-f", personality.EXEC_CONTAINER)


def off_script(*uname_answers: str) -> dict[tuple[str, ...], list[Answer]]:
    return {
        RESET_FAILED: [(0, "")],
        RESTART: [(0, "")],
        (DOCKER, "version"): [(0, "")],
        RUN_I386: [(0, f"{answer}\n") for answer in uname_answers],
        build_argv(): [(0, "")],
        RUN_BUILT: [(0, "x86_64\n")],
    }


def test_the_off_switch_keeps_what_daemon_json_held_and_puts_it_back(config: BuildConfig, tmp_path: Path) -> None:
    shipped = b'{"debug": true}\n'
    (tmp_path / "etc" / "docker").mkdir(parents=True)
    (tmp_path / "etc" / "docker" / "daemon.json").write_bytes(shipped)
    machine = ScriptedMachine(tmp_path, {**off_script("x86_64", "i686"), ("test", "-e", personality.DAEMON_JSON): [(0, "")]})
    assert personality.off_switch(context_of(config, machine)).startswith('"personality-linux32": false: x86_64')
    off, back = machine.daemon_json_at_restart
    assert off is not None and json.loads(off) == {"debug": True, "personality-linux32": False}
    assert back == shipped
    assert (tmp_path / "etc" / "docker" / "daemon.json").read_bytes() == shipped


def test_the_off_switch_fails_where_it_changes_nothing_and_still_removes_its_daemon_json(config: BuildConfig, tmp_path: Path) -> None:
    # No daemon.json before (`test -e` is not scripted: it exits 127): the scenario's own is removed again.
    machine = ScriptedMachine(tmp_path, off_script("i686"))
    with pytest.raises(ScenarioFailed, match=r"""^uname -m in the i386 container with "personality-linux32": false: 'i686', expected 'x86_64'$"""):
        personality.off_switch(context_of(config, machine))
    assert ("rm", "-f", personality.DAEMON_JSON) in machine.sent
    removed = machine.sent.index(("rm", "-f", personality.DAEMON_JSON))
    assert machine.sent[removed + 1 : removed + 3] == [RESET_FAILED, RESTART], "dockerd restarted after, past systemd's start limit"
