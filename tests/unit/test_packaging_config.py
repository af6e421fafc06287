"""packaging/packages.yaml and the packaging: section: loading, errors, versions and names."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from dock32.core.errors import ConfigError
from dock32.model.config import DISTROS, BuildConfig, DebPackage, load_config, load_packages
from dock32.model.flavour import Flavour
from dock32.packaging.debs import _changelog, _relations, deb_filename, package_version

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "buildcfg.yaml")
CONFFILE = ROOT / "packaging" / "files" / "containerd.io" / "config.toml"


def upstream(component: str, config: BuildConfig = CONFIG) -> str:
    """A component's version as Debian versions and relations carry it: without the leading v."""
    return config.component(component).version.removeprefix("v")


def shipped_packages(config: BuildConfig = CONFIG) -> dict[str, DebPackage]:
    return {p.name: p for p in load_packages(ROOT / "packaging" / "packages.yaml", config)}


def test_shipped_packages_load_with_docker_names() -> None:
    packages = shipped_packages()
    assert set(packages) == {"docker-ce", "docker-ce-cli", "containerd.io", "docker-ce-rootless-extras", "docker-buildx-plugin", "docker-compose-plugin"}
    packaged = {f.binary for p in packages.values() for f in p.files if f.binary}
    assert packaged == {b.name for c in CONFIG.components for b in c.binaries}, "every binary is in exactly one package"
    ce = packages["docker-ce"]
    engine = upstream("engine")
    assert package_version(ce, CONFIG, CONFIG.packaging) == f"5:{engine}-1~debian.12~bookworm"
    assert deb_filename(ce, f"5:{engine}-1~debian.12~bookworm", "i386") == f"docker-ce_{engine}-1~debian.12~bookworm_i386.deb"
    assert package_version(packages["docker-ce-cli"], CONFIG, CONFIG.packaging) == f"5:{upstream('cli')}-1~debian.12~bookworm"
    assert package_version(packages["containerd.io"], CONFIG, CONFIG.packaging) == f"{upstream('containerd')}-1~debian.12~bookworm"
    assert package_version(packages["docker-buildx-plugin"], CONFIG, CONFIG.packaging) == f"{upstream('buildx')}-1~debian.12~bookworm"
    assert package_version(packages["docker-compose-plugin"], CONFIG, CONFIG.packaging) == f"{upstream('compose')}-1~debian.12~bookworm"
    # docker-ce-packaging's dh_gencontrol --remaining-packages: the source's version, docker-ce's.
    assert package_version(packages["docker-ce-rootless-extras"], CONFIG, CONFIG.packaging) == f"5:{engine}-1~debian.12~bookworm"


def test_versions_are_templates_of_the_config() -> None:
    """No release is written into packages.yaml: each version is the epoch at most, around placeholders."""
    for package in shipped_packages().values():
        assert re.sub(r"\{\w+\}", "", package.version) in ("", "5:"), (package.name, package.version)
        assert package.version.endswith("{distro_suffix}"), package.name


def relations(package: DebPackage) -> dict[str, list[str]]:
    return {field: [item.strip() for item in text.split(",")] for field, text in _relations(package, CONFIG, CONFIG.packaging).items()}


