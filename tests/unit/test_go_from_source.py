"""The pinned Go built from source where no toolchain module is pinned for the build machine (i386): which Go may
bootstrap it, and the apt source `make setup` adds for one."""

from __future__ import annotations

from pathlib import Path

import pytest

from dock32.toolchains.hostsetup import enable_suite
from dock32.toolchains.toolchain import BOOTSTRAP_GO_PACKAGES, bootstrap_minimum, likely_bootstrap_minimum


def test_the_minimum_is_read_from_make_bash(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "make.bash").write_text("#!/usr/bin/env bash\n# needs Go >= 1.22.6\nbootgo=1.22.6\nset -e\n")
    assert bootstrap_minimum(tmp_path) == (1, 22, 6)
    (tmp_path / "src" / "make.bash").write_text("#!/usr/bin/env bash\n")
    assert bootstrap_minimum(tmp_path) == ()


def test_the_likely_minimum_before_the_source_is_here() -> None:
    # Go's rule (go.dev/doc/install/source): Go 1.N needs Go 1.M, M = N-2 rounded down to even; the point release is
    # the one make.bash names (bootgo=1.22.6 in Go 1.24.9, bootgo=1.24.6 in Go 1.26.8).
    assert likely_bootstrap_minimum("1.24.9") == (1, 22, 6)
    assert likely_bootstrap_minimum("1.25.3") == (1, 22, 6)
    assert likely_bootstrap_minimum("1.26") == (1, 24, 6)
    assert likely_bootstrap_minimum("1.26.8") == (1, 24, 6)
    assert likely_bootstrap_minimum("1.27.0") == (1, 24, 6)
    assert likely_bootstrap_minimum("1.28.1") == (1, 26, 6)
    assert likely_bootstrap_minimum("1.22.0") == likely_bootstrap_minimum("1.23.5") == (1, 20, 6)
    assert likely_bootstrap_minimum("1.21.13") == (1, 17, 13)
    assert likely_bootstrap_minimum("1.19.8") == (1, 4)


def test_bookworm_takes_its_go_from_backports() -> None:
    # bookworm's golang-go is 1.19; bookworm-backports' (1.23) can bootstrap Go 1.24 (1.22.6 and later), the first
    # step of the chain to the pinned Go.
    assert BOOTSTRAP_GO_PACKAGES["bookworm"] == ("golang-go", "bookworm-backports")


def test_enable_suite_adds_the_machines_mirror_once(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://mirror.invalid/debian bookworm main\n")
    enable_suite("bookworm-backports", tmp_path)
    added = tmp_path / "sources.list.d" / "dock32-bookworm-backports.list"
    assert added.read_text() == "deb http://mirror.invalid/debian bookworm-backports main\n"
    enable_suite("bookworm-backports", tmp_path)
    assert sorted(p.name for p in (tmp_path / "sources.list.d").iterdir()) == ["dock32-bookworm-backports.list"]


def test_enable_suite_leaves_a_source_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://mirror.invalid/debian bookworm main\ndeb http://mirror.invalid/debian bookworm-backports main\n")
    enable_suite("bookworm-backports", tmp_path)
    assert list((tmp_path / "sources.list.d").iterdir()) == []


def test_enable_suite_without_a_mirror_says_so(tmp_path: Path) -> None:
    from dock32.core.errors import ToolchainError

    (tmp_path / "sources.list.d").mkdir()
    with pytest.raises(ToolchainError, match="no Debian mirror"):
        enable_suite("bookworm-backports", tmp_path)
