"""The last scenario: an upgrade with a running container, then purge. Last, since it removes the packages."""

from __future__ import annotations

import contextlib
import dataclasses
import io

from dock32.checks.scenarios.check import expect, expect_equal, retry
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE
from dock32.packaging.debs import build_deb, package_version, write_repository


def upgrade_then_purge(context: Context) -> str:
    """A --restart=always container runs again after an upgrade to the next Debian revision of these
    packages (the same binaries, repacked) and the daemons' restart; then purge removes every file."""
    config, packages, sandbox = context.config, context.packages, context.sandbox
    names = [p.name for p in packages]
    # --stop-timeout: busybox sleep as PID 1 ignores SIGTERM, and each daemon stop would wait 10 s for it.
    sandbox.docker("run", "-d", "--restart=always", "--stop-timeout=1", "--name", "dock32-upgrade", I386_IMAGE, "sleep", "3600")
    first_start = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-upgrade").stdout.strip()
    # zstd: this repack is only installed here, and packs in seconds (Debian 12's dpkg reads it).
    following = dataclasses.replace(config.packaging, revision=config.packaging.revision + 1, compression="zstd", gpg_key=None)
    next_layout = dataclasses.replace(context.layout, dist_root=sandbox.root / "srv" / "dock32-next")
    with contextlib.redirect_stderr(io.StringIO()):  # the zstd compatibility warning is for users' packages
        for package in packages:
            build_deb(package, config, following, next_layout)
    write_repository(packages, config, following, next_layout)
    (sandbox.root / "etc" / "apt" / "sources.list.d" / "dock32.list").write_text(f"deb [trusted=yes] file:/srv/dock32-next/{config.target} ./\n")
    # Only our source: the namespace has no network for the Debian archive's.
    only_ours = ["-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/dock32.list", "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0"]
    sandbox.exec(["apt-get", "update", "-q", *only_ours])
    sandbox.exec(["apt-get", "install", "-y", "-q", "--only-upgrade", *names])
    installed = sandbox.exec(["dpkg-query", "-W", "-f=${Version}\\n", *names]).stdout.split()
    expected = [package_version(p, config, following) for p in packages]
    expect_equal(sorted(installed), sorted(expected), "versions after the upgrade")
    # On a machine with an init system, the postinst's `invoke-rc.d docker restart` does this.
    sandbox.restart_daemons()
    retry(lambda: expect_equal(sandbox.docker("inspect", "-f", "{{.State.Running}}", "dock32-upgrade").stdout.strip(), "true", "running"), attempts=30)
    restarted = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-upgrade").stdout.strip()
    expect(restarted != first_start, "the container was never stopped: the daemons' restart did not happen")
    files = [f for f in sandbox.exec(["dpkg", "-L", *names]).stdout.splitlines() if f.startswith("/")]
    sandbox.exec(["sh", "/run/dock32/daemons", "stop"], pid_namespace=True)
    sandbox.exec(["apt-get", "purge", "-y", "-q", *names])
    # Folders may stay (and /lib is the root's own link to usr/lib); files and links to files may not.
    paths = [sandbox.root / f.lstrip("/") for f in files]
    left = [f for f, p in zip(files, paths, strict=True) if p.is_file() or (p.is_symlink() and not p.is_dir())]
    expect(left == [], f"purge left {left[:5]}")
    return f"{len(names)} packages upgraded to revision {following.revision}, the container ran again; purge removed {len(files)} paths"


UPGRADE_THEN_PURGE = Scenario("upgrade with a --restart=always container, then purge", upgrade_then_purge)
