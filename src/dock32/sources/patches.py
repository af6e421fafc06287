"""Quilt-style patch series: patches/<component>/series, applied in order to a pristine copy with GNU patch.

Before GNU patch sees a patch, every file name in its headers is checked the way GNU patch will read it
(after -pN): a name that is absolute, has a `..`, or leads out of the tree through a symlink already in
it is refused, and so is a patch that makes a symlink. /dev/null (a created or deleted file) is allowed.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dock32.core.arch import Arch
from dock32.core.errors import PatchError
from dock32.core.run import capture

GOARCHES = tuple(arch.names.go for arch in Arch)
_RANGE = re.compile(r"^(>=|<=|>|<|==)\s*v?(\d+(?:\.\d+)*)$")
_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_SPACE = " \t\n\r\v\f"
_SYMLINK_MODE = "120000"


@dataclass(frozen=True)
class Patch:
    path: Path
    strip: int
    versions: tuple[tuple[str, tuple[int, ...]], ...]  # all must hold, e.g. ((">=", (1, 3)), ("<", (1, 4)))
    # GOARCH values the patch is for (goarch=386): a fix for 386 binaries stays out of a multiarch64 (amd64) build,
    # which ships upstream's code. Empty: every architecture.
    goarches: tuple[str, ...] = ()

    def applies_to(self, version: str, goarch: str | None = None) -> bool:
        """Whether the patch is for version (and for goarch, when one is given)."""
        if goarch is not None and self.goarches and goarch not in self.goarches:
            return False
        have = _numbers(version)
        return all(_compare(have, op, bound) for op, bound in self.versions)


def _numbers(version: str) -> tuple[int, ...]:
    match = re.match(r"^v?(\d+(?:\.\d+)*)", version)
    return tuple(int(n) for n in match.group(1).split(".")) if match else ()


def _compare(have: tuple[int, ...], op: str, bound: tuple[int, ...]) -> bool:
    width = max(len(have), len(bound))
    a, b = have + (0,) * (width - len(have)), bound + (0,) * (width - len(bound))
    return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b, "==": a == b}[op]


def read_series(directory: Path) -> list[Patch]:
    """Parse directory/series: one patch per line, optional `-pN`, `versions=>=1.3,<1.4` and `goarch=386`;
    `#` starts a comment."""
    series = directory / "series"
    if not series.is_file():
        return []
    patches = []
    for number, line in enumerate(series.read_text(encoding="utf-8").splitlines(), start=1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        where = f"{series}:{number}"
        path = directory / words[0]
        if not path.is_file():
            raise PatchError(f"{where}: patch {words[0]} does not exist", hint=f"add it to {directory} or remove the line")
        strip, versions, goarches = 1, [], []
        for option in words[1:]:
            if re.fullmatch(r"-p\d+", option):
                strip = int(option[2:])
            elif option.startswith("versions="):
                for clause in option[len("versions="):].split(","):
                    match = _RANGE.match(clause.strip())
                    if not match:
                        raise PatchError(f"{where}: bad version range {clause!r}", hint="write it like versions=>=1.3,<1.4")
                    versions.append((match.group(1), tuple(int(n) for n in match.group(2).split("."))))
            elif option.startswith("goarch="):
                goarches += option[len("goarch="):].split(",")
                unknown = [g for g in goarches if g not in GOARCHES]
                if unknown:
                    raise PatchError(f"{where}: unknown goarch {unknown[0]!r}", hint=f"one of {', '.join(GOARCHES)}, comma-separated")
            else:
                raise PatchError(f"{where}: unknown option {option!r}", hint="options are -pN, versions=>=A,<B and goarch=386")
        patches.append(Patch(path=path, strip=strip, versions=tuple(versions), goarches=tuple(goarches)))
    return patches


@dataclass(frozen=True)
class NamedPath:
    """A file name in a patch's headers: `raw` as written (unquoted), `path` as GNU patch uses it after -pN.

    path is None when GNU patch ignores the name: /dev/null, or fewer components than -pN strips.
    kind is old, new, index, git (a `diff --git` name), rename, copy, or symlink (a git mode of 120000).
    """

    line: int
    kind: str
    raw: str
    path: str | None


def _c_string(text: str) -> tuple[str | None, str]:
    """A C-quoted name as git and GNU patch write it (text starts at the quote): the name and the rest of the line."""
    out = bytearray()
    i = 1
    escapes = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
    while i < len(text):
        c = text[i]
        if c == '"':
            # GNU patch keeps the name in a C string: an escaped NUL ends it there.
            return bytes(out).split(b"\0", 1)[0].decode("utf-8", "surrogateescape"), text[i + 1 :]
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        escape = text[i + 1 : i + 2]
        if escape in escapes:
            out.append(escapes[escape])
            i += 2
        elif re.fullmatch(r"[0-3][0-7][0-7]", text[i + 1 : i + 4]):
            out.append(int(text[i + 1 : i + 4], 8))
            i += 4
        else:
            return None, ""
    return None, ""


def _fetchname(text: str, stamped: bool) -> str | None:
    """The name on a ---, +++, *** or Index: line, as GNU patch's fetchname() takes it.

    Unquoted, the name ends at the first white space, unless a tab (the one before the date) comes later:
    then names may hold spaces, and end where the white space includes a tab.
    """
    text = text.lstrip(_SPACE)
    if text.startswith('"'):
        return _c_string(text)[0]
    end = len(text)
    for i, c in enumerate(text):
        if c in _SPACE:
            u = i
            while text[u] != "\t" and u + 1 < len(text) and text[u + 1] in _SPACE:
                u += 1
            if text[u] != "\t" and ("\t" if stamped else "\n") in text[u + 1 :]:
                continue
            end = i
            break
    return text[:end]


def _parse_names(text: str) -> list[str]:
    """The names on a `diff --git` line: each C-quoted or up to white space."""
    names = []
    text = text.lstrip(_SPACE)
    while text:
        if text.startswith('"'):
            name, text = _c_string(text)
            if name is None:
                break
        else:
            name = re.split(f"[{_SPACE}]", text, maxsplit=1)[0]
            text = text[len(name) :]
        names.append(name)
        text = text.lstrip(_SPACE)
    return names


def _strip(name: str, strip: int) -> str | None:
    """name without its first `strip` components, as GNU patch's -pN takes them; None when it has too few."""
    left, start, i = strip, 0, 0
    while i < len(name):
        if name[i] == "/":
            while i + 1 < len(name) and name[i + 1] == "/":
                i += 1
            left -= 1
            if left >= 0:
                start = i + 1
        i += 1
    rest = name[start:]
    return rest if left <= 0 and rest else None


