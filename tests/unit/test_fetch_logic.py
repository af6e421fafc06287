"""Mirror discovery from apt's configuration, and URL expansion."""

from __future__ import annotations

from pathlib import Path

from dock32.model.settings import settings_from_env
from dock32.sources.fetch import apt_debian_mirror, expand_url


def test_deb822_sources_skip_security(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm\nComponents: main\n"
    )
    assert apt_debian_mirror((tmp_path,)) == "http://mirror.invalid/debian"


def test_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("# comment\ndeb [arch=amd64] http://other.invalid/debian bookworm main\n")
    assert apt_debian_mirror((tmp_path,)) == "http://other.invalid/debian"


def test_no_debian_source(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://archive.invalid/ubuntu noble main\n")
    assert apt_debian_mirror((tmp_path,)) is None


def test_expand_url_uses_the_configured_mirror(tmp_path: Path) -> None:
    settings = settings_from_env(tmp_path, env={"DOCK32_DEBIAN_MIRROR": "http://127.0.0.1:9/debian/"})
    assert expand_url("{debian_mirror}/pool/main/t/tini/x.tar.gz", settings) == "http://127.0.0.1:9/debian/pool/main/t/tini/x.tar.gz"
    assert expand_url("https://upstream.invalid/x.tar.gz", settings) == "https://upstream.invalid/x.tar.gz"
