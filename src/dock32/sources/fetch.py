"""Fetching sources: tarballs over HTTP from a list of mirrors, Go modules through GOPROXY. Nothing is used unverified."""

from __future__ import annotations

import glob
import hashlib
import http.client
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3.exceptions
from tqdm import tqdm

from dock32.core import activity
from dock32.core.errors import FetchError, Interrupted
from dock32.core.run import stopping
from dock32.model.config import ArchiveSource, GoModuleSource
from dock32.model.settings import Settings
from dock32.sources import cache, gocmd
from dock32.sources.trees import tree_hash_of_archive, tree_hash_of_dir, unpack

# How hard _download tries (see its docstring). Module constants rather than settings; the tests lower them.
RETRIES = 4
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class FetchedSource:
    """A verified, pristine source tree in the shared cache."""

    tree: Path
    hash: str

    def to_json(self) -> dict[str, str]:
        return {"tree": str(self.tree), "hash": self.hash}


class _Transient(Exception):
    """A failure worth retrying: connection trouble, a 5xx, a body shorter than announced.

    resume: the If-Range validator under which the bytes already written may be continued; None to start over.
    """

    def __init__(self, reason: str, resume: str | None = None) -> None:
        super().__init__(reason)
        self.resume = resume


# --- tarballs ---------------------------------------------------------------------------------


def apt_debian_mirror(roots: tuple[Path, ...] = (Path("/etc/apt"),)) -> str | None:
    """The first Debian archive URI this machine's apt is configured with (not the security one)."""
    from debian.deb822 import Deb822

    for root in roots:
        for path in [root / "sources.list", *sorted(Path(p) for p in glob.glob(str(root / "sources.list.d" / "*")))]:
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            uris: list[tuple[str, str]] = []
            if path.suffix == ".sources":
                for stanza in Deb822.iter_paragraphs(text):
                    suites = stanza.get("Suites", "")
                    uris.extend((uri, suites) for uri in stanza.get("URIs", "").split())
            else:
                for line in text.splitlines():
                    words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
                    if len(words) >= 3 and words[0] in ("deb", "deb-src"):
                        uris.append((words[1], words[2]))
            for uri, suites in uris:
                if "security" not in suites and uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return None


def expand_url(url: str, settings: Settings) -> str | None:
    """Fill in {debian_mirror}; None when the machine has no such mirror configured."""
    if "{debian_mirror}" not in url:
        return url
    mirror = settings.debian_mirror or apt_debian_mirror()
    return url.replace("{debian_mirror}", mirror) if mirror else None


def _one_line(text: str, limit: int = 200) -> str:
    """Whitespace collapsed, at most limit characters: every reason fits on the `error:` line."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _causes(exc: BaseException) -> list[BaseException]:
    """exc and everything it wraps: requests and urllib3 nest the real cause in .reason, args, __cause__ and __context__."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        for inner in (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return found


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # "[SSL: WRONG_VERSION_NUMBER] "
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or (exc.reason or "handshake failed")


def _reason(exc: BaseException) -> tuple[str, bool]:
    """A short reason for a connection-level failure, and whether it is worth retrying (a TLS failure does not fix itself)."""
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ssl.SSLEOFError):  # the peer hung up mid-handshake: a restarting or overloaded server
            return "connection closed during the TLS handshake", True
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {_one_line(_tls_reason(cause), 120)}", False
    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (ConnectionRefusedError, "connection refused"),
        (socket.gaierror, "cannot resolve the host name"),
        (ConnectionResetError, "connection reset by the server"),
        (http.client.RemoteDisconnected, "the server closed the connection without an answer"),
        # Not urllib3's TimeoutError: its NewConnectionError (a refused connection, say) is one of those.
        ((TimeoutError, requests.Timeout, urllib3.exceptions.ReadTimeoutError), f"timed out after {TIMEOUT_SECONDS:g} s"),
    ]
    for kind, reason in kinds:
        if any(isinstance(cause, kind) for cause in causes):
            return reason, True
    for cause in reversed(causes):  # the innermost OSError with an errno says it best: "network is unreachable"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:], True
    return _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__), True