def _lines(text: str) -> list[str]:
    """The lines as GNU patch reads them: split at newlines only, each keeping its own."""
    pieces = text.split("\n")
    return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def named_paths(text: str, strip: int) -> list[NamedPath]:
    """Every file name in a patch's headers: what GNU patch could open, create, rename or delete with it.

    Only the bodies of unified hunks are skipped (a removed line `-- x` reads `--- x`), and only where GNU patch
    would read them as a hunk too: after a file header, and while the patch holds nothing but unified hunks.
    Every other line that looks like a header is read as one, so a line GNU patch takes for text may be checked
    as a name, never the other way round.
    """
    found: list[NamedPath] = []

    def add(number: int, kind: str, raw: str | None, stripped: bool = True) -> None:
        raw = raw.split("\0", 1)[0] if raw else raw  # GNU patch's names are C strings
        if raw is None or raw == "":
            return
        if raw == "/dev/null" and kind in ("old", "new", "index"):
            found.append(NamedPath(number, kind, raw, None))
            return
        found.append(NamedPath(number, kind, raw, _strip(raw, strip) if stripped else raw))

    need_header = True  # GNU patch starts a hunk only after a ---, +++, *** or Index: line
    only_unified = True  # once it has read a context, normal, ed or binary diff, GNU patch no longer starts unified hunks
    old_left = new_left = 0
    hunk_just_ended = False
    git_names: list[str] = []
    for number, line in enumerate(_lines(text), start=1):
        if old_left > 0 or new_left > 0:
            first = line[:1]
            if first in (" ", "\t", "\n"):
                old_left, new_left = old_left - 1, new_left - 1
            elif first == "-":
                old_left -= 1
            elif first == "+":
                new_left -= 1
            elif first != "\\":
                old_left = new_left = 0  # malformed, and GNU patch gives up on it; read this line as a header
                need_header = True
            if old_left > 0 or new_left > 0 or first in (" ", "\t", "\n", "-", "+", "\\"):
                hunk_just_ended = old_left <= 0 and new_left <= 0
                continue
        if hunk_just_ended:
            if line.startswith("\\"):  # "\ No newline at end of file" belongs to the hunk before
                continue
            hunk_just_ended = False
            hunk = _HUNK.match(line)  # the next hunk of the same file, unindented
            if hunk:
                old_left, new_left = int(hunk.group(1) or 1), int(hunk.group(2) or 1)
                continue
            need_header = True
        s = line.lstrip(" \tX")  # GNU patch skips this indentation before a header
        t = s
        while t.startswith("- "):  # RFC 934 quoting
            t = t[2:]
        if s.startswith("*** "):
            add(number, "old", _fetchname(s[4:], stamped=True))
            need_header = False
        elif s.startswith("+++ "):
            add(number, "new", _fetchname(s[4:], stamped=True))
            need_header = False
        elif s.startswith("Index:"):
            add(number, "index", _fetchname(s[6:], stamped=False))
            need_header = False
        elif s.startswith("diff --git "):
            git_names = _parse_names(s[11:])
            for name in git_names:
                add(number, "git", name)
        elif s.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            # Git writes these without the a/ b/ prefix; GNU patch ignores them, but they are checked as they are.
            words = s.split(" ", 2)
            rest = words[2].rstrip("\r\n")
            add(number, words[0], _c_string(rest)[0] if rest.startswith('"') else rest, stripped=False)
        elif re.match(rf"(new file mode|new mode|index [0-9a-f]+\.\.[0-9a-f]+) {_SYMLINK_MODE}\b", s):
            for name in git_names[-1:]:
                add(number, "symlink", name)
        elif t.startswith("--- "):
            add(number, "old", _fetchname(t[4:], stamped=True))
            need_header = False
        if s.startswith(("********", "GIT binary patch")) or re.match(r"\d+(,\d+)?[acdis]", s):
            only_unified = False
        hunk = _HUNK.match(s)
        if hunk and only_unified and not need_header:
            old_left, new_left = int(hunk.group(1) or 1), int(hunk.group(2) or 1)
    return found


