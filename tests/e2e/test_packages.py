"""The .debs of the real build: read back with dpkg-deb, checked by lintian, reproducible, and installed into a
clean i386 Debian root with apt, then removed and purged."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from debian.deb822 import Deb822

from dock32.checks.rootfs import chroot_run, ensure_root, overlay
from dock32.core.arch import Arch
from dock32.model.config import load_packages
from dock32.model.settings import settings_from_env
from dock32.packaging.debs import _relations, package_version, placeholder_values

from .conftest import BIN, CONFIG, DIST, ROOT, SETTINGS, dock32

pytestmark = pytest.mark.e2e

PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-ce-rootless-extras", "docker-buildx-plugin", "docker-compose-plugin")
PACKAGES_YAML = {p.name: p for p in load_packages(ROOT / "packaging" / "packages.yaml", CONFIG)}


def deb(name: str) -> Path:
    (found,) = DIST.glob(f"{name}_*_i386.deb")
    return found


def control(name: str) -> Deb822:
    return Deb822(subprocess.run(["dpkg-deb", "-f", deb(name)], capture_output=True, text=True, check=True).stdout)


def contents(name: str) -> dict[str, tarfile.TarInfo]:
    """Path -> member of the package's data, read through dpkg-deb's own tar stream."""
    stream = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb(name)], capture_output=True, check=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        members = {m.name.removeprefix("."): m for m in tar.getmembers()}
        return {name: m for name, m in members.items()}


def extract(name: str, path: str) -> bytes:
    stream = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb(name)], capture_output=True, check=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        data = tar.extractfile("." + path)
        assert data is not None
        return data.read()


def control_member(name: str, member: str) -> str:
    return subprocess.run(["dpkg-deb", "-I", deb(name), member], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module", autouse=True)
def built(release_build: Path) -> Path:
    return release_build


def items(field: str) -> list[str]:
    return [item.strip() for item in field.split(",")]


def test_control_fields_and_versions() -> None:
    """Each control file says what packages.yaml says, filled in from the config's versions."""
    for name, package in PACKAGES_YAML.items():
        fields = control(name)
        assert fields["Version"] == package_version(package, CONFIG, CONFIG.packaging), name
        assert fields["Architecture"] == "i386"
        relations = _relations(package, CONFIG, CONFIG.packaging)
        assert {k: fields[k] for k in relations} == relations, name
        relation_fields = {"Pre-Depends", "Depends", "Recommends", "Suggests", "Conflicts", "Breaks", "Replaces", "Provides", "Enhances"}
        assert not set(fields) & relation_fields - set(relations), name
    suffix = placeholder_values(CONFIG, CONFIG.packaging)["distro_suffix"]
    ce = control("docker-ce")
    assert ce["Version"] == f"5:{CONFIG.component('engine').version.removeprefix('v')}{suffix}"
    # docker-ce-packaging's 29.x relations (deb/common/control), the containerd.io floor being the one built here.
    assert items(ce["Depends"]) == [f"containerd.io (>= {CONFIG.component('containerd').version.removeprefix('v')})", "docker-ce-cli", "iptables", "nftables"]
    assert ce["Pre-Depends"].startswith("init-system-helpers")
    assert {"apparmor", "ca-certificates", "docker-ce-rootless-extras", "git", "pigz", "procps", "xz-utils"} <= set(items(ce["Recommends"]))
    assert items(ce["Conflicts"]) == ["docker.io"]
    cli = control("docker-ce-cli")
    assert cli["Version"] == f"5:{CONFIG.component('cli').version.removeprefix('v')}{suffix}"
    assert {"docker.io", "docker-cli"} == set(items(cli["Conflicts"]))
    assert "docker-buildx-plugin" in items(cli["Recommends"])
    ctd = control("containerd.io")
    assert ctd["Version"] == f"{CONFIG.component('containerd').version.removeprefix('v')}{suffix}"
    for field in ("Provides", "Conflicts", "Replaces"):
        assert set(items(ctd[field])) == {"containerd", "runc"}
    assert control("docker-buildx-plugin")["Version"] == f"{CONFIG.component('buildx').version.removeprefix('v')}{suffix}"
    compose = control("docker-compose-plugin")
    assert compose["Version"] == f"{CONFIG.component('compose').version.removeprefix('v')}{suffix}"
    assert items(compose["Recommends"]) == ["docker-buildx-plugin (>= 0.17.0)"]
    extras = control("docker-ce-rootless-extras")
    assert (extras["Version"], extras["Source"]) == (ce["Version"], "docker-ce")
    assert items(extras["Depends"]) == ["dbus-user-session", "iproute2", "procps", "uidmap"]
    assert items(extras["Recommends"]) == ["slirp4netns (>= 0.4.0)"]
    assert items(extras["Enhances"]) == ["docker-ce"]
    assert extras["Conflicts"] == extras["Replaces"] == extras["Breaks"] == "rootlesskit"
    for name in PACKAGES:
        files = contents(name)
        size_kib = sum((m.size + 1023) // 1024 if m.isfile() else 1 for path, m in files.items() if path not in ("", "/"))
        assert abs(int(control(name)["Installed-Size"]) - size_kib) <= len(files), name


def test_file_layout_modes_and_owners() -> None:
    ce = contents("docker-ce")
    for path in ("/usr/bin/dockerd", "/usr/bin/docker-proxy", "/usr/libexec/docker/docker-init", "/etc/init.d/docker"):
        assert ce[path].mode == 0o755, path
    for path in ("/lib/systemd/system/docker.service", "/lib/systemd/system/docker.socket", "/etc/default/docker", "/usr/share/doc/docker-ce/copyright"):
        assert ce[path].mode == 0o644, path
    assert all(m.uname == "root" and m.gname == "root" for m in ce.values())
    assert all(m.mtime == CONFIG.release.epoch for m in ce.values())
    ctd = contents("containerd.io")
    # containerd 2.x's programs (no containerd-shim, containerd-shim-runc-v1; containerd-stress is left out) and runc.
    programs = {path for path, m in ctd.items() if path.startswith("/usr/bin/") and m.isfile()}
    assert programs == {"/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr", "/usr/bin/runc"}
    unit = extract("containerd.io", "/lib/systemd/system/containerd.service").decode()
    assert "ExecStart=/usr/bin/containerd" in unit and "/usr/local/bin" not in unit
    assert extract("containerd.io", "/etc/containerd/config.toml") == (ROOT / "packaging" / "files" / "containerd.io" / "config.toml").read_bytes()
    assert tomllib.loads(extract("containerd.io", "/etc/containerd/config.toml").decode())["version"] == 3
    assert "ExecStart=/usr/bin/dockerd" in extract("docker-ce", "/lib/systemd/system/docker.service").decode()
    assert "/usr/libexec/docker/cli-plugins/docker-buildx" in contents("docker-buildx-plugin")
    assert "/usr/libexec/docker/cli-plugins/docker-compose" in contents("docker-compose-plugin")
    # docker-ce-packaging's rules: rootlesskit (no rootlesskit-docker-proxy since Docker 28) and the engine's two scripts.
    extras = contents("docker-ce-rootless-extras")
    programs = {path: m.mode for path, m in extras.items() if path.startswith("/usr/bin/")}
    assert programs == {"/usr/bin/rootlesskit": 0o755, "/usr/bin/dockerd-rootless.sh": 0o755, "/usr/bin/dockerd-rootless-setuptool.sh": 0o755}
    engine_tree = SETTINGS.build_dir / CONFIG.target / "src" / "engine"
    for script in ("dockerd-rootless.sh", "dockerd-rootless-setuptool.sh"):
        assert extract("docker-ce-rootless-extras", f"/usr/bin/{script}") == (engine_tree / "contrib" / script).read_bytes(), script
    assert extract("docker-ce-rootless-extras", "/usr/bin/rootlesskit") == (BIN / "rootlesskit").read_bytes()
    for name in PACKAGES:
        assert f"/usr/share/doc/{name}/changelog.Debian.gz" in contents(name)


def test_completions_come_from_the_built_cli() -> None:
    bash = extract("docker-ce-cli", "/usr/share/bash-completion/completions/docker").decode()
    zsh = extract("docker-ce-cli", "/usr/share/zsh/vendor-completions/_docker").decode()
    fish = extract("docker-ce-cli", "/usr/share/fish/vendor_completions.d/docker.fish").decode()
    assert "bash completion" in bash and "__start_docker" in bash
    assert zsh.startswith("#compdef docker")
    assert "complete -c docker" in fish


def test_conffiles_scripts_and_md5sums() -> None:
    assert control_member("docker-ce", "conffiles").split() == ["/etc/default/docker", "/etc/init.d/docker"]
    assert control_member("containerd.io", "conffiles").split() == ["/etc/containerd/config.toml"]
    for name in ("docker-ce", "containerd.io"):
        for script in ("postinst", "prerm", "postrm"):
            text = control_member(name, script)
            assert text.startswith("#!/bin/sh")
            subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    assert "groupadd --system docker" in control_member("docker-ce", "postinst")
    for name in PACKAGES:
        sums = dict(reversed(line.split("  ", 1)) for line in control_member(name, "md5sums").splitlines())
        assert sums, name
        for path, digest in sums.items():
            assert hashlib.md5(extract(name, "/" + path)).hexdigest() == digest, path
        assert not any(p.startswith("etc/") for p in sums), "conffiles are not in md5sums"


def test_lintian_is_clean() -> None:
    result = subprocess.run(["lintian", "--fail-on", "error,warning", *(str(deb(n)) for n in PACKAGES)], capture_output=True, text=True, check=False)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and tags == [], result.stdout


def test_repository_index_and_checksums() -> None:
    packages = list(Deb822.iter_paragraphs((DIST / "Packages").read_text()))
    assert sorted(p["Package"] for p in packages) == sorted(PACKAGES)
    for stanza in packages:
        path = DIST / stanza["Filename"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == stanza["SHA256"]
        assert int(stanza["Size"]) == path.stat().st_size
    release = Deb822((DIST / "Release").read_text())
    for line in release["SHA256"].strip().splitlines():
        digest, size, name = line.split()
        assert hashlib.sha256((DIST / name).read_bytes()).hexdigest() == digest and int(size) == (DIST / name).stat().st_size
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=DIST, check=True)
    assert "manifest.json" in (DIST / "SHA256SUMS").read_text()


def test_packing_again_elsewhere_gives_identical_debs(tmp_path: Path) -> None:
    result = dock32("build", env={"DOCK32_DIST_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    again = tmp_path / CONFIG.target
    # doit's state now describes the other dist folder; one build puts it back, so later tests see a settled workspace.
    assert dock32("build").returncode == 0
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in DIST.iterdir())
    assert [p.name for p in sorted(DIST.iterdir()) if p.read_bytes() != (again / p.name).read_bytes()] == []


def test_apt_installs_into_a_clean_i386_debian_then_purge_leaves_nothing(tmp_path: Path) -> None:
    settings = settings_from_env(ROOT)
    log = tmp_path / "install.log"
    clean_root = ensure_root(CONFIG.packaging.distro, Arch.I386, settings, log)
    ours = {path for name in PACKAGES for path, m in contents(name).items() if not m.isdir()}
    with overlay(clean_root, tmp_path / "overlay", log) as root:
        shutil.copytree(DIST, root / "srv" / "dock32")
        (root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text("deb [trusted=yes] file:/srv/dock32 ./\n")
        chroot_run(root, ["apt-get", "update", "-q"], log, "apt-get update")
        # Recommends too must resolve from Debian's i386 archive (simulated: no need to download git).
        chroot_run(root, ["apt-get", "install", "-s", "-q", *PACKAGES], log, "apt-get install --simulate")
        chroot_run(root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], log, "apt-get install")
        for name in PACKAGES:
            status = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f=${Status} ${Version}", name], capture_output=True, text=True, check=True).stdout
            assert status.startswith("install ok installed"), (name, status)
        version = subprocess.run(["chroot", root, "/usr/bin/docker", "--version"], capture_output=True, text=True, check=True).stdout
        assert CONFIG.component("cli").version in version
        assert subprocess.run(["chroot", root, "getent", "group", "docker"], capture_output=True, check=False).returncode == 0
        assert (root / "etc" / "containerd" / "config.toml").is_file()

        chroot_run(root, ["apt-get", "remove", "-y", "-q", *PACKAGES], log, "apt-get remove")
        assert (root / "etc" / "default" / "docker").is_file(), "remove keeps conffiles"
        assert not (root / "usr" / "bin" / "dockerd").exists()
        chroot_run(root, ["apt-get", "purge", "-y", "-q", *PACKAGES], log, "apt-get purge")
        left = sorted(p for p in ours if (root / p.lstrip("/")).exists() or (root / p.lstrip("/")).is_symlink())
        assert left == [], left
        assert not list((root / "etc").glob("rc?.d/*docker")), "update-rc.d links stay after purge"
        assert not (root / "etc" / "containerd").exists()


# containerd.io's conffile as the 28.x-era packages (containerd 1.7) shipped it, less Docker's licence header: no
# version line, so containerd reads it as version 1, and the 1.x name of the CRI plugin.
CONFFILE_28X = """\
disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = "/run/containerd/containerd.sock"
#  uid = 0
#  gid = 0

#[debug]
#  address = "/run/containerd/debug.sock"
#  uid = 0
#  gid = 0
#  level = "info"
"""
# The same file as a user edits it: another data folder, a group for the socket, more logging.
CONFFILE_28X_EDITED = """\
disabled_plugins = ["cri"]

root = "/srv/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

[grpc]
  address = "/run/containerd/containerd.sock"
  uid = 0
  gid = 999

[debug]
  level = "debug"
"""
# A 1.x file made for Kubernetes: config version 2, the CRI on, with the systemd cgroup driver.
CONFFILE_1X_FOR_KUBERNETES = """\
version = 2
disabled_plugins = []

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
"""


def config_dump(argv: list[str]) -> tuple[dict[str, Any], str]:
    """`containerd ... config dump`: the configuration the daemon would run with, parsed, and what it logged."""
    result = subprocess.run([*argv, "config", "dump"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout), result.stderr


def assert_edits_kept(dumped: dict[str, Any]) -> None:
    assert dumped["root"] == "/srv/containerd" and dumped["debug"]["level"] == "debug"
    # Version 4 (containerd 2.3) keeps the socket's settings in a server plugin; version 3 at the top.
    grpc = dumped.get("plugins", {}).get("io.containerd.server.v1.grpc") or dumped["grpc"]
    assert (grpc["address"], grpc["gid"]) == ("/run/containerd/containerd.sock", 999), grpc
    assert "io.containerd.grpc.v1.cri" in dumped["disabled_plugins"], dumped["disabled_plugins"]


def test_built_containerd_reads_the_shipped_conffile_and_edited_1x_ones(tmp_path: Path) -> None:
    """containerd 2.x reads the conffile as shipped, and the 1.x-era files dpkg keeps where a user edited them: it
    migrates them in memory with the edits, and `config migrate` writes the same configuration in its own version."""
    containerd = str(BIN / "containerd")
    shipped = tmp_path / "shipped.toml"
    shipped.write_bytes(extract("containerd.io", "/etc/containerd/config.toml"))
    dumped, log = config_dump([containerd, "--config", str(shipped)])
    assert "level=error" not in log and "Ignoring unknown key" not in log, log
    assert dumped["disabled_plugins"] == tomllib.loads(shipped.read_text())["disabled_plugins"]
    assert dumped["root"] == "/var/lib/containerd"

    edited = tmp_path / "edited.toml"
    edited.write_text(CONFFILE_28X_EDITED)
    dumped, log = config_dump([containerd, "--config", str(edited)])
    assert "migrated" in log and "level=error" not in log, log
    assert_edits_kept(dumped)
    migrated = tmp_path / "migrated.toml"
    result = subprocess.run([containerd, "--config", str(edited), "config", "migrate"], capture_output=True, text=True, check=True)
    migrated.write_text(result.stdout)
    again, log = config_dump([containerd, "--config", str(migrated)])
    assert again == dumped and "migrated" not in log, log

    kubernetes = tmp_path / "kubernetes.toml"
    kubernetes.write_text(CONFFILE_1X_FOR_KUBERNETES)
    dumped, log = config_dump([containerd, "--config", str(kubernetes)])
    assert dumped["disabled_plugins"] == []
    assert dumped["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_upgrade_from_28x_keeps_an_edited_conffile_and_replaces_an_untouched_one(tmp_path: Path) -> None:
    """dpkg's conffile handling across the upgrade from a 28.x-era containerd.io (this package, repacked with that
    version and conffile): the user's file stays (the new one beside it as .dpkg-dist) and the upgraded containerd
    reads it; a file nobody edited becomes the new one."""
    log = tmp_path / "upgrade.log"
    tree = tmp_path / "old"
    subprocess.run(["dpkg-deb", "-R", deb("containerd.io"), tree], check=True)
    (tree / "etc" / "containerd" / "config.toml").write_text(CONFFILE_28X)
    version = control("containerd.io")["Version"]
    text = (tree / "DEBIAN" / "control").read_text()
    (tree / "DEBIAN" / "control").write_text(text.replace(f"Version: {version}\n", "Version: 1.7.28-1~debian.12~bookworm\n"))
    old_deb = tmp_path / "containerd.io-28x.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, old_deb], check=True, capture_output=True)
    shipped = extract("containerd.io", "/etc/containerd/config.toml")
    clean_root = ensure_root(CONFIG.packaging.distro, Arch.I386, settings_from_env(ROOT), log)
    for user_edited in (True, False):
        with overlay(clean_root, tmp_path / f"overlay-{user_edited}", log) as root:
            shutil.copyfile(old_deb, root / "srv" / "old.deb")
            shutil.copyfile(deb("containerd.io"), root / "srv" / "new.deb")
            chroot_run(root, ["dpkg", "-i", "/srv/old.deb"], log, "install the 28.x-era containerd.io")
            conffile = root / "etc" / "containerd" / "config.toml"
            assert conffile.read_text() == CONFFILE_28X
            if user_edited:
                conffile.write_text(CONFFILE_28X_EDITED)
            # --force-confold: the prompt's default answer, with no terminal to ask on.
            chroot_run(root, ["dpkg", "--force-confold", "-i", "/srv/new.deb"], log, "upgrade containerd.io")
            query = ["chroot", root, "dpkg-query", "-W", "-f=${Status} ${Version}", "containerd.io"]
            status = subprocess.run(query, capture_output=True, text=True, check=True)
            assert status.stdout == f"install ok installed {version}", status.stdout
            if user_edited:
                assert conffile.read_text() == CONFFILE_28X_EDITED
                assert (root / "etc" / "containerd" / "config.toml.dpkg-dist").read_bytes() == shipped
                assert_edits_kept(config_dump(["chroot", str(root), "/usr/bin/containerd"])[0])
            else:
                assert conffile.read_bytes() == shipped
                dumped, log_text = config_dump(["chroot", str(root), "/usr/bin/containerd"])
                assert dumped["disabled_plugins"] == tomllib.loads(shipped.decode())["disabled_plugins"], log_text


def test_release_is_signed_when_a_key_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from dock32.model.config import load_packages
    from dock32.model.layout import Layout
    from dock32.packaging.debs import write_repository

    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "dock32 test <test@example.org>", "ed25519", "sign", "1d"],
                   check=True, capture_output=True)
    layout = Layout.of(SETTINGS.build_dir, tmp_path / "dist", CONFIG.target, ROOT)
    shutil.copytree(DIST, layout.dist_dir)
    packaging = dataclasses.replace(CONFIG.packaging, gpg_key="test@example.org")
    write_repository(load_packages(ROOT / "packaging" / "packages.yaml", CONFIG), CONFIG, packaging, layout)
    dist = layout.dist_dir
    subprocess.run(["gpg", "--batch", "--verify", dist / "InRelease"], check=True, capture_output=True)
    subprocess.run(["gpg", "--batch", "--verify", dist / "Release.gpg", dist / "Release"], check=True, capture_output=True)
    (dist / "Release").write_text((dist / "Release").read_text().replace("Label: dock32", "Label: forged"))
    assert subprocess.run(["gpg", "--batch", "--verify", dist / "Release.gpg", dist / "Release"], capture_output=True).returncode != 0
    assert {"InRelease", "Release.gpg"} <= set((dist / "SHA256SUMS").read_text().split())
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False)  # gpg started it for this GNUPGHOME
