"""toolchains/host.yaml test_apt: the Debian packages only the tests use, checked like apt and installed by
`dock32 setup --tests` (make test-tools) and not by a plain `dock32 setup`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dock32.core.arch import Arch
from dock32.core.errors import ConfigError
from dock32.model.config import load_toolchains
from dock32.toolchains import hostsetup

ROOT = Path(__file__).resolve().parents[2]


def toolchains_with(tmp_path: Path, host_yaml: str) -> Path:
    for name in ("go.yaml", "c.yaml"):
        (tmp_path / name).write_text((ROOT / "toolchains" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "host.yaml").write_text(host_yaml, encoding="utf-8")
    return tmp_path


def test_shipped_test_packages_are_apart_from_the_build_packages() -> None:
    toolchains = load_toolchains(ROOT / "toolchains")
    assert "iptables" in toolchains.test_packages
    # verify-i386-kernel boots its guest with QEMU: a build machine's package, not only the tests'.
    assert "qemu-system-x86" in toolchains.host_packages
    assert not set(toolchains.test_packages) & set(toolchains.host_packages)


def test_test_apt_is_optional(tmp_path: Path) -> None:
    assert load_toolchains(toolchains_with(tmp_path, "apt: [dpkg-dev]\n")).test_packages == ()


@pytest.mark.parametrize(
    ("host_yaml", "expected"),
    [
        ('apt: [dpkg-dev]\ntest_apt: [qemu-system-x86, "make;id"]\n', "host.yaml:2: test_apt[1]: expected a string like 'libseccomp-dev:i386'"),
        ("apt: [dpkg-dev]\ntest_apt: qemu-system-x86\n", "host.yaml:2: test_apt: expected a list"),
        ("apt: [dpkg-dev]\ntest_ap: [qemu-system-x86]\n", "host.yaml:2: test_ap: unknown key (hint: did you mean 'test_apt'?)"),
    ],
)
def test_bad_test_apt_is_refused_with_file_line_and_key(tmp_path: Path, host_yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_toolchains(toolchains_with(tmp_path, host_yaml))
    assert str(error.value).startswith(expected), str(error.value)


@pytest.mark.parametrize("tests", [False, True])
def test_setup_installs_the_test_packages_only_when_asked(monkeypatch: pytest.MonkeyPatch, tests: bool) -> None:
    asked: list[tuple[str, ...]] = []

    def nothing_missing(packages: tuple[str, ...]) -> list[str]:
        asked.append(packages)
        return []

    monkeypatch.setattr(hostsetup, "missing_packages", nothing_missing)
    monkeypatch.setattr(hostsetup, "build_machine_arch", lambda: Arch.AMD64)
    hostsetup.setup_host(ROOT, tests=tests)
    (wanted,) = asked
    assert ("iptables" in wanted) is tests
    assert len(wanted) == len(set(wanted))