def _content_length(response: requests.Response) -> int | None:
    """The announced body size in the bytes iter_content yields; None when unknown or when a Content-Encoding changes them."""
    if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        return None
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length > 0 else None


def _resume_validator(response: requests.Response) -> str | None:
    """What to send as If-Range to continue this body later: a strong ETag or Last-Modified, if the server takes byte ranges."""
    if response.headers.get("Accept-Ranges", "").lower() != "bytes" or _content_length(response) is None:
        return None
    etag = response.headers.get("ETag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified") or None


def _attempt(url: str, destination: Path, label: str, resume: str | None) -> None:
    """One GET of url into destination; continues the bytes already there when resume (an If-Range validator) is given.

    Raises _Transient for what a retry may fix, carrying the validator for the next try (None: start over), and FetchError
    for what a retry will not fix.
    """
    offset = destination.stat().st_size if resume and destination.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # the exact bytes: their length is checkable and a range of them resumable
    if offset:
        headers.update({"Range": f"bytes={offset}-", "If-Range": resume or ""})
    try:
        response = requests.get(url, stream=True, timeout=TIMEOUT_SECONDS, headers=headers)
    except requests.exceptions.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects") from None
    except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema):
        raise FetchError(f"{url}: not an http://, https:// or file:// URL") from None
    except requests.exceptions.InvalidURL:
        raise FetchError(f"{url}: invalid URL") from None
    except requests.RequestException as exc:  # SSLError is a ConnectionError: _reason tells TLS failures apart
        reason, transient = _reason(exc)
        if transient:
            raise _Transient(reason, resume=resume) from None
        raise FetchError(f"{url}: {reason}") from None
    with response:
        status = _one_line(f"HTTP {response.status_code} {response.reason or ''}", 80)
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise _Transient(status, resume=resume)
        if offset and response.status_code == 416:
            raise _Transient(f"{status} when resuming at byte {offset}")
        if response.status_code not in (200, 206) or (response.status_code == 206 and not offset):
            raise FetchError(f"{url}: {status}")
        expected = _content_length(response)
        mode = "wb"
        if response.status_code == 206:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
            if not match or int(match[1]) != offset:
                got = _one_line(response.headers.get("Content-Range", "no Content-Range"), 80)
                raise _Transient(f"resumed at the wrong place: asked for byte {offset}, got {got}")
            mode = "ab"
            expected = int(match[3]) if match[3] != "*" else None
        else:
            offset = 0
        validator = _resume_validator(response) if response.status_code == 200 else resume
        received = offset
        try:
            # The build's progress line shows the bytes when it is there (activity); alone, a bar of its own.
            with destination.open(mode) as out, tqdm(
                total=expected, initial=offset, unit="B", unit_scale=True, desc=label, leave=False,
                disable=activity.listening() or not sys.stderr.isatty(),
            ) as bar:
                try:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        if stopping():  # Ctrl-C reaches only the main thread; this download runs in a task's
                            raise Interrupted(f"{url}: download stopped")
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                        activity.transferred(label, received, expected)
                finally:
                    activity.transferred(label, received, expected, finished=True)
        except requests.exceptions.ContentDecodingError:
            raise FetchError(f"{url}: cannot decode the body (Content-Encoding: {response.headers.get('Content-Encoding')})") from None
        except requests.RequestException as exc:  # urllib3 checks Content-Length: a short body ends here, not below
            # The bytes that came over the wire; urllib3 drops the last partial chunk, so fewer may be on disk (resume counts those).
            arrived = offset + response.raw.tell()
            of = f"{arrived} of {expected}" if expected is not None else f"{arrived}"
            reason, _ = _reason(exc)
            if reason.startswith("timed out"):
                raise _Transient(f"body stalled after {of} bytes: {reason}", resume=validator) from None
            raise _Transient(f"body ended after {of} bytes", resume=validator) from None
        if expected is not None and received != expected:
            raise _Transient(f"body ended after {received} of {expected} bytes", resume=validator if received < expected else None)


