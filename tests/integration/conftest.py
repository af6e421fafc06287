"""Real servers and real modules for the integration tests: an HTTP mirror on 127.0.0.1 and a file:// GOPROXY."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dock32.model.flavour import MULTIARCH64_PREINST
from dock32.sources.trees import tree_hash_of_archive

ROOT = Path(__file__).resolve().parents[2]


# --- HTTP mirror ------------------------------------------------------------------------------


@dataclass
class Mirror:
    """Serves files; paths under /flaky/ fail with 503 `flaky_failures` times first, /truncated/ cut the body short."""

    root: Path
    port: int = 0
    flaky_failures: int = 2
    requests: list[str] = field(default_factory=list)
    _failures: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            mirror.requests.append(self.path)
            mode, _, name = self.path.lstrip("/").partition("/")
            if mode == "flaky":
                seen = mirror._failures.get(name, 0)
                if seen < mirror.flaky_failures:
                    mirror._failures[name] = seen + 1
                    self.send_error(503)
                    return
            elif mode not in ("files", "truncated"):
                name = self.path.lstrip("/")
            path = mirror.root / name
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if mode == "truncated" else data)

    return Handler


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    state = Mirror(root=tmp_path / "served")
    state.root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def make_tarball(path: Path, top: str, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


# --- file:// GOPROXY --------------------------------------------------------------------------


def h1(files: dict[str, bytes]) -> str:
    """The go.sum hash (golang.org/x/mod/sumdb/dirhash Hash1) of named files."""
    summary = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


@dataclass(frozen=True)
class PublishedModule:
    path: str
    version: str
    sum: str
    mod_sum: str


def publish_module(proxy: Path, module: str, version: str, files: dict[str, str], time: str = "2025-11-05T14:19:32Z") -> PublishedModule:
    """Write one module version in the GOPROXY protocol's layout: list, .info, .mod, .zip."""
    folder = proxy / module / "@v"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{module}@{version}/"
    contents = {prefix + name: text.encode() for name, text in files.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(contents.items()):
            archive.writestr(name, data)
    (folder / f"{version}.zip").write_bytes(buffer.getvalue())
    (folder / f"{version}.mod").write_text(files["go.mod"], encoding="utf-8")
    (folder / f"{version}.info").write_text(f'{{"Version":"{version}","Time":"{time}"}}\n', encoding="utf-8")
    with (folder / "list").open("a", encoding="utf-8") as listing:
        listing.write(version + "\n")
    return PublishedModule(module, version, h1(contents), h1({"go.mod": files["go.mod"].encode()}))


def system_go_version() -> str:
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True, env={**os.environ, "GOTOOLCHAIN": "local"}).stdout.strip()


