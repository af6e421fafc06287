"""Network faults against real servers on 127.0.0.1: each gives the right behaviour and one line naming the URL.

A small HTTP server misbehaves on command (the first path segment says how); a bound but not listening socket
refuses connections; a TLS server presents a throwaway self-signed certificate made with the openssl command.
Every case also checks what was left behind: no *.part download, no tree for a bad download, quarantine only
for a tarball that read fine but had the wrong tree.
"""

from __future__ import annotations

import _thread
import hashlib
import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from dock32.core.errors import FetchError
from dock32.model.config import ArchiveSource
from dock32.model.settings import Settings, settings_from_env
from dock32.sources import fetch
from dock32.sources.trees import tree_hash_of_archive

pytestmark = pytest.mark.integration

SOUP = re.compile(r"Pool\(|Caused by|Max retries|Errno|_ssl\.c|object at 0x|\('|Error\(")


@dataclass
class FaultServer:
    """Serves root/NAME under /MODE/NAME, where MODE says how to misbehave (see do_GET)."""

    root: Path
    port: int = 0
    failures_first: int = 2  # /500-then-ok/: this many 500s before the file
    announce: dict[str, int] = field(default_factory=dict)  # /announce/: the Content-Length to claim for NAME
    requests: list[str] = field(default_factory=list)
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request, None without one
    bytes_sent: int = 0
    connections: int = 0
    tls: ssl.SSLContext | None = None  # serve https with this
    release: threading.Event = field(default_factory=threading.Event)  # ends the stalls at teardown
    _seen: dict[str, int] = field(default_factory=dict)

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def count(self, path: str) -> int:
        return self.requests.count("/" + path)