def outside_reason(path: str, tree: Path) -> str | None:
    """Why path (relative, as GNU patch takes it) is outside tree, or None when it is inside."""
    if path.startswith("/"):
        return "it is absolute"
    if ".." in path.split("/"):
        return "it has a '..' component"
    root = os.path.realpath(tree)
    resolved = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, resolved]) != root:
        return f"it leads to {resolved} through a symlink in the tree"
    return None


def check_paths(patch: Patch, tree: Path) -> None:
    """Refuse a patch that names a file outside tree, or makes a symlink, before GNU patch runs."""
    component = patch.path.parent.name
    where = f"patches/{component}/{patch.path.name}"
    text = patch.path.read_bytes().decode("utf-8", "surrogateescape")
    for named in named_paths(text, patch.strip):
        if named.kind == "symlink":
            raise PatchError(
                f"{where}: makes {named.raw!r} a symbolic link",
                hint=f"line {named.line}: dock32 does not take symlinks from patches, as one could lead a later path out of the {component} tree",
            )
        if named.path is None:
            continue
        reason = outside_reason(named.path, tree)
        if reason:
            after = f" ({named.path!r} after -p{patch.strip})" if named.kind not in ("rename", "copy") and named.path != named.raw else ""
            raise PatchError(
                f"{where}: refers to {named.raw!r}, outside the {component} tree",
                hint=f"line {named.line}{after}: {reason}; a patch may only change files inside the tree, and /dev/null stands for a created or deleted file",
            )


