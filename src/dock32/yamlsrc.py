"""YAML loading that remembers where each value came from, so errors can name file and line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dock32.errors import ConfigError


@dataclass(frozen=True)
class Node:
    """A YAML value with its file, line and dotted key path."""

    value: Any  # dict[str, Node] | list[Node] | str | int | float | bool | None
    file: Path
    line: int
    key: str

    def error(self, message: str, hint: str | None = None) -> ConfigError:
        where = f"{self.file.name}:{self.line}"
        return ConfigError(f"{where}: {self.key}: {message}" if self.key else f"{where}: {message}", hint)

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


def _convert(node: yaml.Node, file: Path, key: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = str(key_node.value)
            if name in seen:
                raise ConfigError(f"{file.name}:{key_node.start_mark.line + 1}: {key + '.' if key else ''}{name}: duplicate key")
            seen.add(name)
        # Resolve `<<: *anchor` merges as safe_load does: merged keys first, so the explicit ones win.
        yaml.SafeLoader("").flatten_mapping(node)
        children: dict[str, Node] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            children[name] = _convert(value_node, file, f"{key}.{name}" if key else name)
        return Node(children, file, line, key)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(item, file, f"{key}[{i}]") for i, item in enumerate(node.value)], file, line, key)
    # Scalars: let PyYAML's safe resolver decide int/bool/str, exactly as safe_load would.
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    return Node(value, file, line, key)


def load_yaml(path: Path) -> Node:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", hint="run dock32 inside the project, or pass --project DIR") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path.name}{line}: not valid YAML: {problem}") from None
    if root is None:
        return Node({}, path, 1, "")
    return _convert(root, path, "")
