"""The machine's habits do not leak into the build: the tiny project, in a folder whose path has a space, builds
and packs the same bytes under umask 0022, 0027 and 0077, and what lands in dist/ (and in a published repository)
is 0644 and 0755 whatever the umask, so that dpkg-deb accepts the staged tree and another user can copy or install
the packages. The Makefile's recipes, too, run in a checkout whose path has a space."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, is_elf_i386

pytestmark = pytest.mark.integration

UMASKS = (0o022, 0o027, 0o077)

# Every kind of staged file: a program, a conffile from packaging/files, a maintainer script, a lintian override.
PACKAGES = """\
packages:
  hello:
    version: "{hello}{distro_suffix}"
    section: admin
    description: |-
      hello, the tiny test program
      It prints a greeting and the libseccomp version.
    license_from: hello
    copyright: 2025 the hello authors
    scripts: [postinst]
    files:
      - {binary: hello, to: /usr/bin/hello}
      - {binary: cinit, to: /usr/libexec/hello/cinit}
      - {file: hello.conf, to: /etc/hello/hello.conf, conffile: true}
"""


def dock32_with_umask(project: Path, umask: int, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dock32.cli", *args, "--project", str(project)],
        capture_output=True, text=True, env={**os.environ, **env}, umask=umask, check=False,
    )


def odd_modes(folder: Path, programs: tuple[str, ...] = ()) -> dict[str, str]:
    """What under folder (itself included) is not as another user needs it: folders and programs 0755, files 0644."""
    odd = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o755 if path.is_dir() or path.name in programs else 0o644):
            odd[path.relative_to(folder).as_posix()] = oct(mode)
    return odd


@pytest.fixture
def spaced(tiny, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The tiny project with a package, and a function that copies it into a fresh folder with a space in its path."""
    root, env = tiny
    (root / "packaging" / "files").mkdir(parents=True)
    (root / "packaging" / "files" / "hello.conf").write_text("greeting = hi\n", encoding="utf-8")
    (root / "packaging" / "scripts" / "hello").mkdir(parents=True)
    (root / "packaging" / "scripts" / "hello" / "postinst").write_text("#!/bin/sh\nset -e\n", encoding="utf-8")
    (root / "packaging" / "lintian").mkdir()
    (root / "packaging" / "lintian" / "hello").write_text("hello: no-manual-page [usr/bin/hello]\n", encoding="utf-8")
    (root / "packaging" / "packages.yaml").write_text(PACKAGES, encoding="utf-8")

    def copy(name: str) -> Path:
        checkout = tmp_path / "my builds" / name / "dock32"
        shutil.copytree(root, checkout)
        return checkout

    return copy, env


def test_a_path_with_a_space_and_any_umask_build_and_pack_the_same_bytes(spaced) -> None:  # type: ignore[no-untyped-def]
    copy, env = spaced
    outputs: dict[int, dict[str, bytes]] = {}
    for umask in UMASKS:
        checkout = copy(f"umask {umask:04o}")
        result = dock32_with_umask(checkout, umask, "build", env=env)
        assert result.returncode == 0, f"umask {umask:04o}: {result.stderr}{result.stdout}"
        bin_dir = checkout / "build" / "native32-i386" / "bin"
        assert is_elf_i386(bin_dir / "hello") and is_elf_i386(bin_dir / "cinit")
        dist = checkout / "dist" / "native32-i386"
        outputs[umask] = {f"bin/{p.name}": p.read_bytes() for p in bin_dir.iterdir()}
        outputs[umask] |= {f"dist/{p.name}": p.read_bytes() for p in dist.iterdir()}
        # Everything another user may copy, serve or install, and the logs a CI job uploads: readable by all,
        # written by the owner alone.
        assert odd_modes(checkout / "dist") == {}
        assert odd_modes(bin_dir, programs=("hello", "cinit")) == {}
        assert odd_modes(checkout / "build" / "logs") == {}
        deb = next(dist.glob("*.deb"))
        contents = subprocess.run(["dpkg-deb", "--contents", deb], capture_output=True, text=True, check=True).stdout
        assert "drwxr-xr-x root/root" in contents and "-rwxr-xr-x root/root" in contents, contents
        assert {line.split()[0] for line in contents.splitlines()} <= {"drwxr-xr-x", "-rwxr-xr-x", "-rw-r--r--"}, contents

        published = checkout / "repository"
        merged = dock32_with_umask(checkout, umask, "publish", "--to", str(published), str(dist), env=env)
        assert merged.returncode == 0, merged.stderr
        assert odd_modes(published) == {}

    assert sorted(outputs[0o022]) == sorted(outputs[0o027]) == sorted(outputs[0o077])
    for name, data in outputs[0o022].items():
        assert data == outputs[0o027][name] == outputs[0o077][name], name


# Stands in for the host's Python and for the venv's: records each call's arguments, one per [], and makes a venv
# when asked to. `-c` (the Makefile's import check) fails, so that the pip install after it runs too.
PYTHON_STUB = """\
#!/bin/sh
printf '[%s]' "$@" >> "$CALLS"; echo >> "$CALLS"
if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
[ "$1" != -c ]
"""


def test_every_make_recipe_runs_in_a_checkout_whose_path_has_a_space(tmp_path: Path) -> None:
    checkout = tmp_path / "my builds" / "dock32"
    checkout.mkdir(parents=True)
    shutil.copy2(ROOT / "Makefile", checkout / "Makefile")
    host_python = tmp_path / "host-python"
    host_python.write_text(PYTHON_STUB, encoding="utf-8")
    host_python.chmod(0o755)
    # As if test-tools had built it already (building it needs the network).
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "actionlint").write_text("#!/bin/sh\n", encoding="utf-8")
    (checkout / ".venv" / "bin" / "actionlint").chmod(0o755)
    calls = tmp_path / "calls"
    targets = ["setup", "test-tools", "build", "verify", "lint", "test", "test-all", "bench", "clean"]
    result = subprocess.run(
        ["make", "-s", "-C", checkout, *targets, f"HOST_PYTHON={host_python}"],
        capture_output=True, text=True, env={**os.environ, "CALLS": str(calls)}, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    recorded = calls.read_text().splitlines()
    assert recorded[0] == f"[-m][venv][{checkout}/.venv]"
    assert recorded[1].startswith("[-c][import dock32, ")
    assert recorded[2:] == [
        "[-m][pip][install][--quiet][--disable-pip-version-check][-e][.[test]]",
        "[-m][dock32.cli][setup]",
        "[-m][dock32.cli][setup][--tests]",
        "[-m][doit][build]",
        "[-m][doit][verify]",
        "[-m][ruff][check][src][tests][scripts][dodo.py]",
        "[-m][mypy]",
        "[-m][pytest][-m][not slow][tests]",
        "[-m][pytest][tests]",
        "[scripts/bench.py]",
        "[-m][doit][clean]",
    ]
    # An unquoted path made `python3 -m venv /x/my builds/dock32/.venv` two venvs: /x/my and ./builds/dock32/.venv.
    assert sorted(p.name for p in checkout.parent.parent.iterdir()) == ["calls", "host-python", "my builds"]
    assert sorted(p.name for p in checkout.iterdir()) == [".venv", "Makefile"]
