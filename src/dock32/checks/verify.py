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

from dock32.checks.rootfs import chroot_run, ensure_root, overlay
from dock32.checks.scenarios.booted import Booted, InitSystem
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
# registry of the round-trip.
SCENARIO_PACKAGES = ("busybox-static", "docker-registry")


@contextlib.contextmanager
def prepared_root(
    config: BuildConfig, packages: tuple[DebPackage, ...], init_system: InitSystem, settings: Settings, layout: Layout, scratch: Path, log: Path
) -> Iterator[Path]:
    """An overlay of the clean root with the init system, what the scenarios use and our repository in place, and
    every .deb that installing the packages needs already downloaded: the booted root has no network (its own is
    private), so apt installs them from its cache there."""
    clean = ensure_root(config.packaging.distro, config.deb_arch, settings, log)
    with overlay(clean, scratch / "overlay", log) as root:
        shutil.copytree(layout.dist_dir, root / "srv" / "dock32")
        (root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text("deb [trusted=yes] file:/srv/dock32 ./\n")
        chroot_run(root, ["apt-get", "update", "-q"], log, "apt-get update")
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
        chroot_run(root, [*install, *init_system.value.packages, *SCENARIO_PACKAGES], log, "apt-get install the init system")
        names = [p.name for p in packages]
        chroot_run(root, [*install, "--download-only", *names], log, "apt-get download the packages")
        # Debian's config for its registry asks for htpasswd logins; the push/pull round-trip needs none.
        (root / "etc" / "docker" / "registry" / "config.yml").write_text(REGISTRY_CONFIG, encoding="utf-8")
        if init_system is InitSystem.SYSVINIT:
            # sysvinit mounts no cgroup file system (its mountkernfs.sh even mounts a fresh /sys over the container's),
            # and dockerd needs one: a sysvinit Docker host mounts it from /etc/fstab, as here, or with cgroupfs-mount.
            with (root / "etc" / "fstab").open("a", encoding="utf-8") as fstab:
                fstab.write("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n")
        # The clean root forbids starting services (no init runs in a chroot); booted, the postinst must start them.
        (root / "usr" / "sbin" / "policy-rc.d").unlink()
        yield root


def verify(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, scenarios: Sequence[Scenario] = SCENARIOS) -> None:
    """Under systemd. scenarios: the catalogue's, unless a test brings its own."""
    verify_booted(config, packages, settings, layout, InitSystem.SYSTEMD, "verify", scenarios)


def verify_sysvinit(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout) -> None:
    verify_booted(config, packages, settings, layout, InitSystem.SYSVINIT, "verify-sysvinit", SCENARIOS)


def verify_booted(
    config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, init_system: InitSystem, name: str, scenarios: Sequence[Scenario]
) -> None:
    """Boot the prepared root under init_system, install the packages there with apt and run the scenarios; the
    report is build/<target>/<name>.json."""
    log = layout.log(name)
    log.unlink(missing_ok=True)
    modes.make_dirs(layout.target_dir)
    with tempfile.TemporaryDirectory(prefix=f"{name}.", suffix=".partial", dir=layout.target_dir) as scratch_name:
        scratch = Path(scratch_name)
        with prepared_root(config, packages, init_system, settings, layout, scratch, log) as root:
            machine = Booted(root, scratch / "data", init_system, log)
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
