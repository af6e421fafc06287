"""packaging/packages.yaml and the packaging: section: loading, errors, versions and names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dock32.config import DISTROS, load_config, load_packages
from dock32.debs import deb_filename, package_version
from dock32.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "buildcfg.yaml")


def test_shipped_packages_load_with_docker_names() -> None:
    packages = {p.name: p for p in load_packages(ROOT / "packaging" / "packages.yaml", CONFIG)}
    assert set(packages) == {"docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"}
    packaged = {f.binary for p in packages.values() for f in p.files if f.binary}
    assert packaged == {b.name for c in CONFIG.components for b in c.binaries}, "every binary is in exactly one package"
    ce = packages["docker-ce"]
    assert package_version(ce, CONFIG, CONFIG.packaging) == "5:28.5.2-1~debian.12~bookworm"
    assert deb_filename(ce, "5:28.5.2-1~debian.12~bookworm", "i386") == "docker-ce_28.5.2-1~debian.12~bookworm_i386.deb"
    assert package_version(packages["containerd.io"], CONFIG, CONFIG.packaging) == "1.7.28-1~debian.12~bookworm"
    assert package_version(packages["docker-buildx-plugin"], CONFIG, CONFIG.packaging) == "0.29.1-1~debian.12~bookworm"


def test_other_distros_change_suffix_and_unit_folder() -> None:
    trixie = dataclasses.replace(CONFIG.packaging, distro_name="debian-13")
    ce = next(p for p in load_packages(ROOT / "packaging" / "packages.yaml", CONFIG) if p.name == "docker-ce")
    assert package_version(ce, CONFIG, trixie) == "5:28.5.2-1~debian.13~trixie"
    assert DISTROS["debian-13"].unitdir == "/usr/lib/systemd/system"
    assert DISTROS["debian-12"].unitdir == "/lib/systemd/system"
    assert DISTROS["ubuntu-24.04"].version_suffix(1) == "-1~ubuntu.24.04~noble"


def test_revision_goes_into_every_version(tmp_path: Path) -> None:
    text = (ROOT / "buildcfg.yaml").read_text().replace("  revision: 1\n", "  revision: 3\n")
    path = tmp_path / "buildcfg.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.packaging.revision == 3
    ce = next(p for p in load_packages(ROOT / "packaging" / "packages.yaml", config) if p.name == "docker-ce")
    assert package_version(ce, config, config.packaging) == "5:28.5.2-3~debian.12~bookworm"
    for bad in ("0", "two", "1.5"):
        path.write_text(text.replace("revision: 3", f"revision: {bad}"))
        with pytest.raises(ConfigError, match=r"buildcfg.yaml:\d+: packaging.revision: expected a whole number from 1 up"):
            load_config(path)


def write_packages(tmp_path: Path, text: str) -> Path:
    (tmp_path / "files").mkdir(exist_ok=True)
    path = tmp_path / "packages.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
packages:
  docker-ce-cli:
    version: "5:{cli}{distro_suffix}"
    section: admin
    description: "Docker CLI\\nLong text."
    license_from: cli
    copyright: 2013 Docker, Inc.
    files:
      - {binary: docker, to: /usr/bin/docker}
"""


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_packages(write_packages(tmp_path, text), CONFIG)
    return str(caught.value)


def test_minimal_package_loads(tmp_path: Path) -> None:
    (package,) = load_packages(write_packages(tmp_path, GOOD), CONFIG)
    assert package.files[0].mode == 0o755 and package.files[0].to == "/usr/bin/docker"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("binary: docker,", "binary: dockr,"), "packages.yaml:9: packages.docker-ce-cli.files[0].binary: no binary 'dockr' is built"),
        (("{cli}", "{cli2}"), "packages.yaml:3: packages.docker-ce-cli.version: unknown placeholder {cli2}"),
        (("license_from: cli", "license_from: moby"), "packages.yaml:6: packages.docker-ce-cli.license_from: 'moby' is not one of"),
        (("to: /usr/bin/docker", "to: usr/bin/docker"), "files[0].to: expected an absolute path"),
        (("section: admin", "sektion: admin"), "packages.docker-ce-cli.sektion: unknown key"),
        (("{binary: docker, to", "{binary: docker, file: x, to"), "each file needs exactly one of binary, source, file or run"),
        (("to: /usr/bin/docker}", "to: /usr/bin/docker, mode: '0600'}"), "files[0].mode: expected '0644' or '0755', got '0600'"),
        (("    license_from: cli", "    depends: [\"x (= {clii})\"]\n    license_from: cli"), "packages.docker-ce-cli.depends[0]: unknown placeholder {clii}"),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert message in error_of(tmp_path, GOOD.replace(*change))


def test_bad_maintainer_in_buildcfg(tmp_path: Path) -> None:
    text = (ROOT / "buildcfg.yaml").read_text().replace('maintainer: "dock32 builders <dock32@example.org>"', "maintainer: nobody")
    path = tmp_path / "buildcfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"packaging.maintainer: expected 'Name <email>', got 'nobody'"):
        load_config(path)


def test_a_softfloat_build_says_so_in_every_version() -> None:
    softfloat = dataclasses.replace(CONFIG, go386="softfloat")
    packages = {p.name: p for p in load_packages(ROOT / "packaging" / "packages.yaml", softfloat)}
    assert package_version(packages["docker-ce"], softfloat, softfloat.packaging) == "5:28.5.2-1~debian.12~bookworm~softfloat"
    assert package_version(packages["containerd.io"], softfloat, softfloat.packaging) == "1.7.28-1~debian.12~bookworm~softfloat"
