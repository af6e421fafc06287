"""`doit verify-upgrade` (`dock32 verify-upgrade --from DIR`): the upgrade a user makes from an earlier release.

The earlier release's own packages (DIR: its dist/<target> folder, with Packages and manifest.json) go into a
clean Debian root; their daemons start from it, and a container with --restart=always, a named volume with data
and an image are made. Then apt upgrades to this build's packages, the daemons restart as the postinst has an
init system do, and the container must run again on the new engine, with its volume and image still there.
The sandbox is verify's: private namespaces, an overlay that is gone afterwards.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from debian import deb822

from dock32.checks.rootfs import chroot_run, ensure_root, overlay
from dock32.checks.scenarios.check import expect, expect_equal, retry
from dock32.checks.scenarios.sandbox import REGISTRY_CONFIG, Sandbox
from dock32.checks.scenarios.scenario import ScenarioResult, run_scenario
from dock32.checks.scenarios.testimage import I386_IMAGE, import_i386_image
from dock32.core import atomic, modes
from dock32.core.errors import ConfigError, VerifyError
from dock32.model.config import BuildConfig, DebPackage
from dock32.model.layout import Layout
from dock32.model.settings import Settings
from dock32.packaging.debs import package_version

VOLUME = "dock32-upgrade-data"
CONTAINER = "dock32-upgrade-keeps"
VOLUME_TEXT = "written before the upgrade"


def previous_release(folder: Path) -> tuple[str, list[str]]:
    """(release, package names) of an earlier build's dist/<target> folder, from its manifest.json and Packages."""
    manifest, index = folder / "manifest.json", folder / "Packages"
    for needed in (manifest, index):
        if not needed.is_file():
            raise ConfigError(
                f"{needed} does not exist", hint="--from (DOCK32_UPGRADE_FROM) names the dist/<target> folder of an earlier release's build"
            )
    try:
        release = str(json.loads(manifest.read_text(encoding="utf-8"))["release"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{manifest} is not a dock32 build manifest (no release in it)") from None
    with index.open(encoding="utf-8") as stream:
        names = sorted({stanza["Package"] for stanza in deb822.Packages.iter_paragraphs(stream, use_apt_pkg=False) if "Package" in stanza})
    if not names:
        raise ConfigError(f"{index} lists no packages")
    return release, names


def verify_upgrade(config: BuildConfig, packages: tuple[DebPackage, ...], settings: Settings, layout: Layout) -> None:
    if settings.upgrade_from is None:
        raise ConfigError(
            "no earlier release to upgrade from",
            hint="run `dock32 verify-upgrade --from DIR` (or set DOCK32_UPGRADE_FROM) with DIR an earlier build's dist/<target> folder",
        )
    previous = settings.upgrade_from
    old_release, old_names = previous_release(previous)
    new_release = config.component("engine").version
    names = [p.name for p in packages]
    log = layout.log("verify-upgrade")
    log.unlink(missing_ok=True)
    modes.make_dirs(log.parent)
    modes.make_dirs(layout.target_dir)
    results: list[ScenarioResult] = []
    print(f"upgrade from {old_release} ({previous}) to {new_release} (log: {log})", flush=True)
    with tempfile.TemporaryDirectory(prefix="verify-upgrade.", suffix=".partial", dir=layout.target_dir) as scratch_name:
        scratch = Path(scratch_name)
        data = scratch / "data"
        data.mkdir()
        clean = ensure_root(config.packaging.distro, config.deb_arch, settings, log)
        with overlay(clean, scratch / "overlay", log) as root:
            shutil.copytree(previous, root / "srv" / "dock32-previous")
            shutil.copytree(layout.dist_dir, root / "srv" / "dock32")
            sources = root / "etc" / "apt" / "sources.list.d" / "dock32.list"
            sources.write_text("deb [trusted=yes] file:/srv/dock32-previous ./\n")
            chroot_run(root, ["apt-get", "update", "-q"], log, "apt-get update")
            install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *old_names, "busybox-static", "docker-registry"]
            chroot_run(root, install, log, "install the earlier release")
            (root / "etc" / "dock32-registry.yml").write_text(REGISTRY_CONFIG, encoding="utf-8")
            sandbox = Sandbox(root, data, log)
            try:
                sandbox.start()
                for name, step in _steps(sandbox, old_release, new_release, names, [package_version(p, config, config.packaging) for p in packages]):
                    result = run_scenario(name, step)
                    results.append(result)
                    print(f"{result.status:>7}  {name}: {result.detail}", flush=True)
                    if result.status != "pass":
                        break  # each step stands on the one before
            finally:
                sandbox.stop()
    report = {"target": config.target, "from": old_release, "to": new_release, "steps": [asdict(r) for r in results]}
    atomic.write_text(layout.target_dir / "verify-upgrade.json", json.dumps(report, indent=2) + "\n")
    failed = [r for r in results if r.status != "pass"]
    if failed:
        raise VerifyError(f"upgrade from {old_release} to {new_release}: {failed[0].name}: {failed[0].detail}", hint=f"details in {log}")
    print(f"upgrade from {old_release} to {new_release}: {len(results)} steps passed", flush=True)


def _steps(sandbox: Sandbox, old_release: str, new_release: str, names: list[str], versions: list[str]) -> list[tuple[str, Callable[[], str]]]:
    def server_version() -> str:
        return str(sandbox.docker("version", "--format", "{{.Server.Version}}").stdout.strip())

    def earlier_release_runs() -> str:
        expect_equal(server_version(), old_release, "docker version")
        import_i386_image(sandbox)
        sandbox.docker("volume", "create", VOLUME)
        sandbox.docker("run", "--rm", "-v", f"{VOLUME}:/data", I386_IMAGE, "sh", "-c", f"echo '{VOLUME_TEXT}' > /data/kept")
        # --stop-timeout: busybox sleep as PID 1 ignores SIGTERM, and each daemon stop would wait 10 s for it.
        sandbox.docker("run", "-d", "--restart=always", "--stop-timeout=1", "--name", CONTAINER, "-v", f"{VOLUME}:/data", I386_IMAGE, "sleep", "3600")
        return f"docker {old_release}: an image, a volume with a file, a --restart=always container"

    def apt_upgrades() -> str:
        (sandbox.root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text("deb [trusted=yes] file:/srv/dock32 ./\n")
        # From outside the daemons' namespace, which has no network: a new release may depend on packages the
        # earlier one did not (29.x's docker-ce on nftables), and apt fetches them from Debian as on a user's box.
        chroot_run(sandbox.root, ["apt-get", "update", "-q"], sandbox.log, "apt-get update")
        chroot_run(sandbox.root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *names], sandbox.log, "apt-get upgrade to this build")
        installed = sandbox.exec(["dpkg-query", "-W", "-f=${Version}\\n", *names]).stdout.split()
        expect_equal(sorted(installed), sorted(versions), "versions after the upgrade")
        return f"apt-get upgraded {len(names)} packages to {', '.join(sorted(set(versions)))}"

    def container_runs_again() -> str:
        before = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", CONTAINER).stdout.strip()
        # On a machine with an init system, the postinst's `invoke-rc.d docker restart` does this.
        sandbox.restart_after_upgrade()
        expect_equal(server_version(), new_release, "docker version")
        retry(lambda: expect_equal(sandbox.docker("inspect", "-f", "{{.State.Running}}", CONTAINER).stdout.strip(), "true", "running"), attempts=30)
        after = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", CONTAINER).stdout.strip()
        expect(after != before, "the container was never stopped: the daemons' restart did not happen")
        return f"docker {new_release} runs the --restart=always container again"

    def volume_and_image_kept() -> str:
        text = sandbox.docker("run", "--rm", "-v", f"{VOLUME}:/data", I386_IMAGE, "cat", "/data/kept").stdout.strip()
        expect_equal(text, VOLUME_TEXT, "the volume's file")
        images = sandbox.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        expect(I386_IMAGE in images, f"the image is gone: {images}")
        exec_out = sandbox.docker("exec", CONTAINER, "cat", "/data/kept").stdout.strip()
        expect_equal(exec_out, VOLUME_TEXT, "the volume's file, read by docker exec")
        return "the volume's file, the image and the container's mount are all there"

    return [
        (f"install {old_release} and make state", earlier_release_runs),
        (f"apt-get upgrade to {new_release}", apt_upgrades),
        ("daemons restart, the container runs again", container_runs_again),
        ("volume, image and exec after the upgrade", volume_and_image_kept),
    ]
