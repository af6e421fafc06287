"""One table of architecture names: Debian, Go, GNU triplet and kernel, and what runs what."""

from __future__ import annotations

import enum
import platform
from dataclasses import dataclass

from dock32.core.errors import ToolchainError


@dataclass(frozen=True)
class ArchNames:
    debian: str
    go: str
    gnu: str
    kernel: tuple[str, ...]


class Arch(enum.Enum):
    I386 = ArchNames(debian="i386", go="386", gnu="i686-linux-gnu", kernel=("i386", "i486", "i586", "i686"))
    AMD64 = ArchNames(debian="amd64", go="amd64", gnu="x86_64-linux-gnu", kernel=("x86_64", "amd64"))

    @property
    def names(self) -> ArchNames:
        return self.value

    @classmethod
    def from_kernel(cls, machine: str) -> Arch:
        for arch in cls:
            if machine in arch.names.kernel:
                return arch
        raise ToolchainError(
            f"unsupported build machine architecture {machine!r}",
            hint="dock32 builds on x86 only (i686 or x86_64)",
        )

    def can_run(self, other: Arch) -> bool:
        """An x86_64 kernel runs i386 programs too; an i386 one only its own."""
        return self is other or (self is Arch.AMD64 and other is Arch.I386)


def build_machine_arch() -> Arch:
    """The architecture the build runs on, as the kernel reports it (setarch i686 counts as i386)."""
    return Arch.from_kernel(platform.machine())
