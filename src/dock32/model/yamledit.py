"""Editing buildcfg.yaml and toolchains/go.yaml in place for `dock32 bump`: scalars rewritten, keys renamed, entries
removed and trailing comments set at the positions the YAML parser reports; every other byte stays as it was."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from dock32.core.errors import ConfigError

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Change:
    """One edit at path: its scalar value rewritten (with comment: the line's trailing comment set too), or (key=True)
    the key of the mapping entry renamed, or (remove=True) the whole `key: value` entry deleted."""

    file: str  # relative to the project: buildcfg.yaml, toolchains/go.yaml
    path: Path_
    old: str
    new: str
    key: bool = False
    remove: bool = False
    comment: str | None = None

    @property
    def where(self) -> str:
        return dotted(self.path) + (" (key)" if self.key else "")

    def describe(self) -> str:
        if self.remove:
            return f"{self.where}: {self.old} -> (removed)"
        return f"{self.where}: {self.old} -> {self.new}" + (f"  # {self.comment}" if self.comment else "")


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def scalar_nodes(text: str) -> tuple[dict[Path_, yaml.ScalarNode], dict[Path_, yaml.ScalarNode]]:
    """Every scalar value and every mapping key by path, as composed (with their marks); merge keys are not followed.
    An alias is seen at each path that uses it, as the same node (the same marks) as its anchored definition."""
    values: dict[Path_, yaml.ScalarNode] = {}
    keys: dict[Path_, yaml.ScalarNode] = {}

    def walk(node: yaml.Node, path: Path_, depth: int) -> None:
        if depth > 64:
            return
        if isinstance(node, yaml.ScalarNode):
            values[path] = node
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = (*path, str(key_node.value))
                keys[child] = key_node
                walk(value_node, child, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index), depth + 1)

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, (), 0)
    return values, keys


def _defining_paths(text: str) -> list[tuple[Path_, Path_, str]]:
    """(path, the path where its value is written, value) for every scalar value, in document order."""
    values, _ = scalar_nodes(text)
    first: dict[int, Path_] = {}
    return [(path, first.setdefault(node.start_mark.index, path), str(node.value)) for path, node in values.items()]


def written_once(text: str, prefix: Path_) -> dict[Path_, str]:
    """The scalar values under prefix, each at the one place it is written: a value reached again through an alias
    (`ldflags: *moby_version`) is left out, so that a change lands on the anchored definition alone."""
    n = len(prefix)
    return {path: value for path, defined, value in _defining_paths(text) if path == defined and path[:n] == prefix}


def borrowed(text: str, prefix: Path_) -> dict[Path_, str]:
    """The scalar values under prefix that are written outside it (an alias of an anchor defined elsewhere)."""
    n = len(prefix)
    return {path: value for path, defined, value in _defining_paths(text) if path[:n] == prefix and defined[:n] != prefix}


def comment_lines_naming(text: str, word: str) -> list[int]:
    """Line numbers (from 1) of comments that name word (as a whole word): prose a bump cannot rewrite."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(word)}(?![\w]|\.\d)")
    numbers = []
    for number, line in enumerate(text.splitlines(), 1):
        at = _comment_start(line)
        if at is not None and pattern.search(line[at:]):
            numbers.append(number)
    return numbers


