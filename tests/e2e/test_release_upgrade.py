"""The upgrade a user makes from our previous release (make test-all): that release's own packages, built from
the last commit of this repository that pinned it, then `apt-get install` of this build's packages over them.
Containers, images and volumes must survive, and the --restart=always container must run on the new engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import CONFIG, ROOT, dock32

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def previous_release_commit() -> tuple[str, str]:
    """(commit, release) of the newest commit whose buildcfg.yaml pins another release than the working tree's."""
    if not (ROOT / ".git").exists():
        pytest.skip("this checkout has no git history to find the previous release's commit in")
    for commit in git("log", "--format=%H", "--", "buildcfg.yaml").split():
        release = str(yaml.safe_load(git("show", f"{commit}:buildcfg.yaml"))["release"]["version"])
        if release != CONFIG.release.version:
            return commit, release
    pytest.skip(f"no commit in this clone's history pins a release other than {CONFIG.release.version} (a shallow clone?)")


def test_upgrade_from_the_previous_release_keeps_containers_images_and_volumes(release_build: Path, tmp_path: Path) -> None:
    commit, release = previous_release_commit()
    checkout = tmp_path / "previous"
    checkout.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive, check=True)
    # That commit's own code, config, patches and packaging: its dodo.py puts its src/ first on the path.
    env = {**os.environ, "DOCK32_BUILD_DIR": str(checkout / "build"), "DOCK32_DIST_DIR": str(checkout / "dist")}
    built = subprocess.run([sys.executable, "-m", "doit", "build"], cwd=checkout, env=env, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (previous_dist,) = [folder for folder in (checkout / "dist").iterdir() if (folder / "Packages").is_file() and folder.name == CONFIG.target]
    assert json.loads((previous_dist / "manifest.json").read_text())["release"] == release

    result = dock32("verify-upgrade", "--from", str(previous_dist))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((release_build / "verify-upgrade.json").read_text())
    assert (report["from"], report["to"]) == (release, CONFIG.component("engine").version)
    assert len(report["steps"]) == 4 and all(step["status"] == "pass" for step in report["steps"]), report["steps"]


def test_verify_upgrade_without_an_earlier_release_says_how(release_build: Path, tmp_path: Path) -> None:
    result = dock32("verify-upgrade", env={"DOCK32_UPGRADE_FROM": ""})
    assert result.returncode != 0
    assert "--from" in result.stderr and "Traceback" not in result.stderr, result.stderr
    result = dock32("verify-upgrade", "--from", str(tmp_path))
    assert result.returncode != 0
    assert f"{tmp_path}/manifest.json does not exist" in result.stderr and "Traceback" not in result.stderr, result.stderr
