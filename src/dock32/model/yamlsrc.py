"""YAML loading that remembers where each value came from, so errors can name file and line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dock32.core.errors import ConfigError


@dataclass(frozen=True)
class Node:
    """A YAML value with its file, line and dotted key path."""

    value: Any  # dict[str, Node] | list[Node] | str | int | float | bool | None
    file: Path
    line: int
    key: str

    def error(self, message: str, hint: str | None = None) -> ConfigError:
        return located(self.file, self.line, self.key, message, hint)

    # Typed accessors: each names what it expected, so a wrong type reads as a sentence.
    def mapping(self, allowed: Iterable[str] | None = None, required: Iterable[str] = ()) -> dict[str, Node]:
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping, got {_kind(self.value)}")
        if allowed is not None:
            allowed = list(allowed)
            for name, child in self.value.items():
                if name not in allowed:
                    close = difflib.get_close_matches(name, allowed, n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
                    raise child.error("unknown key", hint)
        for name in required:
            if name not in self.value:
                raise self.error(f"missing required key {name!r}")
        return dict(self.value)

    def sequence(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {_kind(self.value)}")
        return list(self.value)

    def string(self, example: str = "") -> str:
        if not isinstance(self.value, str) or not self.value:
            like = f" like {example!r}" if example else ""
            raise self.error(f"expected a string{like}, got {_kind(self.value)}")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def choice(self, allowed: Iterable[str]) -> str:
        allowed = list(allowed)
        text = self.string(allowed[0])
        if text not in allowed:
            close = difflib.get_close_matches(text, allowed, n=1)
            extra = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(f"{text!r} is not one of {', '.join(allowed)}{extra}")
        return text

    def strings(self) -> tuple[str, ...]:
        return tuple(item.string() for item in self.sequence())


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{type(value).__name__} {value!r}"


# Aliases may repeat a subtree many times over ("billion laughs"); no real config comes near these.
MAX_NODES = 50_000
MAX_DEPTH = 64
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_NAME = re.compile(r"[^\s\[\]'\"]+")


def one_line(text: str) -> str:
    """Escape what would break an error line apart or hide in it: newlines, tabs and other control characters."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def located(file: Path, line: int, key: str, message: str, hint: str | None = None) -> ConfigError:
    """The one error line of a config file: `file:line: key.path: message`, on one line whatever the file holds."""
    text = f"{file.name}:{line}: {key}: {message}" if key else f"{file.name}:{line}: {message}"
    return ConfigError(one_line(text), one_line(hint) if hint else None)


def child_key(key: str, name: str) -> str:
    """The dotted path of a key; a name that is empty or holds blanks, brackets or quotes is quoted: components['my app']."""
    if _PLAIN_NAME.fullmatch(name):
        return f"{key}.{name}" if key else name
    return f"{key}[{name!r}]"


