"""buildcfg.yaml loading: the real config loads, and every kind of mistake names file, line and key."""

from __future__ import annotations

import calendar
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from dock32.core.errors import ConfigError
from dock32.model.config import ArchiveSource, CMakeBinary, GoBinary, GoModuleSource, load_config, load_packages, load_toolchains
from dock32.model.flavour import Flavour

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
        "ctr", "runc", "docker-init", "rootlesskit", "docker-buildx", "docker-compose",
    }
    assert config.flavour == Flavour("native32", "sse2")
    assert config.target == "native32-i386"
    runc = config.component("runc")
    assert runc.cgo and runc.c_libraries == ("libseccomp",)
    assert isinstance(config.component("tini").source, ArchiveSource)
    assert isinstance(config.component("tini").binaries[0], CMakeBinary)
    # docker/cli keeps its module file as vendor.mod (moby did too before v29): the key loads where it is set.
    modfiles = {c.source.modfile for c in config.components if isinstance(c.source, GoModuleSource)}
    assert "vendor.mod" in modfiles and modfiles <= {None, "vendor.mod"}
    engine = config.component("engine")
    assert isinstance(engine.source, GoModuleSource) and engine.source.patch_modules == ("github.com/ishidawataru/sctp", "github.com/moby/buildkit")
    # YAML merge keys: the shim inherits containerd's tags and ldflags but keeps its own package.
    shim = next(b for b in config.component("containerd").binaries if b.name == "containerd-shim-runc-v2")
    assert isinstance(shim, GoBinary)
    assert shim.package == "./cmd/containerd-shim-runc-v2"
    assert "static_build" in shim.tags
    # The release date is UTC and its epoch the same instant, whatever release is pinned.
    assert config.release.date.utcoffset() == timedelta(0)
    assert config.release.epoch == calendar.timegm(config.release.date.utctimetuple())


def test_minimal_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.flavour == Flavour("native32", "sse2")
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
    assert load_config(ROOT / "buildcfg.yaml").go_version in toolchains.go  # the shipped Go has a pinned toolchain
    from dock32.core.arch import Arch

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


# --- shell metacharacters: config values reach programs only as arguments, and those that become command-line
# words, file names or package fields are refused at load time if they carry anything a shell would act on.

SHELLISH = [";id", "$(id)", "`id`", "|id", "&id", "\nid", " id", "\0"]


@pytest.mark.parametrize("bad", SHELLISH)
@pytest.mark.parametrize(
    ("key", "old", "template"),
    [
        ("components.hello.version", 'version: "1.0.0"\n    commit', 'version: "1.0.0{bad}"\n    commit'),
        ("components.hello.commit", "commit: abc1234", 'commit: "abc1234{bad}"'),
        ("components.hello.source.module", "module: example.com/hello", 'module: "example.com/hello{bad}"'),
        ("components.hello.source.version", "version: v1.0.0", 'version: "v1.0.0{bad}"'),
        ("components.hello.source.modfile", "version: v1.0.0", 'version: v1.0.0\n      modfile: "vendor.mod{bad}"'),
        ("components.hello.source.patch_modules[0]", "version: v1.0.0", 'version: v1.0.0\n      patch_modules: ["example.com/dep{bad}"]'),
        ("components.hello.binaries.hello.package", "package: .", 'package: "./cmd{bad}"'),
        ("components.hello.binaries.hello.tags[0]", "package: .", 'package: .\n        tags: ["netgo{bad}"]'),
    ],
)
def test_shell_metacharacters_are_refused_at_load_time(tmp_path: Path, key: str, old: str, template: str, bad: str) -> None:
    escaped = bad.replace("\n", "\\n").replace("\0", "\\0")
    message = error_of(tmp_path, MINIMAL.replace(old, template.format(bad=escaped), 1))
    assert f": {key}: expected a string like" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", [";id", "$(id)", "`id`", "|id", "&id", "\nid", "\0", "$HOME"])
def test_ldflags_refuse_shell_syntax_but_keep_quoted_spaces(tmp_path: Path, bad: str) -> None:
    escaped = bad.replace("\n", "\\n").replace("\0", "\\0")
    message = error_of(tmp_path, MINIMAL.replace('ldflags: ["-X main.version={version}"]', f'ldflags: ["-X main.version={{version}}{escaped}"]'))
    assert message.startswith("buildcfg.yaml:17: components.hello.binaries.hello.ldflags[0]: ") and "has no place in a flag" in message
    quoted = MINIMAL.replace('ldflags: ["-X main.version={version}"]', """ldflags: ['-X "main.name=Docker Engine - Community"', -s]""")
    binary = load_config(write(tmp_path, quoted)).components[0].binaries[0]
    assert isinstance(binary, GoBinary) and binary.ldflags == ('-X "main.name=Docker Engine - Community"', "-s")


