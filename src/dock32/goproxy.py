"""Asking GOPROXY about modules with the go command, as `dock32 bump` does: versions, their .info times, and their
downloads (with the h1: sum), all in dock32's module cache."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dock32 import fetch
from dock32.arch import build_machine_arch
from dock32.config import BuildConfig, Toolchains
from dock32.errors import Dock32Error, FetchError, ToolchainError
from dock32.run import capture
from dock32.settings import Settings
from dock32.toolchain import go_version_of, resolve_go

GO_TIMEOUT = 900  # seconds for one go command: a toolchain zip is about 70 MB


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Module:
    """One downloaded module version."""

    path: str
    version: str
    sum: str
    dir: Path  # in the module cache: read-only
    time: datetime | None
    origin_hash: str | None


@dataclass(frozen=True)
class Info:
    """What the proxy's .info says of one version: its time, or why there is none (403: the proxy does not serve it)."""

    time: datetime | None
    error: str | None = None


def _json_stream(text: str) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    index = 0
    text = text.strip()
    while index < len(text):
        value, end = decoder.raw_decode(text, index)
        if isinstance(value, dict):
            yield value
        index = end
        while index < len(text) and text[index].isspace():
            index += 1


def last_line(text: str) -> str:
    """The line of a go error that says what happened ("403 Forbidden", "server response: ..." says it less well)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("server response:")]
    return (useful or lines or [""])[-1]


def tidy_error(text: str) -> str:
    """A go command's error in few words: its last line, without the module@version it repeats and the URLs it read
    ("verifying go.mod: 404 Not Found", "403 Forbidden")."""
    line = last_line(text)
    line = re.sub(r"^(go: )?\S+@\S+: ", "", line)
    line = re.sub(r"\S+@\S+/go\.mod: ", "", line)
    line = re.sub(r"reading \S+: ", "", line)
    return line


def _version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"(?:go)?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def choose_go(config: BuildConfig, toolchains: Toolchains, settings: Settings) -> tuple[str, str]:
    """(the go command bump runs, what it is). The machine's `go`, unless it is older than the Go the config pins and
    toolchains/go.yaml pins that Go for this machine: then the pinned one, provisioned and checked as a build does
    (an old system go cannot read newer modules' go.mod files). Never a Go built from source: too slow for a bump."""
    system = shutil.which("go")
    if not system:
        raise ToolchainError("no `go` command on PATH", hint="install Go (apt-get install golang-go, or `make setup`)")
    system_version = go_version_of(system) or "unknown"
    pin = toolchains.go.get(config.go_version)
    build = build_machine_arch()
    if _version_tuple(system_version) >= _version_tuple(config.go_version):
        return system, f"{system_version} (the machine's go)"
    if pin is None or f"linux-{build.names.go}" not in pin.sums:
        return system, f"{system_version} (the machine's go; toolchains/go.yaml pins no Go {config.go_version} for linux-{build.names.go})"
    try:
        go, version, source = resolve_go(config, toolchains, settings, build)
    except (Dock32Error, OSError) as exc:
        return system, f"{system_version} (the machine's go: the pinned Go {config.go_version} could not be had: {exc})"
    return go, f"{version} ({source})"


class Go:
    """The go command with dock32's module cache and the user's GOPROXY/GOSUMDB, run outside any module."""

    def __init__(self, go: str, settings: Settings, workdir: Path) -> None:
        self.go = go
        self.settings = settings
        self.workdir = workdir

    def run_json(self, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        result = capture([self.go, *args], env=fetch.go_module_env(self.settings), cwd=self.workdir, timeout=GO_TIMEOUT)
        try:
            objects = list(_json_stream(result.stdout))
        except json.JSONDecodeError:
            objects = []
        return result.returncode, objects, result.stderr.strip()

    def download(self, ref: str, what: str) -> Module:
        found = self.download_many([ref])[ref]
        if isinstance(found, str):
            raise FetchError(f"{what}: go mod download {ref}: {found}", hint="check GOPROXY and the network")
        return found

    def download_many(self, refs: list[str]) -> dict[str, Module | str]:
        """Each ref (module@version) downloaded in one go command: its Module, or the reason it failed."""
        if not refs:
            return {}
        code, objects, stderr = self.run_json("mod", "download", "-json", *refs)
        found: dict[str, Module | str] = {}
        for info in objects:
            ref = f"{info.get('Path')}@{info.get('Version')}"
            if ref in refs:
                found[ref] = self._module(info)
        for ref in refs:
            found.setdefault(ref, tidy_error(stderr) or f"exit code {code}")
        return found

    @staticmethod
    def _module(info: dict[str, Any]) -> Module | str:
        if info.get("Error") or "Dir" not in info or "Sum" not in info:
            return tidy_error(str(info.get("Error") or "no Dir or Sum in its answer")) or "failed"
        recorded: dict[str, Any] = {}
        if info.get("Info"):
            try:
                recorded = json.loads(Path(info["Info"]).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                recorded = {}
        origin = recorded.get("Origin") or info.get("Origin") or {}
        when = recorded.get("Time") or info.get("Time")
        return Module(
            path=str(info["Path"]),
            version=str(info["Version"]),
            sum=info["Sum"],
            dir=Path(info["Dir"]),
            time=parse_time(when) if isinstance(when, str) else None,
            origin_hash=origin.get("Hash") if isinstance(origin, dict) else None,
        )

    def versions(self, module: str) -> list[str]:
        """The proxy's version list of module (@v/list: only tags the proxy has seen, so it may miss some)."""
        code, objects, stderr = self.run_json("list", "-m", "-versions", "-json", module)
        if code != 0 or not objects or objects[0].get("Error"):
            reason = (objects[0].get("Error", {}) or {}).get("Err") if objects else None
            raise FetchError(f"go list -m -versions {module}: {last_line(reason or stderr or 'failed')}", hint="check GOPROXY and the network")
        return list(objects[0].get("Versions") or [])

    def infos(self, module: str, versions: list[str]) -> dict[str, Info]:
        """Each version's .info, asked for directly (one go command): its time, or the proxy's refusal."""
        if not versions:
            return {}
        code, objects, stderr = self.run_json("list", "-m", "-e", "-json", *(f"{module}@{v}" for v in versions))
        if code != 0 and not objects:
            raise FetchError(f"go list -m {module}: {last_line(stderr or 'failed')}", hint="check GOPROXY and the network")
        found = dict.fromkeys(versions, Info(None, "not in the go command's answer"))
        for item in objects:
            version = item.get("Version")
            if version not in found:
                continue
            error = item.get("Error")
            if error:
                found[version] = Info(None, tidy_error(str(error.get("Err") if isinstance(error, dict) else error)))
            elif isinstance(item.get("Time"), str):
                found[version] = Info(parse_time(item["Time"]))
            else:
                found[version] = Info(None, "its .info gives no Time")
        return found

    def times(self, module: str, versions: list[str]) -> dict[str, datetime | None]:
        """Each version's time from the proxy's .info (None where the proxy has none)."""
        return {version: info.time for version, info in self.infos(module, versions).items()}
