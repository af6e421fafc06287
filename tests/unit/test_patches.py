"""Series parsing and version ranges (applying patches runs GNU patch: see the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dock32.errors import PatchError
from dock32.patches import Patch, read_series


def series(tmp_path: Path, text: str, patches: tuple[str, ...] = ("a.patch", "b.patch")) -> Path:
    for name in patches:
        (tmp_path / name).write_text("--- a/x\n+++ b/x\n", encoding="utf-8")
    (tmp_path / "series").write_text(text, encoding="utf-8")
    return tmp_path


def test_order_options_and_comments(tmp_path: Path) -> None:
    parsed = read_series(series(tmp_path, "# fixes\nb.patch -p0\n\na.patch versions=>=1.3,<1.4  # only the 1.3 line\n"))
    assert [p.path.name for p in parsed] == ["b.patch", "a.patch"]
    assert parsed[0].strip == 0 and parsed[1].strip == 1
    assert parsed[1].versions == ((">=", (1, 3)), ("<", (1, 4)))


def test_no_series_means_no_patches(tmp_path: Path) -> None:
    assert read_series(tmp_path) == []


@pytest.mark.parametrize(
    ("version", "applies"),
    [("1.3.0", True), ("v1.3.3", True), ("1.3", True), ("1.4.0", False), ("1.2.9", False), ("v1.4.0-rc.1", False)],
)
def test_version_range(version: str, applies: bool) -> None:
    patch = Patch(path=Path("x.patch"), strip=1, versions=((">=", (1, 3)), ("<", (1, 4))))
    assert patch.applies_to(version) is applies


def test_missing_patch_names_series_line(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match=r"series:2: patch c.patch does not exist"):
        read_series(series(tmp_path, "a.patch\nc.patch\n"))


def test_bad_range_and_option(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match=r"series:1: bad version range '~1.3'"):
        read_series(series(tmp_path, "a.patch versions=~1.3\n"))
    with pytest.raises(PatchError, match=r"series:1: unknown option '--fuzz'"):
        read_series(series(tmp_path, "a.patch --fuzz\n"))
