"""What bump knows of Docker releases besides their sources: releases known not to build for 386, and how each
component's version is found."""

from __future__ import annotations

import fnmatch

# Releases known not to work on 386: a version pattern (fnmatch) and the reason, or None where dock32 has only the entry.
KNOWN_BROKEN: tuple[tuple[str, str | None], ...] = (
    (
        "28.0.0",
        "dockerd does not compile: libnetwork/drivers/bridge/port_mapping_linux.go uses syscall.SYS_SETSOCKOPT, which 386 does not have "
        "(it goes through socketcall); 28.0.1 builds again (void-linux/void-packages#54525)",
    ),
    (
        "29.0.*",
        "docker-proxy does not compile: cmd/docker-proxy/main_linux.go uses sctp.FileListener, which "
        "github.com/ishidawataru/sctp leaves out on linux/386; moby/moby#51519",
    ),
    ("29.4.2", None),
)

# How each component's version is found; components not named here keep their pins.
RELEASE = "the release"
PLUGIN = "plugin"
RULES: dict[str, str] = {
    "cli": RELEASE,
    "engine": RELEASE,
    "containerd": "CONTAINERD_VERSION",
    "runc": "RUNC_VERSION",
    "tini": "TINI_VERSION",
    "rootlesskit": "ROOTLESSKIT_VERSION",
    "buildx": PLUGIN,
    "compose": PLUGIN,
}
# The plugins' ARGs in moby's Dockerfile, read where the engine line takes the plugins from it (29.x).
PLUGIN_ARGS = {"buildx": "BUILDX_VERSION", "compose": "COMPOSE_VERSION"}
ENGINE = "engine"
CLI = "cli"
CLI_MODULE = "github.com/docker/cli"
PLUGIN_BATCH = 20


def refusal(version: str) -> str | None:
    """Why version is refused (it is in KNOWN_BROKEN), or None."""
    for pattern, reason in KNOWN_BROKEN:
        if fnmatch.fnmatchcase(version, pattern):
            if reason:
                return f"refused: known broken on 386 ({reason})"
            return "refused: listed as broken on 386 in dock32's bump table"
    return None
