"""runc built with GO386=softfloat (the real one, cgo and libseccomp): no SSE outside the runtime's CPU-checked code
in its Go part, none in its own C part (nsexec), and the C compiler was told so."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dock32.model.flavour import NO_SSE_CFLAGS
from dock32.toolchains.isa import functions_using_sse, unexpected_go_sse

from .conftest import CONFIG, dock32

pytestmark = pytest.mark.e2e

# runc's own C code (libcontainer/nsenter/nsexec.c and its helpers) and cgo's glue.
RUNC_C = re.compile(r"^(nsexec|nsenter|join_namespaces|update_uidmap|update_gidmap|update_setgroups|write_log|bail|_cgo_|x_cgo_|crosscall)")


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_softfloat_runc(tmp_path: Path) -> None:
    env = {"DOCK32_BUILD_DIR": str(tmp_path / "build"), "DOCK32_DIST_DIR": str(tmp_path / "dist")}
    result = dock32("build", "compile:runc", "--set", "go386=softfloat", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    target = f"{CONFIG.target}-softfloat"
    runc = tmp_path / "build" / target / "bin" / "runc"
    assert unexpected_go_sse(runc) == []
    sse = functions_using_sse(runc)
    c_side = {n: c for n, c in sse.items() if RUNC_C.match(n)}
    assert c_side == {}, c_side
    assert any(RUNC_C.match(n) for n in _symbols(runc)), "runc's C functions were not found by name: the C check saw nothing"
    log = (tmp_path / "build" / "logs" / target / "compile-runc.log").read_text()
    assert "GO386=softfloat" in log and all(flag in log for flag in NO_SSE_CFLAGS)


def _symbols(binary: Path) -> set[str]:
    import subprocess

    listing = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.split()}
