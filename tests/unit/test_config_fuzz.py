"""Property-based fuzzing of the config loaders: random and mutated buildcfg.yaml, toolchains/*.yaml and packages.yaml.

Whatever the input, a loader either returns a config that the build can use, or raises a ConfigError that prints as
one line `file:line: ...`. Any other exception is a traceback the user would see, and so a bug.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from dock32.build.steps import go_build_argv
from dock32.core.errors import ConfigError
from dock32.model.config import BuildConfig, GoBinary, GoModuleSource, load_config, load_packages, load_toolchains
from dock32.packaging.debs import package_version, placeholder_values

ROOT = Path(__file__).resolve().parents[2]
BUILDCFG = (ROOT / "buildcfg.yaml").read_text(encoding="utf-8")
TOOLCHAINS = {name: (ROOT / "toolchains" / name).read_text(encoding="utf-8") for name in ("go.yaml", "c.yaml", "host.yaml")}
PACKAGES = (ROOT / "packaging" / "packages.yaml").read_text(encoding="utf-8")
CONFIG = load_config(ROOT / "buildcfg.yaml")

# No example database: failures print the input to reproduce them. DOCK32_FUZZ_EXAMPLES=5000 for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("DOCK32_FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def scratch() -> Iterator[Path]:
    # tmp_path is per test, not per example, so each example gets its own folder.
    with tempfile.TemporaryDirectory(prefix="dock32-fuzz-") as name:
        yield Path(name)


T = TypeVar("T")


def outcome(file_name: str, load: Callable[[], T]) -> T | None:
    """The property: the loader returns, or fails with one clean `file:line: ...` line."""
    try:
        loaded = load()
    except ConfigError as exc:
        message = str(exc)
        note(f"error: {re.sub(r'[^a-z ]', '', message.split(': ', 2)[-1])[:40]}")
        assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, f"not one line: {message!r}"
        assert message.isprintable(), f"control characters in: {message!r}"
        assert re.match(rf"{re.escape(file_name)}:\d+: \S", message), f"does not start with {file_name}:LINE: {message!r}"
        return None
    note("loaded")
    return loaded


def note(what: str) -> None:
    """Tally of outcomes, shown by pytest --hypothesis-show-statistics: how many examples got how far."""
    if currently_in_test_context():
        event(what)


def usable(config: BuildConfig) -> None:
    """A config that loaded must also work where its values are used: the go build command line."""
    for component in config.components:
        for binary in component.binaries:
            if isinstance(binary, GoBinary):
                argv = go_build_argv(component, binary, config.release.date, "go", Path("out"))
                assert all("\n" not in arg and "\0" not in arg for arg in argv), argv
    assert isinstance(config.release.epoch, int)


# --- strategies -------------------------------------------------------------------------------

# Plain scalars that YAML reads as something surprising, and fragments of YAML syntax.
TRICKY = [
    "~", "null", "yes", "no", "on", "off", "true", "False", "0", "-1", "1.5", "1e400", ".nan", "-.inf", "0x1F", "0o17", "0b_", "0b",
    "1_000", "+_", "0:0:0", "190:20:30", "2025-11-05", "2025-13-45", "2025-02-30 10:00:00", "2025-11-05 25:00:00",
    "2025-11-05T14:19:32+99:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "'0001-01-01T00:00:00+01:00'",
    "!!binary x", "!!binary AAAA", "!!int abc", "!!float x", "!!bool maybe", "!!timestamp 2025-99-99", "!!null x", "!!str", "!!map []",
    "!!seq {}", "!!set {a}", "!!omap [a]", "!!pairs [1]", "!!python/object:os.system x", "!!python/name:os.system ''", "!foo bar",
    "&a [*a]", "&b {x: *b}", "&c {<<: *c}", "*nope", "{<<: 1}", "{<<: [1, 2]}", "{<<: [[1]]}", "{<<: *nope}", "[1, [2, [3]]]",
    "{a: {b: c}}", "{? [a]: b}", "{[1, 2]: x}", "{{a: b}: c}", "{a: 1, a: 2}", "{1: x, '1': y}", "'unterminated", '"\\x"', '"\\uZZZZ"',
    '"a\\nb"', '"a\\0b"', '"\\u2028"', '"tab\\there"', "|", ">-", "|9", "? a", "@foo", "`x`", "%TAG ! !", "---", "...", "--- !!str",
    "a: b: c", "[" * 300, "{" * 300, "- " * 300, "[" * 2000 + "]" * 2000, "[" * 100 + "]" * 100,
    "[]", "{}", "''", '""', "-", ":", "#", "? ", "&", "*", "!", "<<", "v1.0;rm -rf /",
    "1.0$(id)", "1.0`id`", "a|b", "a&b", "a b", "{version", "{version}}", "{0}", "{version!r}", "{version:>99}", "{version.real}",
    "{a-b}", "{{version}}", "./cmd/../../x", "/abs", "../up", "\u00e9t\u00e9", "\ufeff", "a" * 300,
]
# Strings that are almost right, or right but for one character that a shell or a template would act on; the right
# ones are the shipped pins, whichever they are.
GO_SUM = next(c.source.sum for c in CONFIG.components if isinstance(c.source, GoModuleSource))
NEAR = [
    CONFIG.go_version, CONFIG.go_version + "\n", CONFIG.release.version, CONFIG.release.version + ";id",
    CONFIG.component("containerd").version, "abc1234", "abc$(id)", GO_SUM,
    "i386", "amd64", "sse2", "native32", "debian-12", "xz", "-w", "-X a={version}", "-X a={version", "-X a={commit}}", "-X a={0}",
    "-X a={build_time!r}", "-X a=`id`", '-X "a=b c"', "-X a=$HOME", "./cmd/docker", "./cmd/docker|x", ".", "github.com/docker/cli",
    "github.com/docker/cli&", "engine", "engine\n", "docker", "netgo", "netgo,x", "/usr/bin/x", "/usr/../../x", "{unitdir}/x",
    "0755", "0644", "5:{engine}{distro_suffix}", "{engine", "{nope}", "{engine!s}", "x (>= {containerd})", "a\nb: c",
    "containerd.io/config.toml", "../../etc/passwd", "engine:contrib/init", "engine:../x", "gcc", "libseccomp-dev:i386", "-oFoo=1",
]


def flow(value: Any) -> str:
    """A generated value as one line of YAML flow syntax (JSON is YAML)."""
    return json.dumps(value, ensure_ascii=False)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(NEAR),
)
# Keys the loaders know, so random documents get past the first "unknown key" now and then.
KNOWN_KEYS = [
    "release", "version", "date", "strategy", "go386", "go", "components", "packaging", "commit", "source", "binaries", "cgo",
    "c_libraries", "module", "sum", "modfile", "patch_modules", "urls", "tree", "package", "tags", "ldflags", "cmake_target",
    "cmake_args", "output", "distro", "compression", "maintainer", "gpg_key", "revision", "c", "build", "host", "cc", "cflags",
    "pkg_config_libdir", "apt", "foreign_arch", CONFIG.go_version, "linux-amd64", "linux-386", "packages", "section", "description",
    "pre_depends", "depends", "recommends", "conflicts", "replaces", "provides", "enhances", "license_from", "copyright",
    "scripts", "files", "to", "binary", "file", "run", "mode", "conffile", "replace", "engine", "docker", "<<",
]
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12)
# A replacement for one value: generated data, or a YAML fragment that reads as something odd.
replacements = st.one_of(values.map(flow), st.sampled_from(TRICKY), st.text(max_size=30))

lines_ops = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**4)),
    st.tuples(st.just("duplicate"), st.integers(0, 10**4)),
    st.tuples(st.just("swap"), st.integers(0, 10**4), st.integers(0, 10**4)),
    st.tuples(st.just("value"), st.integers(0, 10**4), replacements),
    st.tuples(st.just("insert_key"), st.integers(0, 10**4), st.integers(0, 8), keys, replacements),
    st.tuples(st.just("indent"), st.integers(0, 10**4), st.integers(-4, 4)),
)
byte_ops = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10**5)),
    st.tuples(st.just("bytes"), st.integers(0, 10**5), st.binary(min_size=1, max_size=6) | st.sampled_from([b"\t", b"\xff", b"\xc3", b"\0", b"\r", b"\x85"])),
)
mutations = st.lists(st.one_of(lines_ops, byte_ops), min_size=1, max_size=5)

_VALUE_LINE = re.compile(r"^(\s*(?:- )?[^#:\s][^:#]*:[ ]|\s*- )(.*)$")


def mutate(text: str, ops: list[tuple[Any, ...]]) -> bytes:
    """Apply line edits to the text, then byte edits (truncation, stray and invalid UTF-8 bytes) to its encoding."""
    lines = text.splitlines()
    for op in ops:
        kind = op[0]
        if kind in ("truncate", "bytes"):
            continue
        if not lines:
            lines = [""]
        i = op[1] % len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = op[2] % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value":
            found = _VALUE_LINE.match(lines[i])
            lines[i] = f"{found.group(1)}{op[2]}" if found else f"{lines[i]} {op[2]}"
        elif kind == "insert_key":
            lines.insert(i, f"{' ' * op[2]}{flow(op[3])}: {op[4]}")
        elif kind == "indent":
            lines[i] = " " * op[2] + lines[i] if op[2] > 0 else lines[i][min(-op[2], len(lines[i]) - len(lines[i].lstrip(' '))):]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    for op in ops:
        if op[0] == "truncate":
            data = data[: op[1] % (len(data) + 1)]
        elif op[0] == "bytes":
            at = op[1] % (len(data) + 1)
            data = data[:at] + op[2] + data[at:]
    return data


def replace_at(document: Any, path: list[int], value: Any) -> Any:
    """The parsed document with the subtree that `path` picks (indexes taken modulo each level's size) replaced by value."""
    if not path or not isinstance(document, (dict, list)) or not document:
        return value
    if isinstance(document, dict):
        key = list(document)[path[0] % len(document)]
        return {**document, key: replace_at(document[key], path[1:], value)}
    i = path[0] % len(document)
    return [*document[:i], replace_at(document[i], path[1:], value), *document[i + 1:]]


def dump(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode("utf-8")


# A document: the real one with its text mutated, with one leaf or subtree replaced, or random data.
def documents(real: str) -> st.SearchStrategy[bytes]:
    parsed = yaml.safe_load(real)
    return st.one_of(
        mutations.map(lambda ops: mutate(real, ops)),
        st.tuples(st.lists(st.integers(0, 50), min_size=10, max_size=10), scalars).map(lambda pv: dump(replace_at(parsed, pv[0], pv[1]))),
        st.tuples(st.lists(st.integers(0, 50), max_size=6), values).map(lambda pv: dump(replace_at(parsed, pv[0], pv[1]))),
        values.map(dump),
        st.dictionaries(st.sampled_from(list(parsed)), values, max_size=len(parsed)).map(dump),
    )


# --- buildcfg.yaml ----------------------------------------------------------------------------


@FUZZ
@given(data=documents(BUILDCFG))
def test_buildcfg_fuzz_loads_or_fails_on_one_line(data: bytes) -> None:
    with scratch() as folder:
        (folder / "buildcfg.yaml").write_bytes(data)
        config = outcome("buildcfg.yaml", lambda: load_config(folder / "buildcfg.yaml"))
        if config is not None:
            usable(config)


@FUZZ
@given(text=st.text(max_size=400))
def test_buildcfg_fuzz_arbitrary_text(text: str) -> None:
    with scratch() as folder:
        (folder / "buildcfg.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        outcome("buildcfg.yaml", lambda: load_config(folder / "buildcfg.yaml"))


# --- toolchains/ ------------------------------------------------------------------------------


@FUZZ
@given(which=st.sampled_from(sorted(TOOLCHAINS)), data=st.data())
def test_toolchains_fuzz_loads_or_fails_on_one_line(which: str, data: st.DataObject) -> None:
    content = data.draw(documents(TOOLCHAINS[which]), label=which)
    with scratch() as folder:
        for name, text in TOOLCHAINS.items():
            (folder / name).write_text(text, encoding="utf-8")
        (folder / which).write_bytes(content)
        toolchains = outcome(which, lambda: load_toolchains(folder))
        if toolchains is not None:
            for pin in toolchains.go.values():
                assert all(isinstance(v, str) for v in pin.sums.values())


# --- packaging/packages.yaml ------------------------------------------------------------------


@FUZZ
@given(data=documents(PACKAGES))
def test_packages_fuzz_loads_or_fails_on_one_line(data: bytes) -> None:
    with scratch() as folder:
        packaging = folder / "packaging"
        shutil.copytree(ROOT / "packaging" / "files", packaging / "files")
        shutil.copytree(ROOT / "packaging" / "scripts", packaging / "scripts")
        (packaging / "packages.yaml").write_bytes(data)
        packages = outcome("packages.yaml", lambda: load_packages(packaging / "packages.yaml", CONFIG))
        for package in packages or ():
            # Templates that loaded also fill in: no stray braces or unknown placeholders left for the build to trip on.
            package_version(package, CONFIG, CONFIG.packaging)
            relations = (package.pre_depends, package.depends, package.recommends, package.conflicts, package.replaces, package.provides, package.enhances)
            for item in (item for relation in relations for item in relation):
                assert "\n" not in item.format(**placeholder_values(CONFIG, CONFIG.packaging))


# --- inputs the fuzzer found, kept as plain regression tests -----------------------------------

# The release date line as buildcfg.yaml writes it, whichever release it pins.
DATE = next(line.strip() for line in BUILDCFG.splitlines() if line.lstrip().startswith("date: "))
FOUND = {
    # Each was a traceback before: (text in the real buildcfg.yaml, its replacement).
    "invalid UTF-8 (UnicodeDecodeError)": ("strategy: native32", "strategy: \udc80"),
    "timestamp out of range (ValueError)": (DATE, "date: 2025-13-45"),
    "timestamp offset of 99 hours (ValueError)": (DATE, "date: 2025-11-05T14:19:32+99:00"),
    "date moved before year 1 (OverflowError)": (DATE, "date: 0001-01-01T00:00:00+01:00"),
    "quoted date moved past year 9999 (OverflowError)": (DATE, "date: '9999-12-31T23:59:59-01:00'"),
    "binary int without digits (ValueError)": ("strategy: native32", "strategy: 0b_"),
    "!!int on text (ValueError)": ("strategy: native32", "strategy: !!int abc"),
    "!!bool on text (KeyError)": ("strategy: native32", "strategy: !!bool maybe"),
    "!!timestamp on text (AttributeError)": ("strategy: native32", "strategy: !!timestamp x"),
    "!!binary on text (ConstructorError)": ("strategy: native32", "strategy: !!binary x"),
    "unknown tag (ConstructorError)": ("strategy: native32", "strategy: !!python/object:os.system x"),
    "recursive alias in a list (RecursionError)": ("strategy: native32", "strategy: &a [*a]"),
    "recursive alias in a mapping (RecursionError)": ("strategy: native32", "strategy: &b {x: *b}"),
    "merge of a scalar (ConstructorError)": ("strategy: native32", "strategy: {<<: 1}"),
    "merge of a list of lists (ConstructorError)": ("strategy: native32", "strategy: {<<: [[1]]}"),
    "nesting deeper than the parser's recursion (RecursionError)": ("strategy: native32", "strategy: " + "[" * 2000 + "]" * 2000),
    # These were ConfigErrors already, but not one clean line, or not naming the real problem.
    "newline in a key (two-line message)": ("  cli:\n", '  "cl\\ni":\n'),
    "control character (no line number)": ("strategy: native32", "strategy: \x1f"),
    "list as a key (a Python repr as the key path)": ("  cli:\n", "  [1, 2]:\n"),
    "aliases expanding a billion times (memory and time)": (
        "strategy: native32",
        "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)),
    ),
}


@pytest.mark.parametrize(("old", "new"), FOUND.values(), ids=FOUND.keys())
def test_found_inputs_fail_on_one_line(old: str, new: str) -> None:
    assert old in BUILDCFG
    with scratch() as folder:
        (folder / "buildcfg.yaml").write_bytes(BUILDCFG.replace(old, new, 1).encode("utf-8", errors="surrogateescape"))
        assert outcome("buildcfg.yaml", lambda: load_config(folder / "buildcfg.yaml")) is None, "loaded"


def test_a_mapping_with_merged_keys_can_be_aliased_again() -> None:
    # The duplicate-key check saw the merged keys beside the explicit ones the second time round.
    text = BUILDCFG.replace("      containerd-shim-runc-v2:\n", "      containerd-shim-runc-v2: &shim\n")
    text = text.replace("      ctr:\n", "      ctr2: *shim\n      ctr:\n")
    with scratch() as folder:
        (folder / "buildcfg.yaml").write_text(text, encoding="utf-8")
        config = load_config(folder / "buildcfg.yaml")
    packages = {b.name: b for b in config.component("containerd").binaries}
    assert packages["ctr2"] == dataclasses.replace(packages["containerd-shim-runc-v2"], name="ctr2")
