"""The go command's questions, wrapped once: its module environment, `go mod download -json` and `go list -m -json`
read into data (modules with their h1: sums, versions, their .info times), `go version -m`, and `go env`. Every
module of dock32 that asks go about modules or a toolchain asks through here; go build, go test and go mod edit
run where their output is made (build, checks), with module_env."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dock32.core.errors import FetchError
from dock32.core.run import capture
from dock32.model.settings import Settings

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


def module_env(settings: Settings) -> dict[str, str]:
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


def env_value(go: str | Path, name: str) -> str:
    """What `go env NAME` says of this go command itself ("" if it cannot say)."""
    result = capture([go, "env", name], env={"GOTOOLCHAIN": "local"})
    return result.stdout.strip() if result.returncode == 0 else ""


def version_of(go: str | Path) -> str | None:
    """What `go env GOVERSION` says (go1.26.8), or None if it cannot say."""
    result = capture([go, "env", "GOVERSION"], env={"GOTOOLCHAIN": "local"})
    return result.stdout.strip() or None if result.returncode == 0 else None


def parse_version_m(text: str) -> dict[str, object]:
    """`go version -m` output as data: the Go version, main package and module, each dependency as "module version"
    (its go.sum `h1:` in sums, where it was replaced in replace) and the build settings."""
    lines = text.splitlines()
    if not lines:
        return {}
    deps: list[str] = []
    sums: dict[str, str] = {}
    replace: dict[str, dict[str, str]] = {}
    settings: dict[str, str] = {}
    info: dict[str, object] = {"go": lines[0].split(": ", 1)[-1].strip(), "deps": deps, "sums": sums, "replace": replace, "settings": settings}
    last_dep = None
    for line in lines[1:]:
        fields = line.strip().split("\t")
        if fields[0] in ("path", "mod") and len(fields) >= 2:
            info[fields[0]] = " ".join(fields[1:3])
        elif fields[0] == "dep" and len(fields) >= 3:
            last_dep = fields[1]
            deps.append(" ".join(fields[1:3]))
            if len(fields) >= 4 and fields[3]:
                sums[fields[1]] = fields[3]
        elif fields[0] == "=>" and len(fields) >= 2 and last_dep is not None:
            # The line after a dep: what the build used instead (a local folder is "(devel)" and has no sum).
            replace[last_dep] = {"path": fields[1], **({"version": fields[2]} if len(fields) >= 3 and fields[2] else {})}
            if len(fields) >= 4 and fields[3]:
                replace[last_dep]["sum"] = fields[3]
        elif fields[0] == "build" and len(fields) >= 2 and "=" in fields[1]:
            key, value = fields[1].split("=", 1)
            settings[key] = value
    return info


def version_m(go: str, binary: Path) -> dict[str, object]:
    """`go version -m`: the Go version, module and dependency versions and build settings stamped in a binary."""
    result = capture([go, "version", "-m", binary], env={"GOTOOLCHAIN": "local"})
    return parse_version_m(result.stdout) if result.returncode == 0 else {}


class Go:
    """The go command with dock32's module cache and the user's GOPROXY/GOSUMDB, run in workdir: outside any
    module to ask the proxy, or in a source tree to download what its module file names."""

    def __init__(self, go: str | Path, settings: Settings, workdir: Path | None, timeout: float | None = GO_TIMEOUT) -> None:
        self.go = str(go)
        self.settings = settings
        self.workdir = workdir
        self.timeout = timeout

    def run_json(self, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        result = capture([self.go, *args], env=module_env(self.settings), cwd=self.workdir, timeout=self.timeout)
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

    def download_many(self, refs: list[str], flags: tuple[str, ...] = ()) -> dict[str, Module | str]:
        """Each ref downloaded in one go command: its Module, or the reason it failed. A ref is module@version, or a
        bare module path for the version the module file in workdir requires (flags: -modfile=...)."""
        if not refs:
            return {}
        code, objects, stderr = self.run_json("mod", "download", "-json", *flags, *refs)
        found: dict[str, Module | str] = {}
        for info in objects:
            for ref in (f"{info.get('Path')}@{info.get('Version')}", str(info.get("Path"))):
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
