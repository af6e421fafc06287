"""Proving the packages: verify and its scenarios in an installed i386 root, verify-upgrade, and the components' own test suites."""
