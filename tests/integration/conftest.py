"""Real servers and real modules for the integration tests: an HTTP mirror on 127.0.0.1 and a file:// GOPROXY."""

from __future__ import annotations

import base64
import hashlib
import io
import os
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