def test_relations_are_docker_ce_packagings_for_29() -> None:
    """As deb/common/control of docker-ce-packaging has them for 29.x, less what this project cannot carry: the
    model plugin package it does not build."""
    packages = shipped_packages()
    ce = relations(packages["docker-ce"])
    assert ce["Pre-Depends"] == ["init-system-helpers (>= 1.54~)"]
    # containerd.io: at least the one built beside dockerd, which is also at least Docker's floor (2.1.5).
    assert ce["Depends"] == [f"containerd.io (>= {upstream('containerd')})", "docker-ce-cli", "iptables", "nftables"]
    assert ce["Recommends"] == ["apparmor", "ca-certificates", "docker-ce-rootless-extras", "git", "pigz", "procps", "xz-utils"]
    assert ce["Suggests"] == ["cgroupfs-mount | cgroup-lite"]
    assert ce["Conflicts"] == ["docker.io"]
    assert ce["Replaces"] == ["docker-ce-cli (<< 5:28.0.0)"]
    cli = relations(packages["docker-ce-cli"])
    assert cli["Recommends"] == ["docker-buildx-plugin", "docker-compose-plugin"]
    assert set(cli["Conflicts"]) == {"docker.io", "docker-cli"}
    assert cli["Replaces"] == cli["Breaks"] == ["docker-ce (<< 5:0)"]
    buildx = relations(packages["docker-buildx-plugin"])
    assert buildx == {"Enhances": ["docker-ce-cli"], "Replaces": ["docker-ce-cli"]}
    compose = relations(packages["docker-compose-plugin"])
    assert compose == {"Enhances": ["docker-ce-cli"], "Recommends": ["docker-buildx-plugin (>= 0.17.0)"]}
    ctd = relations(packages["containerd.io"])
    assert ctd == {"Provides": ["containerd", "runc"], "Conflicts": ["containerd", "runc"], "Replaces": ["containerd", "runc"]}
    named = {re.split(r"[ (]", item)[0] for p in packages.values() for items in relations(p).values() for item in items}
    assert not named & {"docker-model-plugin", "docker-engine", "docker"}, named


def test_rootless_extras_relations_are_docker_ce_packagings_and_what_its_programs_run() -> None:
    """docker-ce-packaging's 29.x stanza (Depends dbus-user-session; Enhances docker-ce; Conflicts, Replaces and Breaks
    Debian's rootlesskit), with the packages of the programs that rootlesskit and dockerd-rootless.sh run on every start
    (newuidmap, ip, sysctl), and slirp4netns, the network driver the script prefers, as Debian's rootlesskit recommends."""
    extras = relations(shipped_packages()["docker-ce-rootless-extras"])
    assert extras == {
        "Depends": ["dbus-user-session", "iproute2", "procps", "uidmap"],
        "Recommends": ["slirp4netns (>= 0.4.0)"],
        "Enhances": ["docker-ce"],
        "Conflicts": ["rootlesskit"],
        "Replaces": ["rootlesskit"],
        "Breaks": ["rootlesskit"],
    }


def test_rootless_extras_carries_rootlesskit_and_the_engines_two_scripts() -> None:
    """As docker-ce-packaging's rules install them: rootlesskit alone of RootlessKit's programs (no
    rootlesskit-docker-proxy, which only Docker before 28 used), and contrib/'s scripts from the engine's own tree."""
    extras = shipped_packages()["docker-ce-rootless-extras"]
    files = {f.to: f for f in extras.files}
    assert set(files) == {"/usr/bin/rootlesskit", "/usr/bin/dockerd-rootless.sh", "/usr/bin/dockerd-rootless-setuptool.sh"}
    assert files["/usr/bin/rootlesskit"].binary == "rootlesskit"
    for script in ("dockerd-rootless.sh", "dockerd-rootless-setuptool.sh"):
        assert (files[f"/usr/bin/{script}"].source, files[f"/usr/bin/{script}"].mode) == (("engine", f"contrib/{script}"), 0o755)
    assert [b.name for b in CONFIG.component("rootlesskit").binaries] == ["rootlesskit"]
    assert (extras.source, extras.license_from) == ("docker-ce", "rootlesskit")


def test_containerd_io_carries_containerd_2s_programs_and_runc() -> None:
    """containerd 2.x has no containerd-shim and containerd-shim-runc-v1; containerd-packaging leaves out
    containerd-stress. Every program of the containerd and runc components is in containerd.io, and nothing else."""
    ctd = shipped_packages()["containerd.io"]
    programs = {f.to: f.binary for f in ctd.files if f.binary}
    built = {b.name for name in ("containerd", "runc") for b in CONFIG.component(name).binaries}
    assert set(programs.values()) == built == {"containerd", "containerd-shim-runc-v2", "ctr", "runc"}
    assert all(to == f"/usr/bin/{binary}" for to, binary in programs.items())
    (conffile,) = [f for f in ctd.files if f.conffile]
    assert (conffile.file, conffile.to) == ("containerd.io/config.toml", "/etc/containerd/config.toml")


