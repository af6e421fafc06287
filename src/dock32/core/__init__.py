"""Foundations every stage uses: error kinds and exit codes, the one place that runs commands, atomic writes, file modes, disk space, architectures."""