@pytest.mark.parametrize("flag", ["-X main.v={version", "-X main.v={version}}", "-X main.v={0}", "-X main.v={version!r}", "-X main.v={version.real}"])
def test_ldflag_templates_that_would_break_at_build_time(tmp_path: Path, flag: str) -> None:
    message = error_of(tmp_path, MINIMAL.replace("-X main.version={version}", flag))
    assert message.startswith("buildcfg.yaml:17: components.hello.binaries.hello.ldflags[0]: ")
    assert "unbalanced" in message or "unknown placeholder" in message


def test_names_cannot_hide_a_trailing_newline_or_a_path(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("  hello:\n    version", '  "hello\\n":\n    version'))
    assert message.startswith("buildcfg.yaml:8: components['hello\\n']: component names are lower-case words")
    message = error_of(tmp_path, MINIMAL.replace("      hello:\n", '      "../hello":\n'))
    assert message.startswith("buildcfg.yaml:16: components.hello.binaries.../hello: binary names are file names")


def test_a_commit_must_be_text_not_a_number_yaml_made(tmp_path: Path) -> None:
    # Unquoted, 0123456 is the octal number 42798 to YAML: taking str() of it would pin another commit.
    message = error_of(tmp_path, MINIMAL.replace("commit: abc1234", "commit: 0123456"))
    assert re.match(r"buildcfg\.yaml:9: components\.hello\.commit: expected a string like '\w+', got int 42798", message), message


def test_the_maintainer_is_one_line(tmp_path: Path) -> None:
    text = MINIMAL + 'packaging:\n  maintainer: "Jane Doe <jane@example.org>\\n"\n'
    assert error_of(tmp_path, text).startswith("buildcfg.yaml:19: packaging.maintainer: expected 'Name <email>'")
    text = MINIMAL + 'packaging:\n  maintainer: "Jane\\nDoe <jane@example.org>"\n'
    assert error_of(tmp_path, text).startswith("buildcfg.yaml:19: packaging.maintainer: expected 'Name <email>'")


def test_shipped_values_pass_the_strict_checks() -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    # Every pinned version comes through as written, a leading "v" and all.
    written = yaml.safe_load((ROOT / "buildcfg.yaml").read_text(encoding="utf-8"))["components"]
    assert {c.name: c.version for c in config.components} == {name: c["version"] for name, c in written.items()}
    tini = config.component("tini").binaries[0]
    assert isinstance(tini, CMakeBinary) and tini.args == ("-DCMAKE_POLICY_VERSION_MINIMUM=3.5",)


