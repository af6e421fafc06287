"""`doit verify`: install the .debs into a clean Debian root for the host architecture, start containerd and
dockerd from it in private namespaces (scenarios/sandbox.py), and run the scenarios that apply to this flavour on
this machine (scenarios/catalogue.py), real containers among them."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from dock32.checks.rootfs import chroot_run, ensure_root, overlay
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.sandbox import REGISTRY_CONFIG, Sandbox
from dock32.checks.scenarios.scenario import Context, Scenario, ScenarioResult, run_selected, select, what_this_machine_offers
from dock32.core import atomic, modes
from dock32.core.errors import VerifyError
from dock32.model.config import BuildConfig, DebPackage
from dock32.model.layout import Layout
from dock32.model.settings import Settings


@contextlib.contextmanager
def installed_root(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, scratch: Path, log: Path) -> Iterator[Path]:
    clean = ensure_root(config.packaging.distro, config.deb_arch, settings, log)
    with overlay(clean, scratch / "overlay", log) as root:
        shutil.copytree(layout.dist_dir, root / "srv" / "dock32")
        (root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text("deb [trusted=yes] file:/srv/dock32 ./\n")
        chroot_run(root, ["apt-get", "update", "-q"], log, "apt-get update")
        names = [p.name for p in packages]
        # busybox-static makes the test images; docker-registry is the registry of the round-trip; slirp4netns is
        # docker-ce-rootless-extras' Recommends, the network driver that the rootless scenario's daemon uses.
        extras = ["busybox-static", "docker-registry", "slirp4netns"]
        chroot_run(root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *names, *extras], log, "apt-get install")
        (root / "etc" / "dock32-registry.yml").write_text(REGISTRY_CONFIG, encoding="utf-8")
        yield root


def verify(
    config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout, scenarios: Sequence[Scenario] = SCENARIOS
) -> None:
    """scenarios: the catalogue's, unless a test brings its own."""
    selected = select(scenarios, config.flavour, what_this_machine_offers())
    log = layout.log("verify")
    log.unlink(missing_ok=True)
    results: list[ScenarioResult] = []
    daemon_logs: dict[str, str] = {}
    modes.make_dirs(layout.target_dir)
    with tempfile.TemporaryDirectory(prefix="verify.", suffix=".partial", dir=layout.target_dir) as scratch_name:
        scratch = Path(scratch_name)
        data = scratch / "data"
        data.mkdir()
        with installed_root(config, packages, settings, layout, scratch, log) as root:
            sandbox = Sandbox(root, data, log)
            try:
                sandbox.start()
                context = Context(config, packages, layout, sandbox, scratch, log)
                for scenario in selected:
                    result = run_selected(scenario, context)
                    results.append(result)
                    print(f"{result.status:>7}  {result.name}: {result.detail}", flush=True)
            finally:
                sandbox.stop()
                daemon_logs = {name: sandbox.tail(name, 40) for name in ("dockerd.log", "containerd.log")}
    width = max(len(r.name) for r in results) if results else 0
    print(f"\n{'scenario':<{width}}  result   seconds")
    for r in results:
        print(f"{r.name:<{width}}  {r.status:<7} {r.seconds:7.1f}")
    report = {"target": config.target, "scenarios": [asdict(r) for r in results], "daemon_logs": daemon_logs}
    atomic.write_text(layout.target_dir / "verify.json", json.dumps(report, indent=2) + "\n")
    failed = [r.name for r in results if r.status in ("FAIL", "FIXED?")]
    if failed:
        raise VerifyError(
            f"{len(failed)} of {len(results)} scenarios failed: {', '.join(failed)}",
            hint=f"details in {layout.target_dir / 'verify.json'} and {log}",
        )