def run_dock32(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dock32.cli", *args, "--project", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )


@pytest.fixture(scope="session")
def shared_go_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dock32 cache for the Go builds of this session: the 386 standard library is compiled once."""
    return tmp_path_factory.mktemp("dock32-cache")


# --- a tiny project built by the same code path as Docker: a cgo module, a C program, a patch -------------

MAIN_GO = """\
package main

// #cgo pkg-config: libseccomp
// #include <seccomp.h>
import "C"

import (
\t"fmt"

\t"example.com/dep"
)

var version = "unset"

func main() {
\tv := C.seccomp_version()
\tfmt.Printf("hello %s %s libseccomp %d.%d\\n", version, dep.Greeting(), v.major, v.minor)
}
"""

PATCH = """\
--- a/main.go
+++ b/main.go
@@ -15,5 +15,5 @@

 func main() {
 \tv := C.seccomp_version()
-\tfmt.Printf("hello %s %s libseccomp %d.%d\\n", version, dep.Greeting(), v.major, v.minor)
+\tfmt.Printf("patched %s %s libseccomp %d.%d\\n", version, dep.Greeting(), v.major, v.minor)
 }
"""

CMAKE = """\
cmake_minimum_required(VERSION 3.5)
project(cinit C)
add_executable(cinit-static cinit.c)
set_target_properties(cinit-static PROPERTIES LINK_FLAGS "-static")
"""
CINIT = '#include <stdio.h>\nint main(void) { printf("cinit 1.0 %u-bit\\n", (unsigned)(8 * sizeof(void *))); return 0; }\n'


def buildcfg(go_version: str, hello_sum: str, cinit_url: str, cinit_tree: str) -> str:
    return f"""\
release:
  version: "1.0.0"
  date: "2025-11-05T14:19:32Z"
go:
  version: "{go_version}"
components:
  hello:
    version: "1.0.0"
    commit: abc1234
    source:
      module: example.com/hello
      version: v1.0.0
      sum: "{hello_sum}"
    cgo: true
    c_libraries: [libseccomp]
    binaries:
      hello:
        package: .
        ldflags: ["-X main.version={{version}}", "-extldflags -static"]
  cinit:
    version: "1.0"
    commit: def5678
    source:
      urls: ["{cinit_url}"]
      tree: "{cinit_tree}"
    binaries:
      cinit:
        cmake_target: cinit-static
"""


def is_elf_i386(path: Path) -> bool:
    header = path.read_bytes()[:20]
    return header[:4] == b"\x7fELF" and header[4] == 1 and int.from_bytes(header[18:20], "little") == 3  # ELFCLASS32, EM_386


# Not on a terminal, dock32 prints `HH:MM:SS start <task>` when a task starts (progress.Lines); up-to-date tasks never start.
STARTED = re.compile(r"^\d\d:\d\d:\d\d start (\S+)$", re.MULTILINE)


def ran_tasks(stdout: str) -> list[str]:
    """The tasks a run started, from its timestamped lines."""
    return sorted(STARTED.findall(stdout))


@pytest.fixture
def tiny(tmp_path: Path, mirror: Mirror, project, shared_go_cache: Path):  # type: ignore[no-untyped-def]
    proxy = tmp_path / "goproxy"
    dep = publish_module(
        proxy, "example.com/dep", "v1.0.0",
        {"go.mod": "module example.com/dep\n\ngo 1.21\n", "dep.go": 'package dep\n\nfunc Greeting() string { return "dep-says-hi" }\n'},
    )
    hello = publish_module(
        proxy, "example.com/hello", "v1.0.0",
        {
            "go.mod": "module example.com/hello\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n",
            "go.sum": f"example.com/dep v1.0.0 {dep.sum}\nexample.com/dep v1.0.0/go.mod {dep.mod_sum}\n",
            "main.go": MAIN_GO,
        },
    )
    archive = make_tarball(mirror.root / "cinit-1.0.tar.gz", "cinit-1.0", {"CMakeLists.txt": CMAKE, "cinit.c": CINIT})
    go_version = system_go_version().removeprefix("go")
    root = project(
        buildcfg(go_version, hello.sum, mirror.url("files/cinit-1.0.tar.gz"), tree_hash_of_archive(archive)),
        patches={"hello": {"series": "0001-greet.patch\n", "0001-greet.patch": PATCH}},
    )
    env = {"GOPROXY": f"file://{proxy}", "GOSUMDB": "off", "GOFLAGS": "", "DOCK32_CACHE_DIR": str(shared_go_cache)}
    return root, env


# The tiny project's one package: both its binaries, in the layout Docker's packages use.
TINY_PACKAGES = """\
packages:
  hello:
    version: "{hello}{distro_suffix}"
    section: admin
    description: |-
      hello, the tiny test program
      It prints a greeting and the libseccomp version.
    license_from: hello
    copyright: 2025 the hello authors
    files:
      - {binary: hello, to: /usr/bin/hello}
      - {binary: cinit, to: /usr/bin/cinit}
"""


@pytest.fixture
def packaged(tiny):  # type: ignore[no-untyped-def]
    """The tiny project with packages.yaml: `dock32 build` packs it too."""
    root, env = tiny
    (root / "packaging" / "scripts").mkdir(parents=True)
    (root / "packaging" / "packages.yaml").write_text(TINY_PACKAGES, encoding="utf-8")
    shutil.copy2(ROOT / "packaging" / MULTIARCH64_PREINST, root / "packaging" / MULTIARCH64_PREINST)
    # The greeting patch is a 386 fix here: the amd64 (multiarch64) tree must not get it.
    (root / "patches" / "hello" / "series").write_text("0001-greet.patch goarch=386\n", encoding="utf-8")
    return root, {**env, "DOCK32_SET": "packaging.compression=zstd"}
