"""The build stages' work: toolchain, fetch, source, compile and manifest."""
