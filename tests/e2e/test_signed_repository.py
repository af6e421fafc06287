"""The signed repository, as apt sees it: write_repository signs the real build's Release with a throwaway key, and
apt in a clean i386 Debian root, trusting only the exported keyring (`signed-by=`), accepts it; it refuses the
repository when the signed Release was altered or signed by another key. Real gpg, real apt."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from dock32.checks.rootfs import ensure_root, overlay
from dock32.core.arch import Arch
from dock32.model.config import load_packages
from dock32.model.layout import Layout
from dock32.model.settings import settings_from_env
from dock32.packaging.debs import write_repository
from dock32.packaging.signing import KEYRING

from .conftest import BIN, CONFIG, DIST, ROOT

pytestmark = pytest.mark.e2e

SOURCE = "deb [signed-by=/etc/apt/keyrings/dock32.gpg] file:/srv/repo ./\n"
# Only our source is fetched: the root's Debian lists (from debootstrap) stay, so no network is needed and the
# output is apt's verdict on our repository alone.
UPDATE = ["apt-get", "update", "-o", "Dir::Etc::SourceList=sources.list.d/dock32.list", "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0"]
INSTALL = ["apt-get", "install", "--simulate", "docker-ce"]
TRUSTED_LIST = "_srv_repo_._InRelease"  # where apt keeps the InRelease it verified


@dataclasses.dataclass(frozen=True)
class Key:
    home: Path  # its GNUPGHOME
    fingerprint: str

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]


def make_key(home: Path, user_id: str) -> Key:
    home.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", user_id, "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    colons = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env, check=True, capture_output=True, text=True).stdout
    (fingerprint,) = [line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:")]
    return Key(home, fingerprint)


def signed_copy(key: Key, user_id_or_fingerprint: str, folder: Path) -> Path:
    """A copy of the real build's dist/<target>/, its repository written again by dock32 with packaging.gpg_key set
    and GNUPGHOME pointing at key's keyring."""
    layout = Layout.of(folder / "build", folder / "dist", CONFIG.target, ROOT)
    shutil.copytree(DIST, layout.dist_dir)
    layout.manifest.parent.mkdir(parents=True)
    shutil.copyfile(BIN.parent / "manifest.json", layout.manifest)
    packaging = dataclasses.replace(CONFIG.packaging, gpg_key=user_id_or_fingerprint)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GNUPGHOME", str(key.home))
        write_repository(load_packages(ROOT / "packaging" / "packages.yaml", CONFIG), CONFIG, packaging, layout)
    return layout.dist_dir


@pytest.fixture(scope="module")
def keys(release_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Key, Key]]:
    """Our throwaway key and someone else's, each in a GNUPGHOME of its own."""
    base = tmp_path_factory.mktemp("gnupg")
    ours, other = make_key(base / "ours", "dock32 test <test@dock32.invalid>"), make_key(base / "other", "intruder <intruder@dock32.invalid>")
    yield ours, other
    for key in (ours, other):  # gpg started an agent for each GNUPGHOME
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(key.home)}, check=False)


