# workbench: two commands from a fresh clone -- `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= viz,notebooks,test
# Debian packages: chromium (figure export, browser tests) and the libraries open3d loads.
APT_PACKAGES := chromium chromium-driver libegl1 libgl1 libx11-6 libusb-1.0-0 libudev1 libidn2-0 libgomp1
PROFILE ?= quick

.PHONY: help env sysdeps demo test test-fast lab clean-env bench strip-notebooks

help:
	@echo "make demo   - create the environment if needed and run the main job (profile $(PROFILE))"
	@echo "make test   - create the environment if needed and run the whole test suite"
	@echo "make lab    - JupyterLab on the notebooks"
	@echo "make bench  - run the benchmarks (outputs/benchmarks.md)"

# The environment is rebuilt only when pyproject.toml changes (stamp file), so a second
# `make test` spends a second or two on setup.
env: sysdeps $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet "pip>=24" setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@# strip notebook outputs on `git add` (the git filter named in .gitattributes)
	@if git rev-parse --git-dir >/dev/null 2>&1; then $(BIN)/nbstripout --install --attributes .gitattributes || true; fi
	@touch $(STAMP)

sysdeps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "note: not a Debian system; install chromium and the OpenGL/EGL libraries open3d needs yourself"; \
	  elif [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: apt-get install failed; figure export falls back to matplotlib/HTML and browser tests are skipped"; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y $$missing"; \
	  fi; \
	fi

demo: env
	$(BIN)/workbench run --profile $(PROFILE)

test: env
	$(BIN)/python -m pytest

lab: env
	$(BIN)/jupyter lab notebooks

bench: env
	$(BIN)/python benchmarks/run_all.py

strip-notebooks: env
	$(BIN)/nbstripout notebooks/*.ipynb

clean-env:
	rm -rf $(VENV)
