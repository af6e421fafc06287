"""The flavour of a build: which programs go into the i386 packages, and everything that follows from that choice.

buildcfg.yaml picks it with two keys, `strategy` and `go386` (README: "Which flavour"). Everything that differs
between flavours is decided here and nowhere else: GOARCH and GO386, the C flags, the target folder's name, the
version suffix, the apt component, the extra preinst and lintian overrides, and which verify checks apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dock32.core.arch import Arch

# native32: 32-bit binaries (GOARCH=386), for any x86 kernel. multiarch64: 64-bit binaries (GOARCH=amd64) in the same
# i386 packages, for a 32-bit userland on an x86_64 kernel.
STRATEGIES = ("native32", "multiarch64")
GO386_MODES = ("sse2", "softfloat")

# GO386=softfloat is for x86 CPUs without SSE2 (Pentium III, Athlon XP, Geode, Vortex86): the C parts (runc's cgo
# code, tini) are compiled for them too, with x87 floating point. What they link from Debian's i386 libraries
# (libseccomp, static glibc) is built for i686 already; glibc picks SSE2 variants only on CPUs that have it.
NO_SSE_CFLAGS = ("-march=i686", "-mno-sse", "-mno-sse2", "-mfpmath=387")

# Every multiarch64 package gets this preinst (under packaging/): it refuses a kernel that cannot run x86_64 programs.
MULTIARCH64_PREINST = "scripts/multiarch64-preinst"
# lintian's view of amd64 programs in an i386 package, which is what multiarch64 is.
MULTIARCH64_LINTIAN = (
    "# multiarch64: x86_64 programs in an i386 package, for a 32-bit userland on a 64-bit kernel (the preinst checks it).\n"
    "binary-from-other-architecture\n"
)


class FlavourError(ValueError):
    """A strategy and go386 that do not make a flavour; the config loader names the key."""


@dataclass(frozen=True)
class Flavour:
    strategy: str = "native32"
    go386: str = "sse2"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise FlavourError(f"unknown strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        if self.go386 not in GO386_MODES:
            raise FlavourError(f"unknown go386 {self.go386!r}: one of {', '.join(GO386_MODES)}")
        if self.is_multiarch64 and self.go386 != "sse2":
            raise FlavourError(f"{self.go386} is for 386 binaries; strategy multiarch64 builds amd64 ones")

    @property
    def is_multiarch64(self) -> bool:
        return self.strategy == "multiarch64"

    @property
    def is_softfloat(self) -> bool:
        return self.go386 == "softfloat"

    @property
    def host_arch(self) -> Arch:
        """What the binaries are compiled for (GOARCH, the C compiler's host)."""
        return Arch.AMD64 if self.is_multiarch64 else Arch.I386

    @property
    def deb_arch(self) -> Arch:
        """The packages' Architecture: the 32-bit dpkg that installs them, whichever the binaries are."""
        return Arch.I386

    @property
    def target_name(self) -> str:
        """build/<target>/ and dist/<target>/ before any distro suffix: native32-i386, native32-i386-softfloat, ..."""
        name = f"{self.strategy}-{self.deb_arch.names.debian}"
        return name if self.go386 == "sse2" else f"{name}-{self.go386}"

    @property
    def go_env(self) -> dict[str, str]:
        """GOARCH, and GO386 for 386 binaries (Go ignores it for amd64, and the manifest should not claim it)."""
        env = {"GOARCH": self.host_arch.names.go}
        if self.host_arch is Arch.I386:
            env["GO386"] = self.go386
        return env

    @property
    def c_flags(self) -> tuple[str, ...]:
        """C compiler flags on top of the toolchain's: for softfloat, no SSE at all."""
        return NO_SSE_CFLAGS if self.is_softfloat else ()

    @property
    def version_suffix(self) -> str:
        """What the version says about the flavour, so that an installed system cannot be taken for another.

        GO386=softfloat: `~softfloat` (sorts before the sse2 build, so an sse2 box never takes the slower build for an
        upgrade). multiarch64: `+multiarch64` (sorts after native32: a box that switches its apt source from native32
        to multiarch64 gets it as an upgrade, with no downgrade flags)."""
        if self.is_multiarch64:
            return "+multiarch64"
        return "~softfloat" if self.is_softfloat else ""

    @property
    def apt_component(self) -> str:
        """The repository component, so that apt never mixes flavours unasked: `deb [...] URL bookworm multiarch64`."""
        if self.is_multiarch64:
            return "multiarch64"
        return "softfloat" if self.is_softfloat else "main"

    @property
    def preinst(self) -> str | None:
        """A preinst every package gets, relative to packaging/."""
        return MULTIARCH64_PREINST if self.is_multiarch64 else None

    @property
    def lintian_overrides(self) -> str:
        """Overrides every package gets, after its own."""
        return MULTIARCH64_LINTIAN if self.is_multiarch64 else ""

    @property
    def programs_note(self) -> str:
        """For the changelog of packages whose programs are for another architecture than the package."""
        return "" if self.host_arch is self.deb_arch else f" ({self.host_arch.names.debian} programs: {self.strategy})"

    @property
    def checks_no_sse(self) -> bool:
        """Whether verify looks for SSE instructions outside the Go runtime's CPU checks."""
        return self.is_softfloat

    def as_record(self) -> dict[str, str]:
        """The manifest's fields: the strategy, and go386 where it applies."""
        return {"strategy": self.strategy, **({"go386": self.go386} if self.host_arch is Arch.I386 else {})}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Flavour:
        """The flavour a manifest records (as_record's fields); FlavourError for one that is not a flavour."""
        strategy, go386 = record.get("strategy"), record.get("go386", "sse2")
        if not isinstance(strategy, str):
            raise FlavourError(f"unknown strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
        if not isinstance(go386, str):
            raise FlavourError(f"unknown go386 {go386!r}: one of {', '.join(GO386_MODES)}")
        return cls(strategy, go386)
