# dock32: `make build` and `make test` do all the set-up a fresh machine needs.
# Python dependencies go into .venv (PEP 668 systems refuse pip into the system Python).
HOST_PYTHON ?= python3
VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
# Checks .github/workflows (tests/e2e/test_workflow.py); built from the Go module proxy into the venv.
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12

.PHONY: setup test-tools build verify verify-sysvinit verify-i386-kernel test test-all lint bench bench-ci clean

# Idempotent and quick when everything is there: pip only runs when an import
# fails or dock32 is installed from another checkout; apt only for what is missing.
# Paths are quoted in every recipe, since a checkout's path may hold a space; the
# import check reads the checkout from os.getcwd() (the recipe's working folder)
# rather than from $(CURDIR) pasted into its Python code.
setup:
	@test -x "$(PYTHON)" || $(HOST_PYTHON) -m venv "$(VENV)" \
	  || { echo "error: cannot create $(VENV) (hint: apt-get install python3-venv)" >&2; exit 1; }
	@"$(PYTHON)" -c "import dock32, doit, requests, tqdm, yaml, debian, pytest, ruff, mypy, spdx_tools, hypothesis, os, sys; \
	  sys.exit(0 if dock32.__file__.startswith(os.path.join(os.getcwd(), 'src', '')) else 1)" 2>/dev/null \
	  || "$(PYTHON)" -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@"$(PYTHON)" -m dock32.cli setup

# What only the tests use: the Debian packages of toolchains/host.yaml test_apt (qemu, to boot a 32-bit kernel),
# and actionlint for the CI workflow (it needs a Go >= 1.25, or one that fetches it). On an i386 machine there may be
# neither (the module proxy may serve no linux-386 toolchain): there the workflow check says so and skips.
test-tools: setup
	@"$(PYTHON)" -m dock32.cli setup --tests
	@test -x "$(VENV)/bin/actionlint" || GOBIN="$(VENV)/bin" GOTOOLCHAIN=auto go install $(ACTIONLINT) \
	  || { test "$$(uname -m)" != x86_64 && echo "warning: no actionlint on this $$(uname -m) machine (it needs a Go >= 1.25); its test skips" >&2; }

build: setup
	"$(PYTHON)" -m doit build

# Install the packages into a clean i386 Debian booted under systemd and run real containers (root).
verify: setup
	"$(PYTHON)" -m doit verify

# The same under sysvinit (in make test-all).
verify-sysvinit: setup
	"$(PYTHON)" -m doit verify-sysvinit

# The same on a real 32-bit kernel: Debian's 686-pae booted in QEMU (root; KVM where /dev/kvm works, else emulated;
# in make test-all).
verify-i386-kernel: setup
	"$(PYTHON)" -m doit verify-i386-kernel

lint: setup
	"$(PYTHON)" -m ruff check src tests scripts dodo.py
	"$(PYTHON)" -m mypy

# Lint, unit, integration and the real default build (e2e): what CI runs.
test: test-tools lint
	"$(PYTHON)" -m pytest -m "not slow" tests

# Everything, including the slow extras (a second cold build that must be byte-identical).
test-all: test-tools lint
	"$(PYTHON)" -m pytest tests

bench: setup
	"$(PYTHON)" scripts/bench.py

# A cold and a warm run of the CI workflow's build job (its first matrix entry), each in a fresh checkout with an
# empty HOME, the caches moved between them as actions/cache would: each step's time and the caches' stored sizes
# (root, Debian 12; scripts/ci_warm.py --help for stopping after a step).
bench-ci: setup
	"$(PYTHON)" scripts/ci_warm.py

clean: setup
	"$(PYTHON)" -m doit clean
