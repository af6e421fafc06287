"""The rootless scenario's own logic: what skips it and with which reason, how the user's commands are run, and which
network driver dockerd-rootless.sh chose."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from dock32.checks.scenarios import rootless
from dock32.checks.scenarios.check import Skipped
from dock32.checks.scenarios.rootless import (
    RootlessFacts,
    RootlessUser,
    missing_for_rootless,
    network_driver,
    setuptool_check_flags,
    tun_needs_opening_up,
)
from dock32.checks.scenarios.sandbox import Sandbox
from dock32.checks.scenarios.scenario import Context, run_scenario
from dock32.model.config import load_config, load_packages
from dock32.model.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
SETUID_ROOT = (stat.S_IFREG | stat.S_ISUID | 0o755, 0)
TUN_0666 = (stat.S_IFCHR | 0o666, 10, 200)


def facts(**changes: object) -> RootlessFacts:
    """What Debian 12 on a stock kernel offers: user namespaces on, setuid newuidmap and newgidmap, a TAP device."""
    base: dict[str, object] = {
        "switches": {"/proc/sys/user/max_user_namespaces": "63432\n", "/proc/sys/kernel/unprivileged_userns_clone": "1\n"},
        "id_mappers": {"/usr/bin/newuidmap": SETUID_ROOT, "/usr/bin/newgidmap": SETUID_ROOT},
        "root_nosuid": False,
        "tun": TUN_0666,
    }
    return RootlessFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_a_stock_machine_misses_nothing() -> None:
    assert missing_for_rootless(facts()) is None
    assert missing_for_rootless(facts(switches={})) is None, "a kernel without these files allows user namespaces"
    assert not tun_needs_opening_up(facts())


@pytest.mark.parametrize(
    ("switch", "value", "named"),
    [
        ("/proc/sys/kernel/unprivileged_userns_clone", "0\n", "kernel.unprivileged_userns_clone = 0"),
        ("/proc/sys/user/max_user_namespaces", "0\n", "user.max_user_namespaces = 0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1\n", "kernel.apparmor_restrict_unprivileged_userns = 1"),
    ],
)
def test_each_switch_that_forbids_user_namespaces_is_named(switch: str, value: str, named: str) -> None:
    found = missing_for_rootless(facts(switches={switch: value}))
    assert found is not None and named in found, found
    # The value that allows them is no reason.
    assert missing_for_rootless(facts(switches={switch: "1\n" if value == "0\n" else "0\n"})) is None


def test_a_missing_or_powerless_id_mapper_is_named() -> None:
    missing = missing_for_rootless(facts(id_mappers={"/usr/bin/newuidmap": None, "/usr/bin/newgidmap": SETUID_ROOT}))
    assert missing == "no /usr/bin/newuidmap (package uidmap): rootlesskit maps the user's subordinate ids with it"
    plain = missing_for_rootless(facts(id_mappers={"/usr/bin/newuidmap": SETUID_ROOT, "/usr/bin/newgidmap": (stat.S_IFREG | 0o755, 0)}))
    assert plain is not None and plain.startswith("/usr/bin/newgidmap is not setuid root (mode -rwxr-xr-x, owner uid 0)")
    not_root = missing_for_rootless(facts(id_mappers={"/usr/bin/newuidmap": (stat.S_IFREG | stat.S_ISUID | 0o755, 1000), "/usr/bin/newgidmap": SETUID_ROOT}))
    assert not_root is not None and "owner uid 1000" in not_root
    nosuid = missing_for_rootless(facts(root_nosuid=True))
    assert nosuid is not None and "nosuid" in nosuid


def test_no_tap_device_is_named_and_a_closed_one_is_opened_up() -> None:
    assert missing_for_rootless(facts(tun=None)) == "no /dev/net/tun: rootlesskit's network drivers (slirp4netns, gvisor-tap-vsock) need a TAP device"
    regular_file = (stat.S_IFREG | 0o666, 0, 0)
    assert missing_for_rootless(facts(tun=regular_file)) is not None
    # Without udev (a bare VM), the kernel's node is 0600: there, and only there, the sandbox opens it up.
    closed = facts(tun=(stat.S_IFCHR | 0o600, 10, 200))
    assert missing_for_rootless(closed) is None and tun_needs_opening_up(closed)


def test_the_setup_tools_iptables_check_is_left_out_only_where_the_kernel_loads_no_modules() -> None:
    assert setuptool_check_flags(facts()) == []
    assert setuptool_check_flags(facts(loadable_modules=False)) == ["--skip-iptables"]


def test_the_network_driver_is_read_from_the_scripts_trace() -> None:
    trace = (
        "+ DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS=--detach-netns\n"
        "+ exec rootlesskit --state-dir=/run/user/1000/dockerd-rootless --net=slirp4netns --mtu=65520 --port-driver=builtin\n"
        "+ exec rootlesskit --state-dir=/run/user/1000/dockerd-rootless --net=gvisor-tap-vsock --mtu=65520 --port-driver=builtin\n"
    )
    assert network_driver(trace) == "gvisor-tap-vsock", "the last start counts: the log is appended to"
    assert network_driver(trace.splitlines(keepends=True)[1]) == "slirp4netns"
    assert network_driver("rootlesskit needs to be installed\n") is None


def test_the_users_commands_run_with_its_ids_and_its_environment_alone() -> None:
    user = RootlessUser("dock32-rootless", 1000, 1001)
    argv = user.argv(["docker", "info"], (("DOCKERD_ROOTLESS_ROOTLESSKIT_NET", "gvisor-tap-vsock"),))
    assert argv[:6] == ["setpriv", "--reuid=1000", "--regid=1001", "--init-groups", "--", "env"]
    assert argv[6] == "-i", "nothing of root's environment (HOME=/root, the rootful DOCKER_HOST) reaches the user"
    env = dict(item.split("=", 1) for item in argv[7:-2])
    assert env["XDG_RUNTIME_DIR"] == "/run/user/1000"
    assert env["DOCKER_HOST"] == "unix:///run/user/1000/docker.sock"
    assert env["HOME"] == "/home/dock32-rootless"
    assert "/usr/sbin" in env["PATH"].split(":"), "the rootless dockerd runs iptables"
    assert env["DOCKERD_ROOTLESS_ROOTLESSKIT_NET"] == "gvisor-tap-vsock"
    assert argv[-2:] == ["docker", "info"]


class RecordedSandbox(Sandbox):
    """A sandbox whose commands answer as recorded: (exit code, stdout) by argv; anything else exits 127."""

    def __init__(self, folder: Path, answers: dict[tuple[str, ...], tuple[int, str]]) -> None:
        super().__init__(folder, folder, folder / "verify.log")
        self.answers = answers
        self.sent: list[tuple[str, ...]] = []

    def run_inside(self, argv: list[str], stdin: bytes | None, pid_namespace: bool, cleanup: bool) -> subprocess.CompletedProcess[str]:
        self.sent.append(tuple(argv))
        code, stdout = self.answers.get(tuple(argv), (127, ""))
        return subprocess.CompletedProcess(argv, code, stdout, "" if code == 0 else f"{argv[0]}: failed\n")


# What read_facts asks, answered as the kernel of a machine with user namespaces turned off would.
NO_USER_NAMESPACES = {
    ("cat", "/proc/sys/user/max_user_namespaces"): (0, "0\n"),
    ("stat", "-c", "%f %u", "/usr/bin/newuidmap"): (0, "89ed 0\n"),
    ("stat", "-c", "%f %u", "/usr/bin/newgidmap"): (0, "89ed 0\n"),
    ("cat", "/proc/self/mountinfo"): (0, "307 76 0:66 / / rw,relatime - overlay overlay rw\n"),
    ("stat", "-L", "-c", "%f %t %T", "/dev/net/tun"): (0, "21b6 a c8\n"),
    ("test", "-e", "/proc/modules"): (0, ""),
}


def context_with(tmp_path: Path, answers: dict[tuple[str, ...], tuple[int, str]], with_package: bool = True) -> Context:
    config = load_config(ROOT / "buildcfg.yaml")
    packages = load_packages(ROOT / "packaging" / "packages.yaml", config) if with_package else ()
    layout = Layout.of(tmp_path / "build", tmp_path / "dist", config.target, config.project_dir)
    return Context(config, packages, layout, RecordedSandbox(tmp_path, answers), tmp_path, tmp_path / "verify.log")


def test_a_kernel_without_user_namespaces_skips_the_scenario_by_name_before_any_change(tmp_path: Path) -> None:
    context = context_with(tmp_path, NO_USER_NAMESPACES)
    for scenario in (rootless.ROOTLESS, rootless.ROOTLESS_BUILT_IN_NETWORK):
        result = run_scenario(scenario.name, lambda s=scenario: s.check(context))
        assert (result.status, result.detail) == ("skipped", "user namespaces are turned off (user.max_user_namespaces = 0)")
    sent = context.sandbox.sent  # type: ignore[attr-defined]
    assert not [argv for argv in sent if argv[0] in ("useradd", "mknod", "mount", "setpriv", "sh")], "it only looked"


def test_the_same_machine_with_user_namespaces_on_goes_past_the_checks(tmp_path: Path) -> None:
    """With max_user_namespaces > 0 nothing is missing: the scenario goes on to make its user (which this recorded
    sandbox refuses, so it fails there), proving the skip above came from that one setting."""
    answers = {**NO_USER_NAMESPACES, ("cat", "/proc/sys/user/max_user_namespaces"): (0, "63432\n")}
    context = context_with(tmp_path, answers)
    result = run_scenario(rootless.ROOTLESS.name, lambda: rootless.ROOTLESS.check(context))
    assert result.status == "FAIL" and "useradd" in result.detail, result


def test_a_build_without_the_package_skips_it(tmp_path: Path) -> None:
    with pytest.raises(Skipped, match="^docker-ce-rootless-extras is not among this build's packages$"):
        rootless.ROOTLESS.check(context_with(tmp_path, NO_USER_NAMESPACES, with_package=False))
