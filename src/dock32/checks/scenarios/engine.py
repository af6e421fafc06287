"""Scenarios on the daemons themselves: what dockerd, containerd and runc are and how they run."""

from __future__ import annotations

import json
import tomllib

from dock32.checks.scenarios.check import expect, expect_equal, fail
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import GOARCH, Context, Scenario


def version(context: Context) -> str:
    cli, engine = context.config.component("cli").version, context.config.component("engine").version
    template = "{{.Client.Os}}/{{.Client.Arch}} {{.Client.Version}} {{.Server.Os}}/{{.Server.Arch}} {{.Server.Version}}"
    out = context.sandbox.docker("version", "--format", template).stdout.strip()
    return expect_equal(out, f"linux/{context.goarch} {cli} linux/{context.goarch} {engine}", "docker version")


def info(context: Context) -> str:
    template = "{{.OSType}} {{.Driver}} cgroup-v{{.CgroupVersion}} {{json .SecurityOptions}} {{.DefaultRuntime}}"
    out = context.sandbox.docker("info", "--format", template).stdout.strip()
    expect(out.startswith("linux ") and "seccomp" in out and out.endswith(" runc"), f"docker info: {out}")
    return out


def runtimes(context: Context) -> str:
    """containerd and runc are the builds the config pins, as dockerd and the programs themselves report them; runc
    has seccomp with the libseccomp the build linked and, as moby builds it, no libpathrs."""
    sandbox = context.sandbox
    containerd, runc = context.config.component("containerd"), context.config.component("runc")
    reported = json.loads(sandbox.docker("version", "--format", "{{json .Server.Components}}").stdout)
    seen = {c["Name"]: (c["Version"].removeprefix("v"), (c.get("Details") or {}).get("GitCommit")) for c in reported}
    for component in (containerd, runc):
        expected = (component.version.removeprefix("v"), component.commit)
        expect(seen.get(component.name) == expected, f"dockerd reports {component.name} {seen.get(component.name)}, expected {expected}")
    words = sandbox.exec(["/usr/bin/containerd", "--version"]).stdout.split()
    expect(words[-2:] == [containerd.version, containerd.commit], f"containerd --version: {' '.join(words)}")
    runc_lines = sandbox.exec(["/usr/bin/runc", "--version"]).stdout.splitlines()
    fields = dict(line.split(": ", 1) for line in runc_lines[1:] if ": " in line)
    expect(runc_lines[0].removeprefix("runc version ").removeprefix("v") == runc.version.removeprefix("v"), runc_lines[0])
    expect(fields.get("commit") == runc.commit, f"runc commit {fields.get('commit')!r}, expected {runc.commit!r}")
    expect("libpathrs" not in fields, f"runc was built with libpathrs {fields.get('libpathrs')}")
    manifest = json.loads(context.layout.manifest.read_text(encoding="utf-8"))
    linked = [lib.get("version") for lib in manifest["components"]["runc"].get("c_libraries", []) if lib["name"] == "libseccomp"]
    expect("libseccomp" in fields, f"runc has no seccomp: {runc_lines}")
    if linked not in ([], [None], [fields["libseccomp"]]):
        fail(f"runc reports libseccomp {fields['libseccomp']}, the build linked {linked[0]}")
    return f"containerd {containerd.version} ({containerd.commit}), runc {runc.version} ({runc.commit}) with libseccomp {fields['libseccomp']}"


def containerd_config(context: Context) -> str:
    """The running containerd has the packaged config: every plugin it disables (containerd 2.x's CRI plugins) is
    absent, and nothing in it is refused. Deprecations containerd reports (cgroup v1 here) are shown, not failed."""
    sandbox = context.sandbox
    shipped = tomllib.loads(sandbox.read_file("/etc/containerd/config.toml").decode())
    dumped = sandbox.exec(["/usr/bin/containerd", "--config", "/etc/containerd/config.toml", "config", "dump"])
    expect("Ignoring unknown key" not in dumped.stderr, dumped.stderr.strip())
    disabled = set(shipped.get("disabled_plugins", []))
    expect(disabled <= set(tomllib.loads(dumped.stdout)["disabled_plugins"]), dumped.stdout[:400])
    rows = [line.split() for line in sandbox.exec(["/usr/bin/ctr", "plugins", "ls"]).stdout.splitlines()[1:]]
    loaded = {f"{row[0]}.{row[1]}" for row in rows if len(row) >= 4 and row[-1] == "ok"}
    expect(len(loaded) > 10 and not loaded & disabled, f"loaded although disabled: {sorted(loaded & disabled)}")
    warnings = json.loads(sandbox.exec(["/usr/bin/ctr", "deprecations", "list", "--format", "json"]).stdout or "[]") or []
    ids = sorted(w["id"].rsplit("/", 1)[-1] for w in warnings)
    return f"config version {shipped.get('version')}, {len(disabled)} plugins off, {len(loaded)} loaded; deprecations: {', '.join(ids) or 'none'}"


VERSION = Scenario(f"docker version: client and server linux/{GOARCH}", version)
INFO = Scenario("docker info", info)
RUNTIMES = Scenario("containerd and runc are the pinned builds", runtimes)
CONTAINERD_CONFIG = Scenario("containerd runs with the packaged config", containerd_config, needs=(Need.SYSTEM_CONTAINERD,))
