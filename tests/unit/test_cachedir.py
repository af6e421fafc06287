"""What a prune keeps, decided without touching a cache: go.sum's lines, module path escapes, toolchain modules."""

from __future__ import annotations

from dock32.pipeline import cachedir


def test_go_sum_lines_say_whether_the_code_or_only_the_go_mod_is_needed() -> None:
    text = "example.com/a v1.0.0 h1:x=\nexample.com/a v1.0.0/go.mod h1:y=\nexample.com/b v0.1.0/go.mod h1:z=\n\ngarbage line\n"
    assert list(cachedir.sum_file_entries(text)) == [
        ("example.com/a", "v1.0.0", True), ("example.com/a", "v1.0.0", False), ("example.com/b", "v0.1.0", False),
    ]


def test_module_paths_are_unescaped_as_the_module_cache_escapes_them() -> None:
    assert cachedir.unescape("github.com/!burnt!sushi/toml") == "github.com/BurntSushi/toml"


def test_a_module_is_kept_for_its_code_or_its_go_mod_and_toolchains_by_the_pinned_go() -> None:
    wanted = cachedir.Needs(zips={("example.com/a", "v1.0.0")}, go_mods={("example.com/b", "v0.1.0")}, go_versions={"1.26.8"})
    assert cachedir._module_needed("example.com/a", "v1.0.0", True, wanted)
    assert not cachedir._module_needed("example.com/a", "v0.9.0", True, wanted)
    assert not cachedir._module_needed("example.com/b", "v0.1.0", True, wanted)  # its zip can go
    assert cachedir._module_needed("example.com/b", "v0.1.0", False, wanted)  # its go.mod stays
    assert cachedir._module_needed("golang.org/toolchain", "v0.0.1-go1.26.8.linux-amd64", True, wanted)
    assert not cachedir._module_needed("golang.org/toolchain", "v0.0.1-go1.25.3.linux-amd64", True, wanted)
    assert cachedir._go_version_of_toolchain("go1.24.9.linux-386.make.log") == "1.24.9"
