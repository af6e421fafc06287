"""Every verify scenario, in the order they run: later ones use what earlier ones made (run_i386 makes the i386
image, amd64_default_seccomp the amd64 one), and the upgrade-then-purge scenario removes the packages, so it is last.
The units' scenario is first: it checks what the install left running, before any scenario restarts a service."""

from __future__ import annotations

from dock32.checks.scenarios import amd64, compose, containers, engine, images, kernel, network, personality, rootless, services, softfloat, upgrade_purge
from dock32.checks.scenarios.scenario import Scenario

SCENARIOS: tuple[Scenario, ...] = (
    services.SYSTEMD_UNITS,
    engine.VERSION,
    engine.INFO,
    engine.RUNTIMES,
    engine.CONTAINERD_CONFIG,
    containers.RUN_I386,
    services.SOCKET_ACTIVATION,
    services.SYSTEMCTL_RESTART,
    services.INIT_SCRIPT,
    services.DOCKER_OPTS,
    services.SOCKET_PERMISSIONS,
    containers.INIT,
    containers.SECCOMP_I386,
    network.NETWORK_BY_NAME,
    network.PUBLISHED_PORT,
    network.SCTP_PORT,
    images.BUILD,
    images.REGISTRY_ROUND_TRIP,
    compose.COMPOSE,
    containers.EXEC_ENTERS_CONTAINER,
    rootless.ROOTLESS,
    rootless.ROOTLESS_BUILT_IN_NETWORK,
    amd64.AMD64_DEFAULT_SECCOMP,
    amd64.AMD64_ONLY_IMAGE,
    # On a 32-bit kernel (verify-i386-kernel) instead of the two above.
    kernel.AMD64_INDEX_PULL_REFUSED,
    kernel.AMD64_IMAGE_RUN_REFUSED,
    personality.UNAME_I386,
    personality.UNAME_BUILD_RUN,
    personality.UNAME_EXEC,
    # The amd64 image is amd64_default_seccomp's.
    personality.UNAME_AMD64,
    personality.PERSONALITY_OFF,
    softfloat.NO_SSE_OUTSIDE_RUNTIME_CHECKS,
    # Last before the purge: everything before it ran on one boot.
    kernel.RESTART_AFTER_REBOOT,
    upgrade_purge.UPGRADE_THEN_PURGE,
)
