"""The softfloat flavour's scenario: no SSE instruction where a CPU without SSE2 would meet it."""

from __future__ import annotations

import json

from dock32.checks.scenarios.check import fail
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.toolchains.isa import unexpected_go_sse
from dock32.toolchains.toolchain import ResolvedToolchain


def no_sse_outside_runtime_checks(context: Context) -> str:
    """On CPUs without SSE2 any SSE instruction is a SIGILL: the Go code of every Go program has none, except
    where Go's runtime checks the CPU first. Programs linked with -s (containerd, the plugins) are read with
    Go's own function table. docker-init is C: its flags are checked where it is compiled (tests)."""
    layout = context.layout
    manifest = json.loads(layout.manifest.read_text(encoding="utf-8"))
    go = ResolvedToolchain.from_file(layout.toolchain_record).go
    go_programs = sorted(name for name, entry in manifest["binaries"].items() if entry.get("go_version_m"))
    found = {name: unexpected_go_sse(layout.binary(name), go, context.scratch / "tools") for name in go_programs}
    bad = {name: functions[:3] for name, functions in found.items() if functions}
    if bad:
        fail(f"SSE in Go code of a softfloat build: {bad}")
    return f"{len(go_programs)} Go programs: SSE only in the runtime's CPU-checked functions"


NO_SSE_OUTSIDE_RUNTIME_CHECKS = Scenario(
    "softfloat: no SSE outside the runtime's CPU checks", no_sse_outside_runtime_checks, applies_to=lambda flavour: flavour.checks_no_sse
)
