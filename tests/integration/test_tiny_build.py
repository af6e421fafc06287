"""The whole pipeline on a tiny project: a cgo Go module with a dependency from a file:// GOPROXY, a C program
from an HTTP mirror, a patch series; built for 386 by the same code path as Docker, then run."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dock32.core.arch import Arch, build_machine_arch
from dock32.model.config import load_toolchains

from .conftest import PATCH, h1, is_elf_i386, ran_tasks, run_dock32

pytestmark = pytest.mark.integration

def test_build_runs_patched_386_binaries_then_noop_then_rebuilds_only_what_changed(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    first = run_dock32(root, "build", env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    bin_dir = root / "build" / "native32-i386" / "bin"
    for name in ("hello", "cinit"):
        assert is_elf_i386(bin_dir / name), name
    hello = subprocess.run([bin_dir / "hello"], capture_output=True, text=True, check=True).stdout
    assert hello.startswith("patched 1.0.0 dep-says-hi libseccomp 2.")
    assert subprocess.run([bin_dir / "cinit"], capture_output=True, text=True, check=True).stdout == "cinit 1.0 32-bit\n"

    manifest = json.loads((root / "build" / "native32-i386" / "manifest.json").read_text())
    entry = manifest["binaries"]["hello"]
    assert entry["sha256"] == hashlib.sha256((bin_dir / "hello").read_bytes()).hexdigest()
    assert entry["go_version_m"]["settings"]["GOARCH"] == "386"
    assert entry["go_version_m"]["settings"]["CGO_ENABLED"] == "1"
    assert "example.com/dep v1.0.0" in entry["go_version_m"]["deps"]
    assert manifest["components"]["hello"]["patches"][0]["name"] == "0001-greet.patch"
    assert manifest["source_date_epoch"] == 1762352372

    second = run_dock32(root, "build", env=env)
    assert second.returncode == 0 and ran_tasks(second.stdout) == []

    patch = root / "patches" / "hello" / "0001-greet.patch"
    patch.write_text(PATCH.replace('+\tfmt.Printf("patched', '+\tfmt.Printf("repatched'))
    third = run_dock32(root, "build", env=env)
    assert third.returncode == 0, third.stderr
    assert ran_tasks(third.stdout) == ["compile:hello", "manifest", "source:hello"]
    assert subprocess.run([bin_dir / "hello"], capture_output=True, text=True, check=True).stdout.startswith("repatched 1.0.0")


def test_same_inputs_give_byte_identical_binaries_in_another_checkout(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    assert run_dock32(root, "build", env=env).returncode == 0
    other = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("build"))
    result = run_dock32(other, "build", env=env)
    assert result.returncode == 0, result.stderr
    for name in ("hello", "cinit"):
        assert (root / "build/native32-i386/bin" / name).read_bytes() == (other / "build/native32-i386/bin" / name).read_bytes(), name
    assert (root / "build/native32-i386/manifest.json").read_text() == (other / "build/native32-i386/manifest.json").read_text()


def test_patch_that_does_not_apply_names_patch_file_and_hunk(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    (root / "patches" / "hello" / "0001-greet.patch").write_text(PATCH.replace("v.major, v.minor)\n+", "v.major, v.MINOR)\n+"))
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 5
    assert "error: source:hello: 0001-greet.patch: main.go: hunk #1 (at line 15) does not apply" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "build" / "native32-i386" / "src" / "hello").exists()


def test_compile_failure_shows_command_exit_code_and_log_tail(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    broken = PATCH.replace("+15,5", "+15,6").replace('+\tfmt.Printf("patched', '+\tundefinedThing()\n+\tfmt.Printf("patched')
    (root / "patches" / "hello" / "0001-greet.patch").write_text(broken)
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 6, result.stderr
    assert "compile hello: command failed with exit code 1:" in result.stderr
    assert "GOARCH=386" in result.stderr and "go build" in result.stderr
    assert "undefined: undefinedThing" in result.stderr
    log = root / "build" / "logs" / "native32-i386" / "compile-hello.log"
    assert "undefined: undefinedThing" in log.read_text()
    assert not (root / "build" / "native32-i386" / "bin" / "hello").exists()
    assert not (root / "build" / "native32-i386" / "bin" / "hello.partial").exists()


def test_module_hash_mismatch_builds_nothing(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    config = root / "buildcfg.yaml"
    text = config.read_text()
    good = text.split('sum: "', 1)[1].split('"', 1)[0]
    wrong = h1({"x": b"other"})
    config.write_text(text.replace(good, wrong))
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 3
    assert f"hash mismatch: expected {wrong}, got {good}; nothing was built from it" in result.stderr
    assert not (root / "build" / "native32-i386" / "bin" / "hello").exists()


def test_bad_config_is_one_line_with_file_line_and_key(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    config = root / "buildcfg.yaml"
    config.write_text(config.read_text().replace("    cgo: true\n", "    cgo: yes please\n"))
    result = run_dock32(root, "build", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: buildcfg.yaml:14: components.hello.cgo: expected true or false, got str 'yes please'"


def test_offline_rebuild_from_the_cache(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    assert run_dock32(root, "build", env=env).returncode == 0
    shutil.rmtree(root / "build")
    offline = run_dock32(root, "build", "--offline", env={**env, "GOPROXY": "http://127.0.0.1:9/unreachable"})
    assert offline.returncode == 0, offline.stderr
    assert is_elf_i386(root / "build" / "native32-i386" / "bin" / "hello")


def test_clean_removes_outputs_but_keeps_the_download_cache(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    assert run_dock32(root, "build", env=env).returncode == 0
    cleaned = run_dock32(root, "clean", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    target = root / "build" / "native32-i386"
    assert not (target / "bin" / "hello").exists() and not (target / "src" / "hello").exists()
    assert not (target / "manifest.json").exists()
    assert any(Path(env["DOCK32_CACHE_DIR"], "trees").iterdir())
    rebuilt = run_dock32(root, "build", "--offline", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert is_elf_i386(target / "bin" / "hello")


def test_missing_c_compiler_is_named_with_the_install_command(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    # The C toolchain this machine builds i386 with: i686-linux-gnu-gcc on amd64, gcc on i386.
    chosen = load_toolchains(root / "toolchains").c_for(build_machine_arch(), Arch.I386)
    assert chosen is not None
    c_yaml = root / "toolchains" / "c.yaml"
    c_yaml.write_text(re.sub(rf"^(\s+cc: ){re.escape(chosen.cc)}$", rf"\g<1>{chosen.cc}-404", c_yaml.read_text(), flags=re.MULTILINE))
    doctor = run_dock32(root, "doctor", env=env)
    assert doctor.returncode == 4
    assert re.search(rf"^MISSING C for i386 +C compiler {re.escape(chosen.cc)}-404 not found", doctor.stdout, re.MULTILINE), doctor.stdout
    assert f"apt-get install -y {chosen.apt_packages[0]}" in doctor.stdout
    build = run_dock32(root, "build", env=env)
    assert build.returncode == 4
    foreign = f"dpkg --add-architecture {chosen.foreign_arch} && " if chosen.foreign_arch else ""
    assert f"error: toolchain: C compiler {chosen.cc}-404 not found (hint: install them: {foreign}apt-get update" in build.stderr
