"""Fetching sources: tarballs over HTTP from a list of mirrors, Go modules through GOPROXY. Nothing is used unverified."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from dock32.config import ArchiveSource, GoModuleSource
from dock32.errors import FetchError
from dock32.run import capture
from dock32.settings import Settings
from dock32.trees import tree_hash_of_archive, unpack

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
    """A failure worth retrying: connection trouble, a 5xx, a body shorter than announced."""


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


def _download(url: str, destination: Path, label: str) -> None:
    """Stream url to destination with a progress bar; retries transient failures with backoff, never a 4xx."""
    for attempt in range(1, RETRIES + 1):
        try:
            if url.startswith("file://"):
                shutil.copyfile(url[len("file://"):], destination)
                return
            with requests.get(url, stream=True, timeout=TIMEOUT_SECONDS) as response:
                if 400 <= response.status_code < 500:
                    raise FetchError(f"{url}: HTTP {response.status_code}")
                if response.status_code >= 500:
                    raise _Transient(f"HTTP {response.status_code}")
                response.raise_for_status()
                # Content-Length counts the bytes sent; with a Content-Encoding those are not the bytes iter_content yields.
                encoded = response.headers.get("Content-Encoding", "identity") not in ("", "identity")
                expected = None if encoded else int(response.headers.get("Content-Length", "0")) or None
                received = 0
                with destination.open("wb") as out, tqdm(
                    total=expected, unit="B", unit_scale=True, desc=label, leave=False, disable=not sys.stderr.isatty()
                ) as bar:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if expected is not None and received != expected:
                    raise _Transient(f"body ended after {received} of {expected} bytes")
                return
        except FileNotFoundError:
            raise FetchError(f"{url}: no such file") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.TooManyRedirects, requests.exceptions.ContentDecodingError) as exc:
            raise FetchError(f"{url}: {exc}") from None
        except (_Transient, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if attempt == RETRIES:
                raise FetchError(f"{url}: {exc} (after {RETRIES} tries)") from None
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        except OSError as exc:  # after the transient ones: requests' errors are OSErrors too
            raise FetchError(f"{url}: {exc}") from None
    raise AssertionError("unreachable")


def fetch_archive(name: str, source: ArchiveSource, settings: Settings) -> FetchedSource:
    """Return the pinned tree from the cache, or download it from the first mirror whose tarball matches."""
    tree = settings.trees_dir / source.tree.replace(":", "-")
    if tree.is_dir():
        return FetchedSource(tree=tree, hash=source.tree)
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
            actual = tree_hash_of_archive(partial)
            if actual != source.tree:
                settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
                aside = settings.quarantine_dir / f"{name}-{actual.replace(':', '-')}{_suffix(url)}"
                partial.replace(aside)
                failures.append(f"{url}: tree hash mismatch: expected {source.tree}, got {actual}; moved aside to {aside}")
                continue
            file_hash = hashlib.sha256(partial.read_bytes()).hexdigest()
            stored = settings.downloads_dir / f"sha256-{file_hash}{_suffix(url)}"
            partial.replace(stored)
            if not tree.is_dir():
                unpack(stored, tree)
            return FetchedSource(tree=tree, hash=source.tree)
        except FetchError as exc:
            failures.append(str(exc))
        finally:
            partial.unlink(missing_ok=True)
    raise FetchError(
        f"{name}: no mirror gave the pinned tree {source.tree}:\n  " + "\n  ".join(failures),
        hint=f"check the network or the mirror list in {name}'s source.urls; a tree hash that changed upstream needs a deliberate re-pin",
    )


def _suffix(url: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar"):
        if url.endswith(suffix):
            return suffix
    return ".tar.gz"


# --- Go modules -------------------------------------------------------------------------------


def go_module_env(settings: Settings) -> dict[str, str]:
    """Module and build caches live in the dock32 cache; GOPROXY, GONOSUMDB & co. pass through from the user."""
    env = {
        "GOMODCACHE": str(settings.gomodcache),
        "GOCACHE": str(settings.gocache),
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOFLAGS": "-mod=mod",
    }
    if settings.offline:
        env["GOPROXY"] = "off"
    return env


def fetch_module(name: str, source: GoModuleSource, go: Path, settings: Settings) -> FetchedSource:
    """Download a module (the go command checks it against the checksum database) and compare it with our pin."""
    result = capture([go, "mod", "download", "-json", source.ref], env=go_module_env(settings), cwd=settings.cache_dir if settings.cache_dir.is_dir() else None)
    try:
        info = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Error" in info or "Dir" not in info:
        detail = (info.get("Error") or result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        hint = (
            "offline: the module cache lacks it; run once online" if settings.offline else "check GOPROXY (it must serve this exact version) and the network"
        )
        raise FetchError(f"{name}: go mod download {source.ref}: {reason}", hint=hint)
    if info.get("Sum") != source.sum:
        raise FetchError(
            f"{name}: {source.ref}: hash mismatch: expected {source.sum}, got {info.get('Sum')}; nothing was built from it",
            hint="the proxy served other content than the pin; check GOPROXY, or re-pin deliberately if upstream re-tagged",
        )
    return FetchedSource(tree=Path(info["Dir"]), hash=source.sum)
