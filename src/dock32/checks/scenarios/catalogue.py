"""Every verify scenario, in the order they run: later ones use what earlier ones made (run_i386 makes the i386
image, amd64_default_seccomp the amd64 one), and the upgrade-then-purge scenario removes the packages, so it is last."""

from __future__ import annotations

from dock32.checks.scenarios import amd64, compose, containers, engine, images, network, rootless, softfloat, upgrade_purge
from dock32.checks.scenarios.scenario import Scenario

SCENARIOS: tuple[Scenario, ...] = (
    engine.VERSION,
    engine.INFO,
    engine.RUNTIMES,
    engine.CONTAINERD_CONFIG,
    containers.RUN_I386,
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
    softfloat.NO_SSE_OUTSIDE_RUNTIME_CHECKS,
    upgrade_purge.UPGRADE_THEN_PURGE,
)
