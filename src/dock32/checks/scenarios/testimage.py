"""The scenarios' test images: a static busybox from the installed root (i386) or from this machine's Debian
archive (amd64), packed with the applet links they use and a web page."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from dock32.checks.scenarios.check import fail
from dock32.checks.scenarios.machine import Machine
from dock32.core.run import run

I386_IMAGE = "dock32/busybox:i386"
AMD64_IMAGE = "dock32/busybox:amd64"
WEB_PAGE = "dock32 web\n"


def busybox_rootfs(busybox: bytes) -> bytes:
    """A tiny image: a static busybox, the applet links the scenarios use, and a web page."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name: str, data: bytes | None = None, mode: int = 0o644, link: str | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))

        for folder in ("bin", "www", "tmp", "etc", "proc", "sys", "dev"):
            add(folder)
        add("bin/busybox", busybox, 0o755)
        for applet in ("sh", "echo", "cat", "grep", "wget", "httpd", "ps", "sleep", "uname", "true"):
            add(f"bin/{applet}", link="busybox")
        add("www/index.html", WEB_PAGE.encode())
    return buffer.getvalue()


def import_i386_image(sandbox: Machine) -> None:
    """I386_IMAGE, made from the installed root's busybox-static."""
    busybox = sandbox.read_file("/bin/busybox")
    # --platform: an amd64 (multiarch64) daemon would label the import amd64 otherwise.
    sandbox.docker("import", "--platform", "linux/386", "--change", 'CMD ["/bin/sh"]', "-", I386_IMAGE, stdin=busybox_rootfs(busybox))


def amd64_busybox(scratch: Path, log: Path) -> bytes:
    """busybox-static for amd64, from this machine's own Debian archive (apt-get download): on an amd64 build
    machine only, which is what Need.AMD64_BUSYBOX stands for."""
    folder = scratch / "amd64"
    folder.mkdir(exist_ok=True)
    run(["apt-get", "download", "busybox-static:amd64"], cwd=folder, log=log, what="apt-get download busybox-static")
    debs = sorted(folder.glob("busybox-static_*.deb"))
    if len(debs) != 1:
        fail(f"apt-get download busybox-static:amd64 gave {len(debs)} .debs ({', '.join(d.name for d in debs) or 'none'}), expected one")
    deb = debs[0]
    run(["dpkg-deb", "-x", deb, folder / "x"], log=log, what="unpack busybox-static")
    return (folder / "x" / "bin" / "busybox").read_bytes()

