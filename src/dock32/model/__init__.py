"""The config and the project as data: buildcfg.yaml, toolchains/*.yaml and upstream-tests.yaml loaded once,
the flavour, the machine's settings, where outputs go, and each stage's input."""