def _handler(state: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            state.connections += 1
            if state.tls:
                self.request = state.tls.wrap_socket(self.request, server_side=True)
            super().setup()

        def send_body(self, data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()
            state.bytes_sent += len(data)

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            state.requests.append(self.path)
            state.ranges.append(self.headers.get("Range"))
            mode, _, name = self.path.lstrip("/").partition("/")
            seen = state._seen[self.path] = state._seen.get(self.path, 0) + 1
            if mode == "silent":  # accepts, reads the request, never answers
                state.release.wait(10)
                return
            if mode == "loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "500":
                self.send_error(500)
                return
            if mode == "500-then-ok" and seen <= state.failures_first:
                self.send_error(500)
                return
            path = state.root / name
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            half = len(data) // 2
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            if mode in ("ok", "500-then-ok", "cut-once") and not (mode == "cut-once" and seen == 1):
                self.serve(data, etag, ranges=True)
            elif mode == "cut-once-no-ranges" and seen > 1:
                self.serve(data, etag, ranges=False)  # claimed Accept-Ranges the first time, ignores Range now
            elif mode in ("cut", "cut-once", "cut-once-no-ranges"):  # the full length announced, half sent, connection closed
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                if mode != "cut":
                    self.send_header("Accept-Ranges", "bytes")
                    self.send_header("ETag", etag)
                self.end_headers()
                self.send_body(data[:half])
            elif mode == "announce":  # a lying Content-Length, the whole file sent
                self.send_response(200)
                self.send_header("Content-Length", str(state.announce[name]))
                self.end_headers()
                self.send_body(data)
            elif mode == "stall":  # half the body, then nothing
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.send_body(data[:half])
                state.release.wait(10)
            elif mode == "interrupt":  # half the body, Ctrl-C in the downloading (main) thread, then the rest
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.send_body(data[:half])
                _thread.interrupt_main()
                time.sleep(0.2)
                self.send_body(data[half:])
            else:
                self.send_error(400)

        def serve(self, data: bytes, etag: str, ranges: bool) -> None:
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if ranges and wanted and self.headers.get("If-Range") == etag and int(wanted[1]) < len(data):
                start = int(wanted[1])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                body = data[start:]
            else:
                self.send_response(200)
                body = data
            self.send_header("Content-Length", str(len(body)))
            if ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.end_headers()
            self.send_body(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-body or reject our certificate are the point here


@contextmanager
def running(state: FaultServer) -> Iterator[FaultServer]:
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def faults(tmp_path: Path) -> Iterator[FaultServer]:
    (tmp_path / "served").mkdir()
    with running(FaultServer(root=tmp_path / "served")) as state:
        yield state


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short backoff, and a timeout that keeps a hanging case from costing 30 s."""
    monkeypatch.setattr(fetch, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(fetch, "TIMEOUT_SECONDS", 3)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def tarball(faults: FaultServer) -> tuple[str, str, int]:
    """A .tar.gz of 256 KiB that does not compress: several chunks on the wire, and no half of it reads as gzip."""
    path = faults.root / "x-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "x-1.0/main.c", b"int main(void) { return 0; }\n")
        _add(tar, "x-1.0/blob.bin", os.urandom(256 * 1024))
    return path.name, tree_hash_of_archive(path), path.stat().st_size


def settings(tmp_path: Path, cache: str = "cache") -> Settings:
    return settings_from_env(tmp_path, env={"DOCK32_CACHE_DIR": str(tmp_path / cache)})


def failure_lines(source: ArchiveSource, local: Settings, named: bool = True) -> list[str]:
    """fetch_archive's per-mirror lines, checked: one per mirror, each one line, naming its URL, free of exception reprs."""
    with pytest.raises(FetchError) as caught:
        fetch.fetch_archive("x", source, local)
    head, *lines = caught.value.message.split("\n")
    assert head == f"x: no mirror gave the pinned tree {source.tree}:"
    assert len(lines) == len(source.urls), lines
    lines = [line.removeprefix("  ") for line in lines]
    for line, url in zip(lines, source.urls, strict=True):
        assert not SOUP.search(line), line
        assert line.startswith(f"{url}: ") or not named, line
    return lines


def assert_nothing_left(local: Settings, quarantined: int = 0) -> None:
    assert not list(local.downloads_dir.glob("*.part"))
    assert not local.trees_dir.exists() or not list(local.trees_dir.iterdir())
    assert len(list(local.quarantine_dir.iterdir()) if local.quarantine_dir.exists() else []) == quarantined


# --- the connection ---------------------------------------------------------------------------


def test_connection_refused_is_retried_then_the_next_mirror_is_tried(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    with socket.socket() as closed:  # bound, not listening: every connect is refused, and no one else gets the port
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/{name}"
        local = settings(tmp_path)
        lines = failure_lines(ArchiveSource(urls=(refused, faults.url("files/missing.tar.gz")), tree=tree), local)
        assert lines[0] == f"{refused}: connection refused (after {fetch.RETRIES} tries)"
        assert faults.requests == ["/files/missing.tar.gz"]  # the next mirror was asked
        assert_nothing_left(local)
        assert fetch.fetch_archive("x", ArchiveSource(urls=(refused, faults.url(f"ok/{name}")), tree=tree), local).hash == tree


def test_a_server_that_never_answers_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    monkeypatch.setattr(fetch, "TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(fetch, "RETRIES", 2)
    name, tree, _ = tarball
    url = faults.url(f"silent/{name}")
    local = settings(tmp_path)
    started = time.monotonic()
    assert failure_lines(ArchiveSource(urls=(url,), tree=tree), local) == [f"{url}: timed out after 0.3 s (after 2 tries)"]
    # Not a speed check: without the timeout, each of the two tries would wait out the default 30 s.
    assert time.monotonic() - started < 30
    assert faults.count(f"silent/{name}") == 2
    assert_nothing_left(local)


def test_a_body_that_stalls_times_out_then_the_next_mirror_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: FaultServer, tarball: tuple[str, str, int]
) -> None:
    monkeypatch.setattr(fetch, "TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(fetch, "RETRIES", 2)
    name, tree, size = tarball
    url = faults.url(f"stall/{name}")
    local = settings(tmp_path)
    [line] = failure_lines(ArchiveSource(urls=(url,), tree=tree), local)
    # The count is what reached dock32: urllib3 drops the bytes of a chunk that a timeout interrupts.
    stalled = re.fullmatch(re.escape(url) + rf": body stalled after (\d+) of {size} bytes: timed out after 0.3 s \(after 2 tries\)", line)
    assert stalled and 0 < int(stalled[1]) <= size // 2, line
    assert_nothing_left(local)
    assert fetch.fetch_archive("x", ArchiveSource(urls=(url, faults.url(f"ok/{name}")), tree=tree), local).hash == tree
    assert faults.count(f"stall/{name}") == 4


def test_https_to_a_plain_http_port_is_a_tls_error_not_retried(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    url = faults.url(f"ok/{name}", scheme="https")
    local = settings(tmp_path)
    lines = failure_lines(ArchiveSource(urls=(url, faults.url("files/missing.tar.gz")), tree=tree), local)
    assert re.fullmatch(re.escape(url) + r": TLS error: [a-z ]+", lines[0]), lines[0]  # OpenSSL 3.0: "wrong version number"
    assert faults.connections == 2  # one for the single TLS try, one for the next mirror
    assert_nothing_left(local)


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make a throwaway certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_self_signed_certificate_is_refused_without_retry(tmp_path: Path, self_signed: tuple[Path, Path], tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    with running(FaultServer(root=tmp_path / "served", tls=context)) as tls:
        url = tls.url(f"ok/{name}", scheme="https")
        local = settings(tmp_path)
        assert failure_lines(ArchiveSource(urls=(url,), tree=tree), local) == [f"{url}: TLS error: certificate verify failed: self-signed certificate"]
        assert tls.connections == 1 and tls.requests == []
        assert_nothing_left(local)


def test_a_redirect_loop_is_not_retried(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    url = faults.url("loop/x.tar.gz")
    local = settings(tmp_path)
    lines = failure_lines(ArchiveSource(urls=(url, faults.url("files/missing.tar.gz")), tree=tree), local)
    assert lines[0] == f"{url}: too many redirects"
    assert faults.count("loop/x.tar.gz") == requests.models.DEFAULT_REDIRECT_LIMIT + 1  # one try: the first GET and 30 redirects
    assert faults.requests[-1] == "/files/missing.tar.gz"
    assert_nothing_left(local)


# --- the status -------------------------------------------------------------------------------


def test_a_500_is_retried_and_then_succeeds(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    fetched = fetch.fetch_archive("x", ArchiveSource(urls=(faults.url(f"500-then-ok/{name}"),), tree=tree), settings(tmp_path))
    assert (fetched.tree / "main.c").is_file()
    assert faults.count(f"500-then-ok/{name}") == 3


def test_a_500_that_persists_names_the_status_after_every_try(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    url = faults.url(f"500/{name}")
    local = settings(tmp_path)
    assert failure_lines(ArchiveSource(urls=(url,), tree=tree), local) == [f"{url}: HTTP 500 Internal Server Error (after {fetch.RETRIES} tries)"]
    assert faults.count(f"500/{name}") == fetch.RETRIES
    assert_nothing_left(local)


def test_a_404_is_not_retried_and_the_next_mirror_serves(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    url = faults.url("files/missing.tar.gz")
    local = settings(tmp_path)
    assert failure_lines(ArchiveSource(urls=(url,), tree=tree), local) == [f"{url}: HTTP 404 Not Found"]
    assert_nothing_left(local)
    assert fetch.fetch_archive("x", ArchiveSource(urls=(url, faults.url(f"ok/{name}")), tree=tree), local).hash == tree
    assert faults.requests == ["/files/missing.tar.gz", "/files/missing.tar.gz", f"/ok/{name}"]


# --- the body ---------------------------------------------------------------------------------


def test_a_body_cut_off_every_time_is_retried_then_the_next_mirror_serves(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, size = tarball
    url = faults.url(f"cut/{name}")
    local = settings(tmp_path)
    assert failure_lines(ArchiveSource(urls=(url,), tree=tree), local) == [f"{url}: body ended after {size // 2} of {size} bytes (after {fetch.RETRIES} tries)"]
    assert faults.ranges == [None] * fetch.RETRIES  # no Accept-Ranges from this server: each try starts over
    assert_nothing_left(local)
    assert fetch.fetch_archive("x", ArchiveSource(urls=(url, faults.url(f"ok/{name}")), tree=tree), local).hash == tree


def test_a_body_cut_off_once_is_resumed_with_a_range_request(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, size = tarball
    fetched = fetch.fetch_archive("x", ArchiveSource(urls=(faults.url(f"cut-once/{name}"),), tree=tree), settings(tmp_path))
    assert (fetched.tree / "blob.bin").stat().st_size == 256 * 1024
    # It continues after the bytes on disk: urllib3 drops the last partial chunk of a body that breaks off.
    first, resumed = faults.ranges
    assert first is None and resumed and (at := int(resumed.removeprefix("bytes=").removesuffix("-"))) <= size // 2
    assert faults.bytes_sent == size // 2 + size - at  # not the whole file again


def test_a_server_that_ignores_the_range_request_is_read_from_the_start(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, size = tarball
    fetched = fetch.fetch_archive("x", ArchiveSource(urls=(faults.url(f"cut-once-no-ranges/{name}"),), tree=tree), settings(tmp_path))
    assert fetched.hash == tree
    first, resumed = faults.ranges
    assert first is None and resumed and resumed.startswith("bytes=") and faults.bytes_sent == size // 2 + size


def test_a_content_length_larger_than_the_body_is_a_truncation(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, size = tarball
    faults.announce[name] = size + 100
    url = faults.url(f"announce/{name}")
    local = settings(tmp_path)
    [line] = failure_lines(ArchiveSource(urls=(url,), tree=tree), local)
    assert line == f"{url}: body ended after {size} of {size + 100} bytes (after {fetch.RETRIES} tries)"
    assert faults.count(f"announce/{name}") == fetch.RETRIES
    assert_nothing_left(local)


def test_a_content_length_smaller_than_a_tarball_gives_an_unreadable_archive(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    """The client cannot see this lie: it gets half a gzip stream, which the tree-hash step refuses to read."""
    name, tree, size = tarball
    faults.announce[name] = size // 2
    url = faults.url(f"announce/{name}")
    local = settings(tmp_path)
    lines = failure_lines(ArchiveSource(urls=(url,), tree=tree), local, named=False)
    assert re.fullmatch(re.escape(url) + r": not a readable tar archive \(.*\) \(hint: the download is corrupt or truncated\)", lines[0]), lines[0]
    assert faults.count(f"announce/{name}") == 1
    assert_nothing_left(local)  # an archive that does not even read is dropped, not quarantined
    assert fetch.fetch_archive("x", ArchiveSource(urls=(url, faults.url(f"ok/{name}")), tree=tree), local).hash == tree


def test_a_content_length_ending_at_a_member_boundary_is_caught_by_the_tree_hash(tmp_path: Path, faults: FaultServer) -> None:
    """An uncompressed tar cut after its first member still reads, with one file less: quarantined, next mirror."""
    path = faults.root / "y-1.0.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "y-1.0/a.txt", b"a\n")
        _add(tar, "y-1.0/b.txt", b"b\n")
    with tarfile.open(path) as tar:
        faults.announce[path.name] = tar.getmembers()[1].offset
    tree = tree_hash_of_archive(path)
    url = faults.url(f"announce/{path.name}")
    local = settings(tmp_path)
    [line] = failure_lines(ArchiveSource(urls=(url,), tree=tree), local)
    [aside] = local.quarantine_dir.iterdir()
    assert line == f"{url}: tree hash mismatch: expected {tree}, got {tree_hash_of_archive(aside)}; moved aside to {aside}"
    with tarfile.open(aside) as tar:
        assert tar.getnames() == ["y-1.0/a.txt"]
    assert_nothing_left(local, quarantined=1)
    other = settings(tmp_path, "other-cache")
    assert fetch.fetch_archive("y", ArchiveSource(urls=(url, faults.url(f"ok/{path.name}")), tree=tree), other).hash == tree
    assert len(list(other.quarantine_dir.iterdir())) == 1


# --- the user ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_mid_body_leaves_no_partial_download(tmp_path: Path, faults: FaultServer, tarball: tuple[str, str, int]) -> None:
    name, tree, _ = tarball
    local = settings(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_archive("x", ArchiveSource(urls=(faults.url(f"interrupt/{name}"), faults.url(f"ok/{name}")), tree=tree), local)
    assert faults.requests == [f"/interrupt/{name}"]  # Ctrl-C stops everything, it does not move on to the next mirror
    assert_nothing_left(local)