def test_apt_package_names_cannot_be_options_or_commands(tmp_path: Path) -> None:
    for name in ("go.yaml", "c.yaml", "host.yaml"):
        (tmp_path / name).write_text((ROOT / "toolchains" / name).read_text(encoding="utf-8"), encoding="utf-8")
    for bad in ("-oDebug::pkgProblemResolver=1", "make;id", "make && id"):
        (tmp_path / "host.yaml").write_text(f'apt: [dpkg-dev, "{bad}"]\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=r"^host.yaml:1: apt\[1\]: expected a string like 'libseccomp-dev:i386'"):
            load_toolchains(tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{binary: docker, to: /usr/bin/docker}", "{binary: docker, to: /usr/../../../etc/cron.d/x}", "expected a path inside the tree"),
        ("{file: containerd.io/config.toml,", "{file: ../../buildcfg.yaml,", "expected a path inside the tree"),
        ("{file: containerd.io/config.toml,", f"{{file: {'a' * 300},", "does not exist"),
        ('"engine:contrib/init/systemd/docker.socket"', '"engine:../../../../etc/shadow"', "expected a path inside the tree"),
        ('"engine:contrib/init/systemd/docker.socket"', '"engine:../x"', "expected a path inside the tree"),
        ('depends: ["containerd.io (>= {containerd})"', 'depends: ["containerd.io (>= {containerd)"', "unbalanced { or }"),
        ('version: "{buildx}{distro_suffix}"', 'version: "{buildx}{distro_suffix}\\nEssential: yes"', "control characters"),
        ("  docker-buildx-plugin:\n", '  "docker-buildx-plugin;id":\n', "package names are Debian package names"),
        ("    source: docker-ce\n", '    source: "docker-ce\\nX: y"\n', "expected a string like 'docker-ce'"),
    ],
)
def test_packages_refuse_paths_out_of_their_trees_and_broken_fields(tmp_path: Path, old: str, new: str, expected: str) -> None:
    shipped = ROOT / "packaging"
    for folder in ("files", "scripts"):
        shutil.copytree(shipped / folder, tmp_path / folder)
    text = (shipped / "packages.yaml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "packages.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_packages(tmp_path / "packages.yaml", load_config(ROOT / "buildcfg.yaml"))
    assert re.match(r"packages.yaml:\d+: packages\.", str(caught.value)) and expected in str(caught.value), str(caught.value)


def test_overrides_set_keys_for_one_run_and_name_themselves_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config = load_config(path, ("go386=softfloat", "packaging.distro=debian-13", "packaging.revision=3"))
    assert (config.flavour.go386, config.packaging.distro_name, config.packaging.revision) == ("softfloat", "debian-13", 3)
    assert config.target == "native32-i386-softfloat-debian-13"
    assert load_config(path).target == "native32-i386"
    with pytest.raises(ConfigError, match=r"^DOCK32_SET:2: packaging\.distro: 'debian-99' is not one of"):
        load_config(path, ("go386=sse2", "packaging.distro=debian-99"))
    with pytest.raises(ConfigError, match=r"^DOCK32_SET: 'go386': expected key=value"):
        load_config(path, ("go386",))
    for unreadable in ("release.date=2025-13-45", "components.x=&a [*a]", "go386=" + "[" * 2000):
        with pytest.raises(ConfigError, match=r"^DOCK32_SET: .*cannot read the value"):
            load_config(path, (unreadable,))
    with pytest.raises(ConfigError, match=r"^DOCK32_SET:1: go386: expected a string like 'sse2', got a mapping"):
        load_config(path, ("go386.x=1",))


def shipped_line(text: str) -> int:
    """The line of buildcfg.yaml that holds `text`, so the expected errors follow the file as it changes."""
    return next(n for n, line in enumerate((ROOT / "buildcfg.yaml").read_text(encoding="utf-8").splitlines(), 1) if text in line)


def test_the_release_components_spell_the_release_version_or_the_error_names_both_keys() -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    release = config.release.version
    assert {config.component(name).version for name in ("cli", "engine")} == {release}
    older = f"{int(release.split('.')[0]) - 1}.0.0"
    where = f"release.version (buildcfg.yaml:{shipped_line('  version: ' + repr(release).replace(chr(39), chr(34)))})"
    for key, value in [
        ("components.cli.version", older),
        ("components.cli.source.version", f"v{older}+incompatible"),
        ("components.engine.commit", f"docker-v{older}"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_config(ROOT / "buildcfg.yaml", (f"{key}={value}",))
        assert caught.value.message == f"DOCK32_SET:1: {key}: {value!r} is not the release's {release!r} of {where}"
        assert caught.value.hint == "a release has one version: change both, or run `dock32 bump`"
    # The release moved alone: the first component left behind is named at its own line.
    with pytest.raises(ConfigError) as caught:
        load_config(ROOT / "buildcfg.yaml", (f"release.version={older}",))
    expected = f"components.cli.version: {release!r} is not the release's {older!r} of release.version (DOCK32_SET:1)"
    assert re.fullmatch(r"buildcfg\.yaml:\d+: " + re.escape(expected), caught.value.message)
    with pytest.raises(ConfigError, match=r"^DOCK32_SET:1: release\.components\[1\]: no component 'moby' \(hint: one of "):
        load_config(ROOT / "buildcfg.yaml", ("release.components=[cli, moby]",))


def test_a_pre_release_module_version_spells_no_release() -> None:
    # moby's /v2 module tags release commits as v2.0.0-beta.N; only bump can tell which release one is.
    config = load_config(ROOT / "buildcfg.yaml", ("components.engine.source.version=v2.0.0-beta.99",))
    assert config.component("engine").source.version == "v2.0.0-beta.99"  # type: ignore[union-attr]
