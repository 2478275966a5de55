# camera-gateway: `make demo` runs the embedded default, `make test` runs the checks and tests.
# Each target installs what it needs (Debian packages as root, then a venv in .venv).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench fleet lint pytest clean system-demo system-test

# Debian keeps mosquitto in /usr/sbin, which a user's PATH may lack.
demo: system-demo $(VENV)/.installed
	PATH="$$PATH:/usr/sbin:/sbin" $(BIN)/camera-gateway demo

test: system-test $(VENV)/.installed lint pytest

# Camera count and cost against an ffmpeg per camera; writes bench/results/ (about 9 minutes).
bench: system-test $(VENV)/.installed
	$(BIN)/python bench/run.py

# 50 boxes against one centre broker and one Prometheus; writes bench/results/fleet/ (about 6 minutes).
fleet: system-test $(VENV)/.installed
	$(BIN)/python bench/fleet_sim.py --out bench/results/fleet

lint: $(VENV)/.installed
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench
	$(BIN)/mypy

# pytest exits 5 when it collects nothing: that is a broken suite, never a pass. Two workers:
# the tests mostly wait on real time (cameras, segments, timeouts); by file, so that the tests
# sharing a network namespace or a test address never run at once.
PYTEST_WORKERS ?= -n 2 --dist loadfile
pytest: $(VENV)/.installed
	@CAMERA_GATEWAY_STRICT=1 $(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

system-demo:
	@sh deploy/debian-packages.sh demo

system-test:
	@sh deploy/debian-packages.sh test

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "camera-gateway needs Python >= 3.11 (found: $$($(PYTHON) --version))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
