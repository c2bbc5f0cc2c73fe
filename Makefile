# The two commands a new machine needs (see README.md):
#   make serve   install into .venv and start `tokend serve` on the embedded default models, with what a
#                developer wants locally (gRPC reflection for grpcurl; the playground on localhost:8080)
#   make test    install everything the tests need (venv + apt packages) and run the whole suite
# VENV may point elsewhere (CI uses a fresh one). Anything after ARGS= goes to the command.

PYTHON ?= python3.11
VENV   ?= .venv
ARGS   ?=
BIN    := $(VENV)/bin
# Debian packages the tests use, as command:package: promtool (prometheus), headless Chromium +
# ChromeDriver (playground), npm (model fixtures from pinned npm packages: tests/support/package_files.py).
# Only the packages of missing commands are installed: a machine whose Node.js comes from elsewhere has an
# npm that Debian's npm package conflicts with.
APT_NEEDS ?= promtool:prometheus chromium:chromium chromedriver:chromium-driver npm:npm

.PHONY: serve test install install-test system-deps protos bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e api -e service -e client

install-test: install
	$(BIN)/python -m pip install --quiet -r tests/requirements.txt

serve: install
	$(BIN)/tokend serve --reflection $(ARGS)

system-deps:
	@missing=""; for need in $(APT_NEEDS); do \
	  command -v "$${need%%:*}" >/dev/null || missing="$$missing $${need#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The venv's bin goes first on PATH: tests run tools installed there (hadolint, tokend).
test: install-test system-deps
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(ARGS)

protos: $(BIN)/python
	$(BIN)/python -m pip install --quiet grpcio-tools
	$(BIN)/python protos/generate.py

bench: install-test
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache service/build
	find service/src -name "*.so" -delete