def _stopped_while_waiting(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stopping():
            return True
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return stopping()


def _download(url: str, destination: Path, label: str) -> None:
    """Fetch url into destination with a progress bar: one line naming url for each way it can fail.

    Connection refused or reset, timeouts, a 5xx (or 408/429) and a body that ends early are retried up to RETRIES
    times, BACKOFF_SECONDS doubling between tries; a body that ended early continues with an HTTP Range request when
    the server supports it, else starts over. A 4xx, a redirect loop and a TLS failure are not retried: they do not fix
    themselves, and the caller moves on to the next mirror. TIMEOUT_SECONDS bounds the connect and each read (a server
    that answers nothing, or stalls mid-body); it is not a limit on the whole download. Tests lower these constants.
    """
    if url.startswith("file://"):
        try:
            shutil.copyfile(url[len("file://"):], destination)
        except FileNotFoundError:
            raise FetchError(f"{url}: no such file") from None
        except OSError as exc:
            raise FetchError(f"{url}: {_one_line(exc.strerror or str(exc))}") from None
        return
    resume: str | None = None
    for attempt in range(1, RETRIES + 1):
        try:
            _attempt(url, destination, label, resume)
            return
        except _Transient as exc:
            if attempt == RETRIES:
                raise FetchError(f"{url}: {exc} (after {RETRIES} {'try' if RETRIES == 1 else 'tries'})") from None
            resume = exc.resume
            if _stopped_while_waiting(BACKOFF_SECONDS * 2 ** (attempt - 1)):
                raise Interrupted(f"{url}: stopped while waiting to try again") from None
        except OSError as exc:  # writing the download: the disk, not the mirror (requests' own errors were handled above)
            raise FetchError(f"{url}: cannot write {destination.name}: {_one_line(exc.strerror or str(exc))}") from None
    raise AssertionError("unreachable")


def fetch_archive(name: str, source: ArchiveSource, settings: Settings) -> FetchedSource:
    """Return the pinned tree from the cache, checked again, or download it from the first mirror whose tarball matches."""
    tree = settings.trees_dir / source.tree.replace(":", "-")
    with cache.entry_lock(settings, source.tree):
        if tree.is_dir():
            if cache.is_intact(tree, source.tree, tree_hash_of_dir):
                return FetchedSource(tree=tree, hash=source.tree)
            _discard_altered(name, tree, settings)
        return _download_tree(name, source, tree, settings)


def _discard_altered(name: str, tree: Path, settings: Settings) -> None:
    cache.discard(tree)
    if settings.offline:
        raise FetchError(
            f"{name}: the cached tree {tree} was altered on disk (its hash no longer matches the pin); it was removed",
            hint="run once without --offline to fetch it again",
        )
    print(f"warning: {name}: the cached tree {tree.name} was altered on disk; removed, fetching it again", file=sys.stderr)


def _download_tree(name: str, source: ArchiveSource, tree: Path, settings: Settings) -> FetchedSource:
    if settings.offline:
        raise FetchError(
            f"{name}: offline, and the cache has no tree {source.tree} (from {source.urls[0]})",
            hint="run once without --offline, or copy the dock32 cache from a machine that has it",
        )
    settings.downloads_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for template in source.urls:
        url = expand_url(template, settings)
        if url is None:
            failures.append(f"{template}: no Debian mirror in apt's sources (set DOCK32_DEBIAN_MIRROR)")
            continue
        fd, tmp_name = tempfile.mkstemp(prefix=f"{name}.", suffix=".part", dir=settings.downloads_dir)
        os.close(fd)
        partial = Path(tmp_name)
        try:
            _download(url, partial, name)
            try:
                actual = tree_hash_of_archive(partial)
            except FetchError as exc:
                # trees' messages start with the archive's file name, here our temporary file: the URL says more.
                raise FetchError(f"{url}: {exc.message.removeprefix(partial.name + ': ')}", hint=exc.hint) from None
            if actual != source.tree:
                settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
                aside = settings.quarantine_dir / f"{name}-{actual.replace(':', '-')}{archive_suffix(url)}"
                partial.replace(aside)
                failures.append(f"{url}: tree hash mismatch: expected {source.tree}, got {actual}; moved aside to {aside}")
                continue
            file_hash = hashlib.sha256(partial.read_bytes()).hexdigest()
            stored = settings.downloads_dir / f"sha256-{file_hash}{archive_suffix(url)}"
            partial.replace(stored)
            if not tree.is_dir():
                unpack(stored, tree)
            cache.remember(tree, source.tree)
            return FetchedSource(tree=tree, hash=source.tree)
        except FetchError as exc:
            failures.append(str(exc))
        finally:
            partial.unlink(missing_ok=True)
    raise FetchError(
        f"{name}: no mirror gave the pinned tree {source.tree}:\n  " + "\n  ".join(failures),
        hint=f"check the network or the mirror list in {name}'s source.urls; a tree hash that changed upstream needs a deliberate re-pin",
    )


def archive_suffix(url: str) -> str:
    """The archive type a URL names (.tar.gz when it names none), for the name of the downloaded file."""
    for suffix in (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar"):
        if url.endswith(suffix):
            return suffix
    return ".tar.gz"


# --- Go modules -------------------------------------------------------------------------------


def fetch_module(name: str, source: GoModuleSource, go: Path, settings: Settings) -> FetchedSource:
    """Download a module (the go command checks it against the checksum database) and compare it with our pin;
    a module already in the cache is checked again (cache.is_intact) and fetched anew if it was altered."""
    with cache.entry_lock(settings, source.ref):
        fetched = _go_mod_download(name, source, go, settings)
        if cache.is_intact(fetched.tree, source.sum, lambda tree: cache.module_hash(tree, source.module, source.version)):
            return fetched
        _discard_altered(name, fetched.tree, settings)
        # The zip it was unpacked from goes too: go would unpack the same again.
        for leftover in _module_download_files(settings, source):
            leftover.unlink(missing_ok=True)
        fetched = _go_mod_download(name, source, go, settings)
        if not cache.is_intact(fetched.tree, source.sum, lambda tree: cache.module_hash(tree, source.module, source.version)):
            raise FetchError(
                f"{name}: {source.ref} in {fetched.tree} does not match its pin {source.sum} even after fetching it again",
                hint="check GOPROXY; remove the dock32 cache's go/mod folder to start afresh",
            )
        return fetched


def _module_download_files(settings: Settings, source: GoModuleSource) -> list[Path]:
    """The module cache's download files of one version (module paths are case-escaped: A -> !a)."""
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in source.module)
    folder = settings.gomodcache / "cache" / "download" / escaped / "@v"
    return sorted(folder.glob(f"{source.version}.*"))


def _go_mod_download(name: str, source: GoModuleSource, go: Path, settings: Settings) -> FetchedSource:
    # No timeout: the go command's own network timeouts apply, and a large module on a slow line takes long.
    where = settings.cache_dir if settings.cache_dir.is_dir() else None
    found = gocmd.Go(go, settings, where, timeout=None).download_many([source.ref])[source.ref]
    if isinstance(found, str):
        hint = (
            "offline: the module cache lacks it; run once online" if settings.offline else "check GOPROXY (it must serve this exact version) and the network"
        )
        raise FetchError(f"{name}: go mod download {source.ref}: {found}", hint=hint)
    if found.sum != source.sum:
        raise FetchError(
            f"{name}: {source.ref}: hash mismatch: expected {source.sum}, got {found.sum}; nothing was built from it",
            hint="the proxy served other content than the pin; check GOPROXY, or re-pin deliberately if upstream re-tagged",
        )
    return FetchedSource(tree=found.dir, hash=source.sum)
