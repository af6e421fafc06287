"""The CI workflow users copy: actionlint accepts it, and its jobs' steps run here, on one target.

The local runner of tests/workflow_runner.py plays GitHub's part: `run:` steps go to bash in the checkout with the
job's and step's environment and the first matrix entry; the actions it uses are emulated for what this workflow
needs (checkout: nothing to do here; cache restore and save: their keys are worked out, hashFiles included, and
nothing is moved, since the cache is this machine's; upload/download-artifact: a local artifacts folder). The
cache trim step runs with --dry-run: this machine's cache is shared with other checkouts. Step `if:`s are not
evaluated (the steps that have one are emulated actions). The jobs run in a Debian 12 container as root, which
is what this machine is. A stand-in gh on PATH records the release upload instead of making it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dock32.checks.rootfs import ensure_root, overlay
from dock32.core.arch import Arch, build_machine_arch
from dock32.model.config import load_config, load_packages
from dock32.model.layout import Layout
from dock32.model.settings import settings_from_env
from dock32.packaging.debs import build_deb, write_repository

from ..workflow_runner import TRIM_STEP, expand, run_job
from .conftest import CONFIG, DIST, ROOT, SETTINGS

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / ".github" / "workflows" / "build.yml"


def stand_ins(folder: Path, log: Path) -> Path:
    folder.mkdir()
    (folder / "gh").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (folder / "gh").chmod(0o755)
    return folder


def second_target(artifacts: Path, tmp_path: Path) -> list[str]:
    """The default target's binaries packed as another matrix job would for packaging.distro=debian-13, into
    artifacts/dist-<its target>; returns its .deb names."""
    other = load_config(ROOT / "buildcfg.yaml", ("packaging.distro=debian-13", "packaging.compression=zstd"))
    packages = load_packages(ROOT / "packaging" / "packages.yaml", other)
    layout = Layout.of(tmp_path / "other-build", tmp_path / "other-dist", other.target, ROOT)
    # The default target's binaries, sources and manifest: a debian-13 build compiles the same bytes.
    layout.target_dir.mkdir(parents=True)
    for name in ("bin", "src", "manifest.json"):
        (layout.target_dir / name).symlink_to(SETTINGS.build_dir / CONFIG.target / name)
    with contextlib.redirect_stderr(io.StringIO()):  # the zstd compatibility warning
        for package in packages:
            build_deb(package, other, other.packaging, layout)
    write_repository(packages, other, other.packaging, layout)
    shutil.copytree(layout.dist_dir, artifacts / f"dist-{other.target}")
    return sorted(p.name for p in layout.dist_dir.glob("*.deb"))


def apt_installs_from(repo: Path, codename: str, tmp_path: Path) -> None:
    """apt in a clean i386 Debian takes the merged repository with signed-by= its keyring, and finds docker-ce there."""
    log = tmp_path / "apt.log"
    clean = ensure_root(CONFIG.packaging.distro, CONFIG.host_arch, SETTINGS, log)
    with overlay(clean, tmp_path / "overlay", log) as root:
        shutil.copytree(repo, root / "srv" / "repo")
        (root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text(
            f"deb [signed-by=/srv/repo/dock32-archive-keyring.gpg] file:/srv/repo {codename} main\n"
        )
        only_ours = ["-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/dock32.list", "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0"]
        update = subprocess.run(["chroot", root, "apt-get", "update", *only_ours], capture_output=True, text=True, check=False)
        assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, update.stdout + update.stderr
        simulate = subprocess.run(["chroot", root, "apt-get", "install", "--simulate", "docker-ce"], capture_output=True, text=True, check=False)
        assert simulate.returncode == 0 and "Inst docker-ce " in simulate.stdout, simulate.stdout + simulate.stderr


def test_actionlint_accepts_every_workflow() -> None:
    actionlint = ROOT / ".venv" / "bin" / "actionlint"
    if not actionlint.is_file() and build_machine_arch() is Arch.I386:
        pytest.skip("no actionlint on this i386 machine: it needs a Go >= 1.25, and no linux-386 toolchain of one came through GOPROXY")
    assert actionlint.is_file(), "actionlint is missing: `make test-tools` installs it"
    assert shutil.which("shellcheck"), "shellcheck is missing: `make setup` installs it (actionlint checks the run: scripts with it)"
    result = subprocess.run([actionlint, *sorted((ROOT / ".github" / "workflows").glob("*.yml"))], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def cache_steps(steps: list[dict[str, Any]], action: str) -> dict[str, dict[str, Any]]:
    return {s.get("id") or s["with"]["key"]: s for s in steps if s.get("uses", "").split("@")[0] == action}


def test_the_caches_split_the_dock32_cache_by_kind_and_share_what_targets_share() -> None:
    """One cache of downloads and module zips for all targets (saved by one job), a Go build cache per target
    (trimmed before it is saved), a Debian root per distribution; never the whole cache, nor extracted modules."""
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    steps = jobs["build"]["steps"]
    restores, saves = cache_steps(steps, "actions/cache/restore"), cache_steps(steps, "actions/cache/save")
    assert set(restores) == {"modules", "gobuild", "root"}, restores
    cache = settings_from_env(ROOT, {"DOCK32_CACHE_DIR": "/cache"}).cache_dir

    def kinds(step: dict[str, Any], context: dict[str, str]) -> set[Path]:
        paths = {line.strip() for line in expand(step["with"]["path"], context).splitlines() if line.strip()}
        assert all(p.startswith("~/.cache/dock32/") for p in paths), paths
        return {cache / p.removeprefix("~/.cache/dock32/") for p in paths}

    keys: dict[str, set[str]] = {name: set() for name in restores}
    for entry in jobs["build"]["strategy"]["matrix"]["include"]:
        context = {f"matrix.{k}": str(v) for k, v in entry.items()}
        config = load_config(ROOT / "buildcfg.yaml", tuple(entry["set"].split()))
        settings = settings_from_env(ROOT, {"DOCK32_CACHE_DIR": "/cache"})
        assert config.target == entry["target"]
        distro = config.packaging.distro
        assert entry["distro"] == f"{distro.vendor}-{distro.version_id}", f"{entry['target']}: matrix distro is not its packaging.distro"
        assert kinds(restores["modules"], context) == {settings.downloads_dir, settings.trees_dir, settings.gomodcache / "cache" / "download"}
        assert kinds(restores["gobuild"], context) == {settings.gocache}
        assert kinds(restores["root"], context) == {cache / "roots" / f"{distro.vendor}-{distro.version_id}-{config.deb_arch.names.debian}"}
        for name, step in restores.items():
            keys[name].add(expand(step["with"]["key"], context, ROOT))
    targets = {e["target"] for e in jobs["build"]["strategy"]["matrix"]["include"]}
    distros = {e["distro"] for e in jobs["build"]["strategy"]["matrix"]["include"]}
    assert len(keys["modules"]) == 1, "every target must share the one modules cache"
    assert len(keys["gobuild"]) == len(targets) and len(keys["root"]) == len(distros), keys
    # Each save writes what its restore read, under the key it looked up.
    assert len(saves) == len(restores)
    by_key = {s["with"]["key"]: s for s in saves.values()}
    for name, restore in restores.items():
        save = by_key[f"${{{{ steps.{name}.outputs.cache-primary-key }}}}"]
        assert save["with"]["path"] == restore["with"]["path"]
        assert f"steps.{name}.outputs.cache-hit != 'true'" in save["if"], save["if"]
    assert "strategy.job-index == 0" in by_key["${{ steps.modules.outputs.cache-primary-key }}"]["if"], "one job saves the modules"
    # The trim runs after the build and before the saves of what it trims.
    order = [s.get("id") or s.get("name") for s in steps]
    assert order.index("Build") < order.index(TRIM_STEP) < min(order.index(s.get("id") or s.get("name")) for s in saves.values())


def test_the_build_and_publish_jobs_run_here_on_one_target(release_build: Path, tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert {jobs[j]["container"]["image"] for j in ("build", "publish")} == {"debian:12"}, "the local runner plays a Debian 12 machine"
    assert "VERSION_ID=\"12\"" in Path("/etc/os-release").read_text()
    matrix = jobs["build"]["strategy"]["matrix"]["include"][0]
    assert matrix["target"] == CONFIG.target and matrix["set"] == "", "the first matrix entry is the default target"
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    released = tmp_path / "gh.log"
    tools = stand_ins(tmp_path / "bin", released)
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg_env = {"GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "dock32 ci <ci@dock32.invalid>", "ed25519", "sign", "1d"],
                   check=True, capture_output=True, env={**os.environ, **gpg_env})
    fingerprint = next(
        line.split(":")[9] for line in subprocess.run(["gpg", "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=True,
                                                       env={**os.environ, **gpg_env}).stdout.splitlines() if line.startswith("fpr:")
    )
    secret = subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys", fingerprint], capture_output=True, text=True, check=True,
                            env={**os.environ, **gpg_env}).stdout
    # The job imports the secret key into its own keyring: give it an empty one.
    job_home = tmp_path / "job-gnupg"
    job_home.mkdir(mode=0o700)
    context = {
        **{f"matrix.{k}": str(v) for k, v in matrix.items()},
        "secrets.DOCK32_GPG_PRIVATE_KEY": secret, "secrets.DOCK32_GPG_KEY_ID": fingerprint,
        "github.token": "local", "github.ref": "refs/tags/v0.0.0-local",
    }
    outputs = [ROOT / "repo", ROOT / "artifacts", ROOT / "dock32-apt-repository.tar.gz"]
    assert not any(p.exists() for p in outputs), "leftovers of an earlier run in the checkout"
    try:
        run_job(jobs["build"], context, ROOT, artifacts, tools, {})
        assert (artifacts / f"dist-{CONFIG.target}" / "manifest.json").is_file()
        assert sorted(p.name for p in (artifacts / f"dist-{CONFIG.target}").glob("*.deb")) == sorted(p.name for p in DIST.glob("*.deb"))
        # A second target, as another matrix job would upload it: the same binaries packed for Debian 13.
        other_target = second_target(artifacts, tmp_path)
        run_job(jobs["publish"], context, ROOT, artifacts, tools, {"GNUPGHOME": str(job_home), "GITHUB_REF_NAME": "v0.0.0-local"})
        repo = ROOT / "repo"
        codename = CONFIG.packaging.distro.codename
        release = repo / "dists" / codename / "Release"
        assert "Components: main" in release.read_text() and "main/binary-i386/Packages" in release.read_text()
        subprocess.run(["gpg", "--batch", "--verify", repo / "dists" / codename / "InRelease"], check=True, capture_output=True, env={**os.environ, **gpg_env})
        assert sorted(p.name for p in (repo / "pool").rglob("*.deb")) == sorted([*(p.name for p in DIST.glob("*.deb")), *other_target])
        other_release = (repo / "dists" / "trixie" / "Release").read_text()
        assert "Codename: trixie" in other_release and (repo / "dists" / "trixie" / "InRelease").is_file()
        assert "~debian.13~trixie" in (repo / "dists" / "trixie" / "main" / "binary-i386" / "Packages").read_text()
        assert "~debian.13~trixie" not in (repo / "dists" / codename / "main" / "binary-i386" / "Packages").read_text()
        assert (repo / "dock32-archive-keyring.gpg").is_file()
        assert sorted(p.name for p in (repo / "pool").rglob("*.spdx.json")) == sorted(p.name for p in DIST.glob("*.spdx.json"))
        apt_installs_from(repo, codename, tmp_path)
        assert released.read_text().startswith("release create v0.0.0-local dock32-apt-repository.tar.gz")
    finally:
        for path in outputs:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
