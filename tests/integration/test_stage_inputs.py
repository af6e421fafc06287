"""Each stage's up-to-date check sees what the stage reads: a new release version alone repacks every package
(their changelogs name it) and relinks nothing."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest
from debian.debfile import DebFile

from .conftest import ran_tasks, run_dock32

pytestmark = pytest.mark.integration


def changelog(deb: Path) -> str:
    data = DebFile(str(deb)).data.get_content("./usr/share/doc/hello/changelog.Debian.gz")
    return gzip.decompress(data).decode()


def ran(stdout: str) -> set[str]:
    """The tasks the run started, not those it found up to date."""
    return set(ran_tasks(stdout))


def test_a_new_release_version_alone_repacks_every_package_and_relinks_nothing(packaged) -> None:  # type: ignore[no-untyped-def]
    root, env = packaged
    first = run_dock32(root, "build", env=env)
    assert first.returncode == 0, first.stderr
    deb = next((root / "dist" / "native32-i386").glob("hello_*.deb"))
    assert "Docker 1.0.0 built for i386" in changelog(deb)
    binaries = {p.name: p.read_bytes() for p in (root / "build" / "native32-i386" / "bin").iterdir()}

    (root / "buildcfg.yaml").write_text((root / "buildcfg.yaml").read_text().replace('version: "1.0.0"\n  date', 'version: "1.0.1"\n  date', 1))
    second = run_dock32(root, "build", env=env)
    assert second.returncode == 0, second.stderr
    assert {"package:hello", "sbom:hello", "manifest", "repository"} <= ran(second.stdout), second.stdout
    assert not {task for task in ran(second.stdout) if task.startswith(("compile:", "source:", "fetch:", "toolchain"))}, second.stdout
    assert "Docker 1.0.1 built for i386" in changelog(deb)
    assert {p.name: p.read_bytes() for p in (root / "build" / "native32-i386" / "bin").iterdir()} == binaries
    assert subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, check=False).returncode == 0
