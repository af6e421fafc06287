"""A matrix of targets in one workspace (native32 sse2, native32 softfloat, multiarch64) on the tiny project: each
target keeps its outputs and doit state apart, downloads are shared, and a multiarch64 .deb (amd64 programs, i386
package) installs into a real i386 Debian on this 64-bit kernel, where its preinst's kernel check passes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from debian.debfile import DebFile

from dock32.checks.rootfs import chroot_run, ensure_root, overlay
from dock32.core.arch import Arch
from dock32.model.config import DISTROS
from dock32.model.flavour import MULTIARCH64_PREINST
from dock32.model.settings import settings_from_env

from .conftest import is_elf_i386, ran_tasks, run_dock32

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


TARGETS = {
    "native32-i386": (),
    "native32-i386-softfloat": ("--set", "go386=softfloat"),
    "multiarch64-i386": ("--set", "strategy=multiarch64"),
}


def is_elf_x86_64(path: Path) -> bool:
    header = path.read_bytes()[:20]
    return header[:4] == b"\x7fELF" and header[4] == 2 and int.from_bytes(header[18:20], "little") == 62  # ELFCLASS64, EM_X86_64


def output_of(program: Path) -> str:
    return subprocess.run([program], capture_output=True, text=True, check=True).stdout




def test_three_targets_in_one_workspace_stay_apart_and_share_downloads(packaged, mirror) -> None:  # type: ignore[no-untyped-def]
    root, env = packaged
    for target, args in TARGETS.items():
        result = run_dock32(root, "build", *args, env=env)
        assert result.returncode == 0, f"{target}: {result.stderr}"
    # Another target's run did not make this one's tasks look changed: each has its own doit state.
    for target, args in TARGETS.items():
        again = run_dock32(root, "build", *args, env=env)
        assert again.returncode == 0 and ran_tasks(again.stdout) == [], f"{target} rebuilt {ran_tasks(again.stdout)}"
    # The C program's tarball came from the mirror once at most (the cache may have it from an earlier test).
    assert sum("cinit-1.0.tar.gz" in r for r in mirror.requests) <= 1, mirror.requests

    native, soft, multi = (root / "build" / t / "bin" for t in TARGETS)
    for folder in (native, soft):
        assert is_elf_i386(folder / "hello") and is_elf_i386(folder / "cinit")
        assert output_of(folder / "hello").startswith("patched 1.0.0 dep-says-hi libseccomp 2.")
        assert output_of(folder / "cinit") == "cinit 1.0 32-bit\n"
    assert native.joinpath("hello").read_bytes() != soft.joinpath("hello").read_bytes()
    assert is_elf_x86_64(multi / "hello") and is_elf_x86_64(multi / "cinit")
    assert output_of(multi / "hello").startswith("hello 1.0.0 dep-says-hi libseccomp 2.")  # upstream's code: no 386 patch
    assert output_of(multi / "cinit") == "cinit 1.0 64-bit\n"

    debs = {t: sorted((root / "dist" / t).glob("*.deb")) for t in TARGETS}
    names = {t: [d.name for d in found] for t, found in debs.items()}
    assert names == {
        "native32-i386": ["hello_1.0.0-1~debian.12~bookworm_i386.deb"],
        "native32-i386-softfloat": ["hello_1.0.0-1~debian.12~bookworm~softfloat_i386.deb"],
        "multiarch64-i386": ["hello_1.0.0-1~debian.12~bookworm+multiarch64_i386.deb"],
    }
    multiarch = DebFile(str(debs["multiarch64-i386"][0]))
    assert multiarch.debcontrol()["Architecture"] == "i386"
    assert multiarch.control.get_content("preinst") == (ROOT / "packaging" / MULTIARCH64_PREINST).read_bytes()
    assert "preinst" not in DebFile(str(debs["native32-i386"][0])).control
    # lintian sees amd64 programs in an i386 package, and the package's override (with its reason) answers it.
    lintian = subprocess.run(["lintian", "--show-overrides", str(debs["multiarch64-i386"][0])], capture_output=True, text=True, check=False)
    assert "O: hello: binary-from-other-architecture" in lintian.stdout, lintian.stdout
    raised = [line for line in lintian.stdout.splitlines() if line.startswith(("E:", "W:")) and "binary-from-other-architecture" in line]
    assert raised == [], raised  # (the tiny package's other findings are not this test's business)

    # One repository, a component per flavour: the sources line chooses, and upgrades never switch flavour.
    repo = root / "repo"
    published = run_dock32(root, "publish", "--to", str(repo), *(str(root / "dist" / t) for t in TARGETS), env=env)
    assert published.returncode == 0, published.stderr
    release = (repo / "dists" / "bookworm" / "Release").read_text()
    assert "Components: main multiarch64 softfloat" in release, release
    for component, version in (("main", ""), ("softfloat", "~softfloat"), ("multiarch64", "+multiarch64")):
        index = (repo / "dists" / "bookworm" / component / "binary-i386" / "Packages").read_text()
        assert [line for line in index.splitlines() if line.startswith("Version:")] == [f"Version: 1.0.0-1~debian.12~bookworm{version}"], index
        assert f"Filename: pool/{component}/h/hello/" in index

    # apt on a real i386 Debian installs the multiarch64 flavour from its component: the preinst runs the x86_64
    # probe on this kernel and lets it in, and the amd64 programs run in the 32-bit userland.
    log = root / "install.log"
    clean = ensure_root(DISTROS["debian-12"], Arch.I386, settings_from_env(ROOT), log)
    with overlay(clean, root / "overlay", log) as installed:
        shutil.copytree(repo, installed / "srv" / "repo")
        sources = installed / "etc" / "apt" / "sources.list.d" / "dock32.list"
        sources.write_text("deb [trusted=yes] file:/srv/repo bookworm multiarch64\n")
        only_ours = ["-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/dock32.list", "-o", "Dir::Etc::SourceParts=-"]
        chroot_run(installed, ["apt-get", "update", "-q", *only_ours], log, "apt-get update")
        chroot_run(installed, ["apt-get", "install", "-y", "-q", *only_ours, "hello"], log, "apt-get install hello")
        assert in_root(installed, "dpkg", "--print-architecture") == "i386\n"
        assert in_root(installed, "dpkg-query", "-W", "-f=${Version} ${Architecture}", "hello") == "1.0.0-1~debian.12~bookworm+multiarch64 i386"
        assert in_root(installed, "/usr/bin/hello").startswith("hello 1.0.0 dep-says-hi libseccomp 2.")
        assert in_root(installed, "/usr/bin/cinit") == "cinit 1.0 64-bit\n"
        # Under linux32 (uname -m: i686) the kernel still runs x86_64: the check asks the kernel, not uname.
        shutil.copy2(debs["multiarch64-i386"][0], installed / "tmp" / "hello.deb")
        assert in_root(installed, "setarch", "i686", "uname", "-m") == "i686\n"
        chroot_run(installed, ["setarch", "i686", "dpkg", "-i", "/tmp/hello.deb"], log, "dpkg -i under setarch i686")


def in_root(root: Path, *argv: str) -> str:
    return subprocess.run(["chroot", root, *argv], capture_output=True, text=True, check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).stdout
