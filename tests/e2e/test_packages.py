"""The .debs of the real build: read back with dpkg-deb, checked by lintian, reproducible, and installed into a
clean i386 Debian root with apt, then removed and purged."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from dock32.arch import Arch
from dock32.rootfs import chroot_run, ensure_root, overlay
from dock32.settings import settings_from_env

from .conftest import CONFIG, DIST, ROOT, SETTINGS, dock32

pytestmark = pytest.mark.e2e

PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")


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


def test_control_fields_and_versions() -> None:
    engine = CONFIG.component("engine").version
    ce = control("docker-ce")
    assert ce["Version"] == f"5:{engine}-1~debian.12~bookworm"
    assert ce["Architecture"] == "i386"
    assert f"containerd.io (>= {CONFIG.component('containerd').version.lstrip('v')})" in ce["Depends"]
    assert "docker-ce-cli" in ce["Depends"] and "iptables" in ce["Depends"]
    assert "docker.io" in ce["Conflicts"]
    assert ce["Pre-Depends"].startswith("init-system-helpers")
    assert {"ca-certificates", "git", "pigz", "procps", "xz-utils"} <= {r.strip() for r in ce["Recommends"].split(",")}
    cli = control("docker-ce-cli")
    assert cli["Version"] == ce["Version"] and {"docker.io", "docker-cli"} <= {c.strip() for c in cli["Conflicts"].split(",")}
    assert "docker-buildx-plugin" in cli["Recommends"]
    ctd = control("containerd.io")
    assert ctd["Version"] == "1.7.28-1~debian.12~bookworm"
    for field in ("Provides", "Conflicts", "Replaces"):
        assert {r.strip() for r in ctd[field].split(",")} == {"containerd", "runc"}
    assert control("docker-buildx-plugin")["Version"] == "0.29.1-1~debian.12~bookworm"
    assert control("docker-compose-plugin")["Version"] == "2.40.3-1~debian.12~bookworm"
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
    assert {"/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr", "/usr/bin/runc", "/etc/containerd/config.toml"} <= set(ctd)
    unit = extract("containerd.io", "/lib/systemd/system/containerd.service").decode()
    assert "ExecStart=/usr/bin/containerd" in unit and "/usr/local/bin" not in unit
    assert 'disabled_plugins = ["cri"]' in extract("containerd.io", "/etc/containerd/config.toml").decode()
    assert "ExecStart=/usr/bin/dockerd" in extract("docker-ce", "/lib/systemd/system/docker.service").decode()
    assert "/usr/libexec/docker/cli-plugins/docker-buildx" in contents("docker-buildx-plugin")
    assert "/usr/libexec/docker/cli-plugins/docker-compose" in contents("docker-compose-plugin")
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


def test_release_is_signed_when_a_key_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from dock32.config import load_packages
    from dock32.debs import write_repository
    from dock32.layout import Layout

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
