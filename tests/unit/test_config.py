"""buildcfg.yaml loading: the real config loads, and every kind of mistake names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dock32.config import ArchiveSource, CMakeBinary, GoBinary, GoModuleSource, load_config, load_toolchains
from dock32.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
release:
  version: "1.0.0"
  date: "2025-11-05T14:19:32Z"
go:
  version: "1.24.9"
components:
  hello:
    version: "1.0.0"
    commit: abc1234
    source:
      module: example.com/hello
      version: v1.0.0
      sum: "h1:XmG99IHcBmIAoC1PPg9eLBZPlTrNUAijsHLm8PjhBlg="
    binaries:
      hello:
        package: .
        ldflags: ["-X main.version={version}"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "buildcfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


def test_the_shipped_config_loads_with_every_component_and_binary() -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    names = {b.name for c in config.components for b in c.binaries}
    assert names == {
        "docker", "dockerd", "docker-proxy", "containerd", "containerd-shim-runc-v2",
        "ctr", "runc", "docker-init", "docker-buildx", "docker-compose",
    }
    assert config.strategy == "native32" and config.go386 == "sse2"
    assert config.target == "native32-i386"
    runc = config.component("runc")
    assert runc.cgo and runc.c_libraries == ("libseccomp",)
    assert isinstance(config.component("tini").source, ArchiveSource)
    assert isinstance(config.component("tini").binaries[0], CMakeBinary)
    engine = config.component("engine")
    assert isinstance(engine.source, GoModuleSource) and engine.source.modfile == "vendor.mod"
    assert engine.source.patch_modules == ("github.com/ishidawataru/sctp",)
    # YAML merge keys: the shim inherits containerd's tags and ldflags but keeps its own package.
    shim = next(b for b in config.component("containerd").binaries if b.name == "containerd-shim-runc-v2")
    assert isinstance(shim, GoBinary)
    assert shim.package == "./cmd/containerd-shim-runc-v2"
    assert "static_build" in shim.tags
    assert config.release.epoch == 1762352372


def test_minimal_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.go386 == "sse2" and config.strategy == "native32"
    assert config.component("hello").binaries[0] == GoBinary(name="hello", package=".", tags=(), ldflags=("-X main.version={version}",))


def test_a_release_date_with_an_offset_is_taken_as_utc(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL.replace('"2025-11-05T14:19:32Z"', '"2025-11-05T16:19:32+02:00"')))
    assert config.release.date.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert config.release.epoch == 1762352372


def test_unknown_top_level_key_suggests_the_closest(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "stratgy: native32\n")
    assert message.startswith("buildcfg.yaml:18: stratgy: unknown key")
    assert "did you mean 'strategy'?" in message


def test_unknown_strategy_lists_the_allowed_values(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "strategy: native64\n")
    assert message.startswith("buildcfg.yaml:18: strategy: 'native64' is not one of native32")


def test_bad_go386(tmp_path: Path) -> None:
    assert "go386: 'sse3' is not one of sse2, softfloat" in error_of(tmp_path, MINIMAL + "go386: sse3\n")


def test_wrong_type_names_the_key_and_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace('version: "1.0.0"\n    commit', "version: [1]\n    commit"))
    assert message.startswith("buildcfg.yaml:8: components.hello.version: expected a string")


def test_unquoted_go_version_that_yaml_reads_as_a_number(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace('version: "1.24.9"', "version: 1.24"))
    assert "buildcfg.yaml:5: go.version" in message and "as a number" in message


def test_unknown_component_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("    commit: abc1234\n", "    commit: abc1234\n    comit: x\n"))
    assert message.startswith("buildcfg.yaml:10: components.hello.comit: unknown key")
    assert "did you mean 'commit'?" in message


def test_bad_sum(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace('"h1:XmG99IHcBmIAoC1PPg9eLBZPlTrNUAijsHLm8PjhBlg="', "sha256:abc"))
    assert "buildcfg.yaml:13: components.hello.source.sum: expected a string like 'h1:" in message


def test_unknown_ldflag_placeholder(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("{version}", "{verison}"))
    assert "components.hello.binaries.hello.ldflags[0]: unknown placeholder {verison}" in message


def test_archive_source_needs_a_tree_hash(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        """      module: example.com/hello
      version: v1.0.0
      sum: "h1:XmG99IHcBmIAoC1PPg9eLBZPlTrNUAijsHLm8PjhBlg="
""",
        "      urls: [http://127.0.0.1/x.tar.gz]\n",
    )
    assert "components.hello.source: missing required key 'tree'" in error_of(tmp_path, text)


def test_duplicate_key(tmp_path: Path) -> None:
    assert "buildcfg.yaml:19: go386: duplicate key" in error_of(tmp_path, MINIMAL + "go386: sse2\ngo386: softfloat\n")


def test_same_binary_from_two_components(tmp_path: Path) -> None:
    text = MINIMAL + MINIMAL[MINIMAL.index("  hello:"):].replace("  hello:\n", "  other:\n", 1)
    assert "binary 'hello' is built by both hello and other" in error_of(tmp_path, text)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    assert error_of(tmp_path, "release: [\n").startswith("buildcfg.yaml:2: not valid YAML")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(Path("/nonexistent/buildcfg.yaml"))


def test_shipped_toolchains_load() -> None:
    toolchains = load_toolchains(ROOT / "toolchains")
    assert "1.24.9" in toolchains.go
    from dock32.arch import Arch

    cross = toolchains.c_for(Arch.AMD64, Arch.I386)
    assert cross is not None and cross.cc == "i686-linux-gnu-gcc" and "libseccomp-dev:i386" in cross.apt_packages
    native = toolchains.c_for(Arch.I386, Arch.I386)
    assert native is not None and native.cc == "gcc"


def test_patch_modules_are_module_paths(tmp_path: Path) -> None:
    with_modules = MINIMAL.replace("      version: v1.0.0\n", "      version: v1.0.0\n      patch_modules: [example.com/dep, ../escape]\n")
    message = error_of(tmp_path, with_modules)
    assert message.startswith("buildcfg.yaml:13: components.hello.source.patch_modules[1]: expected a string like 'github.com/ishidawataru/sctp'")
    config = load_config(write(tmp_path, with_modules.replace(", ../escape", "")))
    source = config.components[0].source
    assert isinstance(source, GoModuleSource) and source.patch_modules == ("example.com/dep",)
