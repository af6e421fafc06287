"""The Flavour: every difference between native32, softfloat and multiarch64 builds, decided in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from debian.debian_support import Version

from dock32.core.arch import Arch
from dock32.model.flavour import MULTIARCH64_PREINST, NO_SSE_CFLAGS, Flavour, FlavourError

SRC = Path(__file__).resolve().parents[2] / "src" / "dock32"

# strategy, go386 -> target, GOARCH/GO386, C flags, version suffix, apt component, preinst, no-SSE check
TABLE = [
    (("native32", "sse2"), "native32-i386", {"GOARCH": "386", "GO386": "sse2"}, (), "", "main", None, False),
    (("native32", "softfloat"), "native32-i386-softfloat", {"GOARCH": "386", "GO386": "softfloat"}, NO_SSE_CFLAGS, "~softfloat", "softfloat", None, True),
    (("multiarch64", "sse2"), "multiarch64-i386", {"GOARCH": "amd64"}, (), "+multiarch64", "multiarch64", MULTIARCH64_PREINST, False),
]


@pytest.mark.parametrize(("keys", "target", "go_env", "c_flags", "suffix", "component", "preinst", "no_sse"), TABLE)
def test_each_flavour_decides_its_build_and_its_packages(
    keys: tuple[str, str], target: str, go_env: dict[str, str], c_flags: tuple[str, ...], suffix: str, component: str, preinst: str | None, no_sse: bool
) -> None:
    flavour = Flavour(*keys)
    assert flavour.target_name == target
    assert flavour.go_env == go_env
    assert flavour.c_flags == c_flags
    assert flavour.version_suffix == suffix
    assert flavour.apt_component == component
    assert flavour.preinst == preinst
    assert flavour.checks_no_sse is no_sse
    assert flavour.deb_arch is Arch.I386
    assert Flavour.from_record(flavour.as_record()) == flavour


def test_only_multiarch64_has_programs_of_another_architecture() -> None:
    assert Flavour("multiarch64").host_arch is Arch.AMD64
    assert Flavour("multiarch64").programs_note == " (amd64 programs: multiarch64)"
    assert "binary-from-other-architecture" in Flavour("multiarch64").lintian_overrides
    assert Flavour().programs_note == Flavour(go386="softfloat").lintian_overrides == ""
    assert Flavour().as_record() == {"strategy": "native32", "go386": "sse2"}
    assert Flavour("multiarch64").as_record() == {"strategy": "multiarch64"}  # GO386 means nothing to amd64


def test_the_version_suffixes_sort_as_the_upgrade_paths_need() -> None:
    # softfloat sorts below sse2 (an sse2 box never "upgrades" to it), multiarch64 above (switching to it upgrades).
    base = "5:29.8.1-1~debian.12~bookworm"
    sse2, softfloat, multiarch64 = (Version(base + Flavour(*keys).version_suffix) for keys, *_ in TABLE)
    assert softfloat < sse2 < multiarch64


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (("multiarch64", "softfloat"), "softfloat is for 386 binaries; strategy multiarch64 builds amd64 ones"),
        (("native64", "sse2"), "unknown strategy 'native64': one of native32, multiarch64"),
        (("native32", "387"), "unknown go386 '387': one of sse2, softfloat"),
    ],
)
def test_what_is_not_a_flavour_is_refused(keys: tuple[str, str], message: str) -> None:
    with pytest.raises(FlavourError, match=re.escape(message)):
        Flavour(*keys)


def test_a_manifest_without_a_strategy_is_not_a_flavour() -> None:
    with pytest.raises(FlavourError, match="unknown strategy None"):
        Flavour.from_record({"go386": "sse2"})


def test_no_module_but_the_flavour_compares_strategy_or_go386() -> None:
    comparison = re.compile(r"\b(strategy|go386)\b['\"]?\]?\s*[!=]=|[!=]=\s*['\"](native32|multiarch64|sse2|softfloat)['\"]")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "flavour.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if comparison.search(line)
    ]
    assert found == []


def test_a_manifest_with_a_bad_go386_names_go386() -> None:
    with pytest.raises(FlavourError, match=r"^unknown go386 None: one of sse2, softfloat$"):
        Flavour.from_record({"strategy": "native32", "go386": None})