@pytest.fixture(scope="module")
def signed(keys: tuple[Key, Key], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # By user id, as buildcfg.yaml may name it: dock32 resolves it to the one secret key.
    return signed_copy(keys[0], "test@dock32.invalid", tmp_path_factory.mktemp("signed"))


@pytest.fixture(scope="module")
def foreign(keys: tuple[Key, Key], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return signed_copy(keys[1], keys[1].fingerprint, tmp_path_factory.mktemp("foreign"))


@contextlib.contextmanager
def i386_root(tmp_path: Path, keyring: bytes) -> Iterator[Path]:
    """An overlay of the clean i386 Debian root that trusts keyring for file:/srv/repo and nothing else for it."""
    log = tmp_path / "root.log"
    clean = ensure_root(CONFIG.packaging.distro, Arch.I386, settings_from_env(ROOT), log)
    with overlay(clean, tmp_path / "overlay", log) as root:
        (root / "etc" / "apt" / "keyrings").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "apt" / "keyrings" / "dock32.gpg").write_bytes(keyring)
        (root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text(SOURCE)
        yield root


def serve(root: Path, repo: Path) -> None:
    shutil.rmtree(root / "srv" / "repo", ignore_errors=True)
    shutil.copytree(repo, root / "srv" / "repo")


def apt(root: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    return subprocess.run(["chroot", root, *argv], env=env, capture_output=True, text=True, check=False)


def complaints(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(("W:", "E:", "Err:", "Ign:"))]


def altered(repo: Path, folder: Path, *, inrelease: bool) -> Path:
    """A copy of repo whose signed Release says Packages.gz has another hash, as one pointing apt at another index
    would; inrelease=False: served as Release and Release.gpg alone, the form older repositories and mirrors use."""
    copy = folder / ("altered-inrelease" if inrelease else "altered-release")
    shutil.copytree(repo, copy)
    digest = Deb822((repo / "Release").read_text())["SHA256"].split()[-3]
    for name in ("InRelease", "Release"):
        text = (copy / name).read_text()
        assert digest in text
        (copy / name).write_text(text.replace(digest, "0" * 64))
    if not inrelease:
        (copy / "InRelease").unlink()
    return copy


def test_the_repository_is_signed_and_carries_its_keyring(signed: Path, keys: tuple[Key, Key]) -> None:
    ours, _ = keys
    for name in ("InRelease", "Release.gpg", KEYRING):
        assert (signed / name).is_file(), name
    # gpgv, apt's verifier, with the exported keyring alone: good signatures, by our key.
    for check in (["InRelease"], ["Release.gpg", "Release"]):
        result = subprocess.run(["gpgv", "--status-fd", "1", "--keyring", signed / KEYRING, *check], cwd=signed, capture_output=True, text=True, check=False)
        assert result.returncode == 0 and f"VALIDSIG {ours.fingerprint}" in result.stdout, result.stdout + result.stderr
    listed = (signed / "SHA256SUMS").read_text().split()
    assert {"InRelease", "Release.gpg", KEYRING} <= set(listed)
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=signed, check=True)
    # Release as apt wants it for a flat repository: a Date, no Valid-Until (it would expire a finished release).
    release = Deb822((signed / "Release").read_text())
    assert release["Date"] and "Valid-Until" not in release and release["SHA256"]


def test_apt_accepts_it_with_the_exported_key_then_keeps_it_when_altered(signed: Path, keys: tuple[Key, Key], tmp_path: Path) -> None:
    version = next(p["Version"] for p in Deb822.iter_paragraphs((signed / "Packages").read_text()) if p["Package"] == "docker-ce")
    with i386_root(tmp_path, (signed / KEYRING).read_bytes()) as root:
        serve(root, signed)
        update = apt(root, UPDATE)
        print(update.stdout, update.stderr)
        assert update.returncode == 0 and complaints(update) == [], update.stdout + update.stderr
        assert "file:/srv/repo ./ InRelease" in update.stdout and "file:/srv/repo ./ Packages" in update.stdout
        install = apt(root, INSTALL)
        assert install.returncode == 0, install.stdout + install.stderr
        assert f"Inst docker-ce ({version} dock32:" in install.stdout, install.stdout

        # The repository is altered after apt trusted it: apt keeps the index it verified and says so.
        trusted = (root / "var" / "lib" / "apt" / "lists" / TRUSTED_LIST).read_bytes()
        serve(root, altered(signed, tmp_path, inrelease=True))
        again = apt(root, UPDATE)
        print(again.stdout, again.stderr)
        assert f"BADSIG {keys[0].key_id}" in again.stdout + again.stderr
        assert "The repository is not updated and the previous index files will be used" in again.stderr
        assert (root / "var" / "lib" / "apt" / "lists" / TRUSTED_LIST).read_bytes() == trusted


@pytest.mark.parametrize("case", ["altered InRelease", "altered Release without InRelease", "signed with another key"])
def test_apt_refuses_an_altered_or_foreign_repository(case: str, signed: Path, foreign: Path, keys: tuple[Key, Key], tmp_path: Path) -> None:
    ours, other = keys
    if case == "signed with another key":
        repo, expected = foreign, f"NO_PUBKEY {other.key_id}"
    else:
        repo, expected = altered(signed, tmp_path, inrelease=case == "altered InRelease"), f"BADSIG {ours.key_id}"
    with i386_root(tmp_path, (signed / KEYRING).read_bytes()) as root:
        serve(root, repo)
        update = apt(root, UPDATE)
        print(update.stdout, update.stderr)
        output = update.stdout + update.stderr
        assert update.returncode != 0, output
        assert expected in output, output
        name = "InRelease" if case != "altered Release without InRelease" else "Release"
        assert f"E: The repository 'file:/srv/repo ./ {name}' is not signed." in output, output
        assert not (root / "var" / "lib" / "apt" / "lists" / "_srv_repo_._Packages").exists()
        install = apt(root, INSTALL)
        print(install.stdout, install.stderr)
        assert install.returncode != 0 and "E: Package 'docker-ce' has no installation candidate" in install.stderr, install.stdout + install.stderr