def _comment_start(line: str) -> int | None:
    """Where line's comment starts (a # at the start or after a blank outside quotes), or None."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'" and (index == 0 or line[index - 1] in " \t[{,:-"):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return index
    return None


def render(node: yaml.ScalarNode, value: str) -> str:
    """value written the way node was: double-quoted, single-quoted, or plain where YAML reads it back as that text."""
    if node.style == "'":
        return "'" + value.replace("'", "''") + "'"
    if node.style is None and _plain_like(str(node.value), value):
        return value
    if node.style in (None, '"'):
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    raise ConfigError(f"cannot rewrite a block scalar ({node.style}) at line {node.start_mark.line + 1}", hint="write the value on one line")


_PLAIN_SAFE = re.compile(r"[A-Za-z0-9._+/@~-]")


def _plain_like(old: str, value: str) -> bool:
    """Whether value can stay a plain scalar where old was one: it reads back as itself, and it uses no character
    that old did not (a space or {} is fine in a block sequence's `-X pkg.Version={version}`, not in a flow one)."""
    if not value or not (value[0].isalnum() or (old and value[0] == old[0])):
        return False
    if any(not _PLAIN_SAFE.fullmatch(char) and char not in old for char in value) or value.endswith((" ", ":")):
        return False
    return " #" not in value and ": " not in value and yaml.safe_load(value) == value


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """The index just past the newline ending index's line (or the end of text)."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _removal_span(text: str, change: Change, key: yaml.ScalarNode, value: yaml.Node) -> tuple[int, int]:
    """The lines of a one-line block `key: value` entry, with the comment lines right above it at its indentation
    (they describe it, as every comment in buildcfg.yaml describes the line below it)."""
    start = _line_start(text, key.start_mark.index)
    indent = text[start : key.start_mark.index]
    if indent.strip() or key.start_mark.line != value.end_mark.line:
        where = f"{change.file}:{key.start_mark.line + 1}"
        raise ConfigError(f"{where}: cannot remove {change.where}: not a one-line entry of a block mapping", hint="remove it by hand")
    end = _line_end(text, value.end_mark.index)
    rest = text[value.end_mark.index : end].rstrip("\n")
    if rest.strip() and not rest.strip().startswith("#"):
        raise ConfigError(f"{change.file}:{key.start_mark.line + 1}: cannot remove {change.where}: more follows it on its line", hint="remove it by hand")
    while start > 0:
        above = _line_start(text, start - 1)
        line = text[above : start - 1]
        if not (line.startswith(indent + "#") and line[: len(indent)].strip() == ""):
            break
        start = above
    return start, end


def _with_comment(text: str, change: Change, node: yaml.ScalarNode, rendered: str) -> tuple[int, str]:
    """(end of the span, replacement) that writes the value and sets its line's trailing comment."""
    assert change.comment is not None
    end = _line_end(text, node.end_mark.index)
    rest = text[node.end_mark.index : end]
    newline = "\n" if rest.endswith("\n") else ""
    rest = rest.removesuffix("\n")
    match = re.fullmatch(r"([ \t]*)(#.*)?", rest)
    if match is None or "\n" in change.comment:
        raise ConfigError(f"{change.file}:{node.start_mark.line + 1}: cannot set a comment after {change.where}: more follows it on its line")
    spacing = match.group(1) if match.group(2) else "  "
    return end, f"{rendered}{spacing or '  '}# {change.comment}{newline}"


def apply_changes(text: str, changes: list[Change]) -> str:
    """text with each change made at its position; everything else byte for byte as it was."""
    values, keys = scalar_nodes(text)
    spans: dict[int, tuple[int, str]] = {}
    for change in changes:
        node = (keys if change.key or change.remove else values).get(change.path)
        if node is None:
            raise ConfigError(f"{change.file}: no {change.where} to {'remove' if change.remove else 'rewrite'}")
        if change.remove:
            value = values.get(change.path)
            if value is None:
                where = f"{change.file}:{node.start_mark.line + 1}"
                raise ConfigError(f"{where}: cannot remove {change.where}: its value is not one scalar", hint="remove it by hand")
            if str(value.value) != change.old:
                raise ConfigError(f"{change.file}:{value.start_mark.line + 1}: {change.where} is {value.value!r}, expected {change.old!r}")
            start, end = _removal_span(text, change, node, value)
            span = (start, (end, ""))
        else:
            if str(node.value) != change.old:
                raise ConfigError(f"{change.file}:{node.start_mark.line + 1}: {change.where} is {node.value!r}, expected {change.old!r}")
            rendered = render(node, change.new)
            end, replacement = (node.end_mark.index, rendered) if change.comment is None else _with_comment(text, change, node, rendered)
            span = (node.start_mark.index, (end, replacement))
        start, (end, replacement) = span
        if start in spans and spans[start] != (end, replacement):
            raise ConfigError(f"{change.file}:{node.start_mark.line + 1}: two different changes at {change.where}")
        spans[start] = (end, replacement)
    ordered = sorted(spans.items())
    for (_, (end, _)), (next_start, _) in zip(ordered, ordered[1:], strict=False):
        if end > next_start:
            raise ConfigError(f"bump: overlapping changes in {changes[0].file}", hint="this is a bug in dock32 bump")
    for start, (end, replacement) in reversed(ordered):
        text = text[:start] + replacement + text[end:]
    _check_landed(text, changes)
    return text


def _check_landed(text: str, changes: list[Change]) -> None:
    """Read back: every change landed where it should, as the text it should be (keys renamed on the way)."""
    renamed = {c.path: (*c.path[:-1], c.new) for c in changes if c.key}
    new_values, new_keys = scalar_nodes(text)
    loader = yaml.SafeLoader("")
    for change in changes:
        path = change.path
        for old_prefix, new_prefix in renamed.items():
            if path[: len(old_prefix)] == old_prefix:
                path = new_prefix + path[len(old_prefix) :]
        if change.remove:
            if path in new_keys:
                raise ConfigError(f"{change.file}: removing {change.where} left it in place")
            continue
        node = (new_keys if change.key else new_values).get(path)
        got = None if node is None else node.value if change.key else loader.construct_object(node)
        if got != change.new:
            raise ConfigError(f"{change.file}: rewriting {change.where} gave {got!r}, not {change.new!r}")


def append_go_pin(text: str, version: str, sums: dict[str, str]) -> str:
    """A new entry at the end of toolchains/go.yaml's go: mapping, indented like its other entries."""
    values, keys = scalar_nodes(text)
    entries = [node for path, node in keys.items() if len(path) == 2 and path[0] == "go"]
    indent = entries[0].start_mark.column if entries else 2
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    go = next((v for k, v in root.value if k.value == "go"), None) if isinstance(root, yaml.MappingNode) else None
    if not isinstance(go, yaml.MappingNode) or go.flow_style:
        raise ConfigError("toolchains/go.yaml: its go: mapping is not in block style; add the pin by hand")
    lines = [" " * indent + json.dumps(version) + ":"] + [" " * (indent + 2) + f"{p}: {json.dumps(s)}" for p, s in sums.items()]
    end = go.end_mark.index
    before = text[:end]
    if not before.endswith("\n"):
        before += "\n"
    return before + "\n".join(lines) + "\n" + text[end:]