def _failure_summary(output: str) -> str:
    """The first failing file and hunk from GNU patch's report."""
    current = None
    for line in output.splitlines():
        if line.startswith(("patching file ", "checking file ")):
            current = line.split(" ", 2)[2].strip("'\"")
        match = re.search(r"Hunk #(\d+) FAILED at (\d+)", line)
        if match:
            return f"{current}: hunk #{match.group(1)} (at line {match.group(2)}) does not apply"
        if "can't find file to patch" in line or "No file to patch" in line:
            return "a file it patches does not exist"
        if "Reversed (or previously applied) patch detected" in line:
            return f"{current}: already applied (is it upstream now?)"
    return output.strip().splitlines()[-1] if output.strip() else "patch failed"


def apply_series(patches: list[Patch], tree: Path, version: str, goarch: str | None = None) -> list[Patch]:
    """Apply the patches that cover version (and goarch); return those applied.

    Each patch's file names are checked first (check_paths), then it is dry-run, so a refused or failing patch changes nothing.
    """
    applied = []
    for patch in patches:
        if not patch.applies_to(version, goarch):
            continue
        check_paths(patch, tree)
        base = ["patch", f"-p{patch.strip}", "--batch", "--forward", "--no-backup-if-mismatch", "-d", str(tree), "-i", str(patch.path)]
        check = capture([*base, "--dry-run"])
        if check.returncode != 0:
            raise PatchError(
                f"{patch.path.name}: {_failure_summary(check.stdout + check.stderr)}",
                hint=f"refresh {patch.path} against {version}, or limit it with versions= in its series line",
            )
        done = capture(base)
        if done.returncode != 0:
            raise PatchError(f"{patch.path.name}: {_failure_summary(done.stdout + done.stderr)}")
        applied.append(patch)
    return applied


@dataclass(frozen=True)
class PatchCheck:
    """What one patch of a series does to a tree at a version (`dock32 bump` reports these).

    status: "outside" (its versions= range excludes the version: no longer applied), "applies", "fails" (detail names
    the file and hunk), or "upstream" (it applies in reverse: the tree already has it, so it can be dropped).
    """

    patch: Patch
    status: str
    detail: str = ""


def describe_range(patch: Patch) -> str:
    return ",".join(op + ".".join(str(n) for n in bound) for op, bound in patch.versions)


def check_series(patches: list[Patch], tree: Path, version: str) -> list[PatchCheck]:
    """Check every patch of a series against tree at version, in order; each one that applies is applied (the next is
    checked on top of it, as a build would), nothing else is changed."""
    checks = []
    for patch in patches:
        if not patch.applies_to(version):
            checks.append(PatchCheck(patch, "outside", f"versions={describe_range(patch)} excludes {version}"))
            continue
        try:
            check_paths(patch, tree)
        except PatchError as exc:
            checks.append(PatchCheck(patch, "fails", str(exc)))
            continue
        base = ["patch", f"-p{patch.strip}", "--batch", "--no-backup-if-mismatch", "-d", str(tree), "-i", str(patch.path)]
        forward = capture([*base, "--forward", "--dry-run"])
        if forward.returncode == 0:
            done = capture([*base, "--forward"])
            if done.returncode == 0:
                checks.append(PatchCheck(patch, "applies"))
            else:
                checks.append(PatchCheck(patch, "fails", _failure_summary(done.stdout + done.stderr)))
        elif capture([*base, "--reverse", "--dry-run"]).returncode == 0:
            checks.append(PatchCheck(patch, "upstream", "it applies in reverse: the tree already has its changes"))
        else:
            checks.append(PatchCheck(patch, "fails", _failure_summary(forward.stdout + forward.stderr)))
    return checks