class _Converter:
    """yaml nodes to Nodes: checks keys, resolves merges, and refuses recursive or exploding aliases."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.loader = yaml.SafeLoader("")
        self.count = 0
        self.active: set[int] = set()  # nodes being converted: meeting one again is a recursive alias
        self.checked: set[int] = set()  # mappings whose keys are checked and merges resolved

    def convert(self, node: yaml.Node, key: str, depth: int = 0) -> Node:
        line = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_NODES:
            raise located(self.file, line, key, f"more than {MAX_NODES} values (aliases expanding?)")
        if depth > MAX_DEPTH:
            raise located(self.file, line, key, f"nested more than {MAX_DEPTH} levels deep")
        if id(node) in self.active:
            raise located(self.file, line, key, "an alias refers to a value that contains it")
        if isinstance(node, yaml.MappingNode):
            self.active.add(id(node))
            self._keys(node, key)
            children: dict[str, Node] = {}
            for key_node, value_node in node.value:  # merged keys come first, so the explicit ones win
                name = str(key_node.value)
                children[name] = self.convert(value_node, child_key(key, name), depth + 1)
            self.active.discard(id(node))
            return Node(children, self.file, line, key)
        if isinstance(node, yaml.SequenceNode):
            self.active.add(id(node))
            items = [self.convert(item, f"{key}[{i}]", depth + 1) for i, item in enumerate(node.value)]
            self.active.discard(id(node))
            return Node(items, self.file, line, key)
        # Scalars: let PyYAML's safe resolver decide int/bool/str, exactly as safe_load would.
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # explicit tags like !!bool or !!timestamp fail with ValueError, KeyError, AttributeError...
            tag = node.tag.rpartition(":")[2] if node.tag.startswith("tag:yaml.org,2002:") else node.tag
            reason = getattr(exc, "problem", None) or str(exc)
            raise located(self.file, line, key, f"cannot read {node.value!r} as {tag}: {reason}", hint="quote it to keep it text") from None
        return Node(value, self.file, line, key)

    def _keys(self, node: yaml.MappingNode, key: str) -> None:
        """Plain-text keys, no duplicates, and `<<: *anchor` merges resolved in place as safe_load does."""
        if id(node) in self.checked:
            return
        self.checked.add(id(node))
        seen: set[str] = set()
        for key_node, value_node in node.value:
            where = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                for source in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                    if not isinstance(source, yaml.MappingNode):
                        raise located(self.file, source.start_mark.line + 1, key, "<< merges a mapping or a list of mappings, nothing else")
                    self._keys(source, key)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise located(self.file, where, key, "keys are plain text, not a list or mapping")
            name = str(key_node.value)
            if name in seen:
                raise located(self.file, where, child_key(key, name), "duplicate key")
            seen.add(name)
        self.loader.flatten_mapping(node)


def load_yaml(path: Path) -> Node:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", hint="run dock32 inside the project, or pass --project DIR") from None
    except OSError as exc:
        raise ConfigError(one_line(f"{path}: cannot read: {exc.strerror or exc}")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise located(path, line, "", f"not valid UTF-8: byte 0x{data[exc.start]:02x}", hint="save the file as UTF-8") from None
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise located(path, line, "", f"not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else loader.line + 1
        raise located(path, line, "", f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise located(path, loader.line + 1, "", f"not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise located(path, loader.line + 1, "", "not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if root is None:
        return Node({}, path, 1, "")
    return _Converter(path).convert(root, "")


def with_overrides(root: Node, overrides: Sequence[str], source: str) -> Node:
    """root with each `dotted.key=value` of overrides set, the value read as YAML (`go386=softfloat`,
    `packaging.revision=2`). The values' errors then name the override: `DOCK32_SET:2: go386: ...`."""
    for index, override in enumerate(overrides, start=1):
        key, sep, text = override.partition("=")
        names = key.split(".")
        if not sep or not all(_PLAIN_NAME.fullmatch(name) for name in names):
            raise ConfigError(one_line(f"{source}: {override!r}: expected key=value, like go386=softfloat or packaging.distro=debian-13"))
        try:
            value = _plain_node(yaml.safe_load(text) if text else "", Path(source), index, key)
        except Exception as exc:  # PyYAML's converters fail in many ways (bad dates, tags); recursive aliases recurse
            raise ConfigError(one_line(f"{source}: {override!r}: cannot read the value ({type(exc).__name__}: {exc})")) from None
        root = _set(root, names, value, Path(source), index)
    return root


def _set(node: Node, names: list[str], value: Node, file: Path, line: int) -> Node:
    if not isinstance(node.value, dict):
        raise located(file, line, node.key, f"cannot set {'.'.join(names)} inside {_kind(node.value)}")
    children = dict(node.value)
    name, rest = names[0], names[1:]
    if rest:
        inner = children.get(name) or Node({}, file, line, child_key(node.key, name))
        children[name] = _set(inner, rest, value, file, line)
    else:
        children[name] = value
    return Node(children, node.file, node.line, node.key)


def _plain_node(value: Any, file: Path, line: int, key: str) -> Node:
    if isinstance(value, dict):
        return Node({str(k): _plain_node(v, file, line, child_key(key, str(k))) for k, v in value.items()}, file, line, key)
    if isinstance(value, list):
        return Node([_plain_node(v, file, line, f"{key}[{i}]") for i, v in enumerate(value)], file, line, key)
    return Node(value, file, line, key)
