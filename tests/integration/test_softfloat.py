"""GO386=softfloat: the binaries use no SSE register outside the runtime code that checks the CPU first, and the
C parts are compiled without SSE too; the sse2 build of the same sources does use SSE (the check can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from dock32.model.flavour import NO_SSE_CFLAGS
from dock32.toolchains.isa import functions_using_sse, unexpected_go_sse

from .conftest import run_dock32

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_softfloat_binaries_use_sse_only_where_the_runtime_checks_the_cpu(tiny) -> None:  # type: ignore[no-untyped-def]
    root, env = tiny
    soft = run_dock32(root, "build", "--set", "go386=softfloat", env=env)
    assert soft.returncode == 0, soft.stderr
    soft_bin = root / "build" / "native32-i386-softfloat" / "bin"
    assert unexpected_go_sse(soft_bin / "hello") == []
    hello = functions_using_sse(soft_bin / "hello")
    ours_in_c = {n: c for n, c in hello.items() if n.startswith(("_cgo_", "x_cgo_", "crosscall"))}
    assert ours_in_c == {}, ours_in_c
    assert "main" not in functions_using_sse(soft_bin / "cinit")
    log = (root / "build" / "logs" / "native32-i386-softfloat" / "compile-cinit.log").read_text()
    assert all(flag in log for flag in NO_SSE_CFLAGS), "the C compiler was not told to leave SSE out"

    sse2 = run_dock32(root, "build", env=env)
    assert sse2.returncode == 0, sse2.stderr
    sse2_hello = root / "build" / "native32-i386" / "bin" / "hello"
    assert unexpected_go_sse(sse2_hello), "the sse2 build has no SSE outside the runtime either: the check could not fail"


FLOATS_GO = """\
package main

import (
\t"fmt"
\t"os"
)

//go:noinline
func scale(x float64) float64 { return x*1.5 + float64(len(os.Args)) }

func main() { fmt.Println(scale(2)) }
"""


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_programs_linked_without_symbols_are_read_by_their_go_function_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """containerd and the plugins are linked with -s: objdump finds no function names there, and the check names
    functions from Go's own table instead (tools/gofuncs.go). An sse2 build's float code is found; softfloat's is not."""
    (tmp_path / "main.go").write_text(FLOATS_GO)
    (tmp_path / "go.mod").write_text("module example.com/floats\n\ngo 1.21\n")
    found = {}
    for go386 in ("sse2", "softfloat"):
        env = {**os.environ, "GOARCH": "386", "GO386": go386, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": ""}
        subprocess.run(["go", "build", "-ldflags=-s -w", "-o", f"floats-{go386}", "."], cwd=tmp_path, env=env, check=True)
        binary = tmp_path / f"floats-{go386}"
        assert "main.scale" not in functions_using_sse(binary), "objdump found symbols: this binary is not stripped"
        found[go386] = unexpected_go_sse(binary, "go", tmp_path / "tools")
    assert "main.scale" in found["sse2"], found["sse2"][:10]
    assert found["softfloat"] == []
