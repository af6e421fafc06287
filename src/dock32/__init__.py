"""dock32: builds current Docker for 32-bit x86 from pinned upstream sources."""

__version__ = "0.1.0"
