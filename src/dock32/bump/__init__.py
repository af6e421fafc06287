"""`dock32 bump <docker-version>`: move the pins to another Docker release, found from the upstream sources themselves;
`dock32 bump --check`: list the newer releases the module proxy can give.

Everything comes through the Go module proxy (GOPROXY), with the `go` command (dock32.sources.gocmd):

- engine: up to 28.x the module github.com/docker/docker at v<X.Y.Z>+incompatible. From 29.x the daemon is the module
  github.com/moby/moby/v2, whose release tags (docker-v29.8.1) are not module versions; moby tags the same commits
  v2.0.0-beta.N, which the proxy serves. Which beta is which release is found from the evidence (dock32.bump.enginetags:
  the tree's releases/versions.yaml, and its time against the CLI's tag), or named with --engine-version.
  release.date is the engine tag's time in the proxy's .info.
- cli: the release itself, github.com/docker/cli v<X.Y.Z>+incompatible.
- Go, containerd, runc, tini, rootlesskit: moby's Dockerfile ARGs in the engine's tree (GO_VERSION, CONTAINERD_VERSION,
  RUNC_VERSION, TINI_VERSION, ROOTLESSKIT_VERSION), or hack/dockerfile/install/<name>.installer where the Dockerfile
  has none; a component the config does not have is named under "look at by hand".
- buildx, compose: for 29.x, moby's Dockerfile BUILDX_VERSION and COMPOSE_VERSION, which moby moves with its releases
  (29.8.1: the buildx and compose of that day), so every pin is one of moby's own. Up to 28.x those ARGs were its
  development container's, far behind what shipped; there the plugin is the newest tagged release of its module at or
  before the engine tag's time, as docker-ce-packaging built them.
- Every h1: sum from `go mod download -json`; commits from the .info's Origin.Hash where the proxy records it (else the
  tag, with a note); the Go toolchains' sums from golang.org/toolchain; tini's tree hash by downloading its tarball.

A module whose path changes (github.com/containerd/containerd/v2, github.com/docker/compose/v5, moby/moby/v2) has every
value under its binaries that names the old path rewritten, once, where it is written (an anchored list used through
an alias is rewritten at its anchor); a `modfile` the new tree no longer has (moby v2 has a go.mod) is removed.
Everything else stays byte for byte (dock32.model.yamledit), and the result is loaded with load_config/load_toolchains
before anything is written. The patch series of every component whose version changes are checked against the new
trees (dock32.sources.patches.check_series).
"""

from __future__ import annotations

