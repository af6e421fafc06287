"""`doit verify` and `doit verify-sysvinit`: install the .debs into a clean Debian root for the host architecture,
booted with its own init system as PID 1 (scenarios/booted.py), where the packages' maintainer scripts start the
services, and run the scenarios that apply to this flavour on this machine (scenarios/catalogue.py), real
containers among them. The report names the init system and the kernel the daemons ran on."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from dock32.checks.rootfs import Layers, ensure_root
from dock32.checks.scenarios.booted import SYSTEMD, SYSVINIT, Booted, InitSystem
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.machine import Machine
from dock32.checks.scenarios.sandbox import REGISTRY_CONFIG
from dock32.checks.scenarios.scenario import Context, Scenario, ScenarioResult, run_selected, select
from dock32.core import atomic, modes
from dock32.core.errors import VerifyError
from dock32.model.config import BuildConfig, DebPackage
from dock32.model.layout import Layout
from dock32.model.settings import Settings

# What the scenarios use besides the packages: busybox-static makes the test images; docker-registry is the
# registry of the round-trip; slirp4netns is docker-ce-rootless-extras' Recommends, the network driver that the
# rootless scenario's daemon uses.
SCENARIO_PACKAGES = ("busybox-static", "docker-registry", "slirp4netns")


def prepared_layers(
    config: BuildConfig, packages: tuple[DebPackage, ...], init_system: InitSystem, settings: Settings, layout: Layout, scratch: Path, log: Path
) -> Layers:
    """An overlay of the clean root with the init system, what the scenarios use and our repository in place, and
    every .deb that installing the packages needs already downloaded: the booted root has no network (its own is
    private), so apt installs them from its cache there. Never mounted where this machine sees it (rootfs.Layers)."""
    layers = Layers(ensure_root(config.packaging.distro, config.deb_arch, settings, log), scratch / "overlay")
    layers.make()
    layers.write("/etc/resolv.conf", Path("/etc/resolv.conf").read_bytes())
    for made in sorted(layout.dist_dir.iterdir()):
        if made.is_file():
            layers.write(f"/srv/dock32/{made.name}", made.read_bytes())
    layers.write("/etc/apt/sources.list.d/dock32.list", b"deb [trusted=yes] file:/srv/dock32 ./\n")
    if init_system.fstab:
        layers.write("/etc/fstab", (layers.lower / "etc" / "fstab").read_bytes() + init_system.fstab.encode())
    layers.chroot_run(["apt-get", "update", "-q"], log, "apt-get update")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
    layers.chroot_run([*install, *init_system.packages, *SCENARIO_PACKAGES], log, "apt-get install the init system")
    layers.chroot_run([*install, "--download-only", *(p.name for p in packages)], log, "apt-get download the packages")
    # Debian's config for its registry asks for htpasswd logins; the push/pull round-trip needs none.
    layers.write("/etc/docker/registry/config.yml", REGISTRY_CONFIG.encode())
    # The clean root forbids starting services (no init runs in a chroot); booted, the postinst must start them.
    layers.chroot_run(["rm", "/usr/sbin/policy-rc.d"], log, "let services start")
    return layers


def verify(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, scenarios: Sequence[Scenario] = SCENARIOS) -> None:
    """Under systemd. scenarios: the catalogue's, unless a test brings its own."""
    verify_booted(config, packages, settings, layout, SYSTEMD, "verify", scenarios)


def verify_sysvinit(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout) -> None:
    verify_booted(config, packages, settings, layout, SYSVINIT, "verify-sysvinit", SCENARIOS)


@contextlib.contextmanager
def run_folder(layout: Layout, name: str) -> Iterator[tuple[Path, Path]]:
    """A check's scratch folder and its fresh log: the folder goes when the check ends, however it ends."""
    log = layout.log(name)
    log.unlink(missing_ok=True)
    modes.make_dirs(layout.target_dir)
    # What a killed run left: nothing of it runs or is mounted any more (its namespaces and QEMU died with it, and
    # overlays are only ever mounted in a command's own namespace), and this workspace is ours, so no other run uses it.
    for stale in layout.target_dir.glob(f"{name}.*.partial"):
        shutil.rmtree(stale)
    with tempfile.TemporaryDirectory(prefix=f"{name}.", suffix=".partial", dir=layout.target_dir) as scratch:
        yield Path(scratch), log


def verify_booted(
    config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, init_system: InitSystem, name: str, scenarios: Sequence[Scenario]
) -> None:
    """Boot the prepared root under init_system, install the packages there with apt and run the scenarios; the
    report is build/<target>/<name>.json."""
    with run_folder(layout, name) as (scratch, log):
        layers = prepared_layers(config, packages, init_system, settings, layout, scratch, log)
        machine = Booted(layers, scratch / "data", init_system, log)
        print(f"dock32: booting the {config.deb_arch.names.debian} root under {machine.init}", flush=True)
        try:
            machine.start()
            # Through the booted init: the postinst enables and starts the services, as on a user's box.
            machine.exec(["apt-get", "install", "-y", "-q", "--no-install-recommends", *(p.name for p in packages)])
            run_scenarios(config, packages, layout, machine, scratch, log, name, scenarios)
        finally:
            machine.stop()


def run_scenarios(
    config: BuildConfig, packages: tuple[DebPackage, ...], layout: Layout, machine: Machine, scratch: Path, log: Path, name: str, scenarios: Sequence[Scenario]
) -> None:
    """Run the scenarios that apply on machine, print the table and write build/<target>/<name>.json; a failed
    scenario fails the run once all have run."""
    selected = select(scenarios, config.flavour, machine.offers())
    kernel = machine.kernel()
    where = f"init: {machine.init}; kernel: {kernel}"
    print(f"dock32: {name} on {where}", flush=True)
    context = Context(config, packages, layout, machine, scratch, log)
    results: list[ScenarioResult] = []
    try:
        for scenario in selected:
            result = run_selected(scenario, context)
            results.append(result)
            print(f"{result.status:>7}  {result.name}: {result.detail}", flush=True)
    finally:
        report = {
            "target": config.target,
            "init": machine.init,
            "kernel": kernel,
            "scenarios": [asdict(r) for r in results],
            "daemon_logs": machine.daemon_logs(),
        }
        atomic.write_text(layout.target_dir / f"{name}.json", json.dumps(report, indent=2) + "\n")
    width = max((len(r.name) for r in results), default=0)
    print(f"\n{name} ({where})\n{'scenario':<{width}}  result   seconds")
    for r in results:
        print(f"{r.name:<{width}}  {r.status:<7} {r.seconds:7.1f}")
    failed = [r.name for r in results if r.status in ("FAIL", "FIXED?")]
    if failed:
        raise VerifyError(
            f"{len(failed)} of {len(results)} scenarios failed: {', '.join(failed)}",
            hint=f"details in {layout.target_dir / f'{name}.json'} and {log}",
        )
