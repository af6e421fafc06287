"""The last scenario: an upgrade with a running container, then purge. Last, since it removes the packages."""

from __future__ import annotations

import contextlib
import dataclasses
import io

from dock32.checks.scenarios.check import expect, expect_equal, retry
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE
from dock32.packaging.debs import build_deb, package_version, write_repository

# The files of a purged package that are still there: files, and links that do not lead to a folder (folders may
# stay, and /lib is the root's own link to usr/lib).
LEFT_BEHIND = 'for f; do if [ -f "$f" ] || { [ -L "$f" ] && [ ! -d "$f" ]; }; then echo "$f"; fi; done'
# What starts a service after a purge: a unit, or a link to one (systemd's .wants/ folders, sysvinit's rc?.d links).
# Not docker-registry's: that package stays.
SERVICE_LINKS = (
    "find /etc/systemd /lib/systemd /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d /etc/rc6.d /etc/rcS.d"
    " \\( -name 'docker.s*' -o -name 'containerd.s*' -o -name '[SK][0-9][0-9]docker' \\) 2>/dev/null; true"
)


def upgrade_then_purge(context: Context) -> str:
    """A --restart=always container runs again after an upgrade to the next Debian revision of these packages (the
    same binaries, repacked): under an init system the postinst restarts the daemons itself. Then purge stops them
    (the prerm, under an init system) and removes every file, unit and link."""
    config, packages, sandbox = context.config, context.packages, context.sandbox
    names = [p.name for p in packages]
    # --stop-timeout: busybox sleep as PID 1 ignores SIGTERM, and each daemon stop would wait 10 s for it.
    sandbox.docker("run", "-d", "--restart=always", "--stop-timeout=1", "--name", "dock32-upgrade", I386_IMAGE, "sleep", "3600")
    first_start = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-upgrade").stdout.strip()
    # zstd: this repack is only installed here, and packs in seconds (Debian 12's dpkg reads it).
    following = dataclasses.replace(config.packaging, revision=config.packaging.revision + 1, compression="zstd", gpg_key=None)
    next_layout = dataclasses.replace(context.layout, dist_root=context.scratch / "dock32-next")
    with contextlib.redirect_stderr(io.StringIO()):  # the zstd compatibility warning is for users' packages
        for package in packages:
            build_deb(package, config, following, next_layout)
    write_repository(packages, config, following, next_layout)
    for made in sorted(next_layout.dist_dir.iterdir()):
        sandbox.write_file(f"/srv/dock32-next/{made.name}", made.read_bytes())
    sandbox.write_file("/etc/apt/sources.list.d/dock32.list", b"deb [trusted=yes] file:/srv/dock32-next ./\n")
    # Only our source: the machine has no network for the Debian archive's.
    only_ours = ["-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/dock32.list", "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0"]
    sandbox.exec(["apt-get", "update", "-q", *only_ours])
    sandbox.exec(["apt-get", "install", "-y", "-q", "--only-upgrade", *names])
    installed = sandbox.exec(["dpkg-query", "-W", "-f=${Version}\\n", *names]).stdout.split()
    expected = [package_version(p, config, following) for p in packages]
    expect_equal(sorted(installed), sorted(expected), "versions after the upgrade")
    sandbox.restart_after_upgrade()
    retry(lambda: expect_equal(sandbox.docker("inspect", "-f", "{{.State.Running}}", "dock32-upgrade").stdout.strip(), "true", "running"), attempts=30)
    restarted = sandbox.docker("inspect", "-f", "{{.State.StartedAt}}", "dock32-upgrade").stdout.strip()
    expect(restarted != first_start, f"the container was never stopped: the daemons were not restarted ({sandbox.init})")
    files = [f for f in sandbox.exec(["dpkg", "-L", *names]).stdout.splitlines() if f.startswith("/")]
    sandbox.stop_before_purge()
    sandbox.exec(["apt-get", "purge", "-y", "-q", *names])
    left = sandbox.exec(["sh", "-c", LEFT_BEHIND, "sh", *files]).stdout.split()
    expect(left == [], f"purge left {left[:5]}")
    links = sandbox.exec(["sh", "-c", SERVICE_LINKS]).stdout.split()
    expect(links == [], f"purge left units or their links: {links[:5]}")
    running = sandbox.exec(["sh", "-c", "pidof dockerd containerd containerd-shim-runc-v2; true"]).stdout.split()
    expect(running == [], f"dockerd or containerd still runs after the purge (pids {' '.join(running)})")
    return f"{len(names)} packages upgraded to revision {following.revision}, the container ran again; purge stopped the daemons and removed {len(files)} paths"


UPGRADE_THEN_PURGE = Scenario("upgrade with a --restart=always container, then purge", upgrade_then_purge)