# What the containerd 2.x config reads at its top level (cmd/containerd/server/config Config); anything else is
# an "unknown key" that containerd warns about and ignores.
CONTAINERD_KEYS = {
    "version", "root", "state", "temp", "debug", "disabled_plugins", "required_plugins", "plugins", "oom_score", "cgroup",
    "proxy_plugins", "timeouts", "imports", "stream_processors", "grpc", "ttrpc", "metrics",
}


def test_containerd_conffile_is_version_3_with_the_cri_off() -> None:
    text = CONFFILE.read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert config["version"] == 3, "the version every containerd 2.x reads (2.3 and later migrate it in memory)"
    assert config["disabled_plugins"] == [
        "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
        "io.containerd.podsandbox.controller.v1.podsandbox",
    ]
    assert set(config) <= CONTAINERD_KEYS
    # The commented defaults, uncommented, are settings containerd knows: a user who enables one gets no warning.
    settings = text[text.index("\n#root"):]
    uncommented = tomllib.loads(re.sub(r"(?m)^#", "", settings))
    assert set(uncommented) <= CONTAINERD_KEYS and {"root", "grpc", "debug"} <= set(uncommented), uncommented
    assert all(line.startswith("#") or not line.strip() for line in settings.splitlines())


def test_changelog_names_the_release_and_what_each_package_carries() -> None:
    packages = shipped_packages()
    for package in packages.values():
        version = package_version(package, CONFIG, CONFIG.packaging)
        entry = _changelog(package, version, CONFIG, CONFIG.packaging)
        assert entry.startswith(f"{package.source} ({version}) bookworm; urgency=medium\n"), entry
        assert f"Docker {CONFIG.release.version} built for i386 by dock32." in entry, entry
        assert all(len(line) <= 80 for line in entry.splitlines()), "lintian: changelog lines within 80 columns"
    ctd = _changelog(packages["containerd.io"], "x", CONFIG, CONFIG.packaging)
    assert f"  * Upstream: containerd {upstream('containerd')}, runc {upstream('runc')}.\n" in ctd, ctd
    plugin = _changelog(packages["docker-compose-plugin"], "x", CONFIG, CONFIG.packaging)
    assert f"  * Upstream: compose {upstream('compose')}.\n" in plugin, plugin
    ce = _changelog(packages["docker-ce"], "x", CONFIG, CONFIG.packaging)
    assert f"  * Upstream: engine {upstream('engine')}, tini {upstream('tini')}.\n" in ce, ce


def test_other_distros_change_suffix_and_unit_folder() -> None:
    trixie = dataclasses.replace(CONFIG.packaging, distro_name="debian-13")
    ce = shipped_packages()["docker-ce"]
    assert package_version(ce, CONFIG, trixie) == f"5:{upstream('engine')}-1~debian.13~trixie"
    assert DISTROS["debian-13"].unitdir == "/usr/lib/systemd/system"
    assert DISTROS["debian-12"].unitdir == "/lib/systemd/system"
    assert DISTROS["ubuntu-24.04"].version_suffix(1) == "-1~ubuntu.24.04~noble"


def test_revision_goes_into_every_version(tmp_path: Path) -> None:
    text = (ROOT / "buildcfg.yaml").read_text().replace("  revision: 1\n", "  revision: 3\n")
    path = tmp_path / "buildcfg.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.packaging.revision == 3
    ce = shipped_packages(config)["docker-ce"]
    assert package_version(ce, config, config.packaging) == f"5:{upstream('engine')}-3~debian.12~bookworm"
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
    softfloat = dataclasses.replace(CONFIG, flavour=Flavour(go386="softfloat"))
    packages = {p.name: p for p in load_packages(ROOT / "packaging" / "packages.yaml", softfloat)}
    assert package_version(packages["docker-ce"], softfloat, softfloat.packaging) == f"5:{upstream('engine')}-1~debian.12~bookworm~softfloat"
    assert package_version(packages["containerd.io"], softfloat, softfloat.packaging) == f"{upstream('containerd')}-1~debian.12~bookworm~softfloat"
