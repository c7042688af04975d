# pivotal: `make forecast` runs the shipped example, `make test` the test suite.
# Needs only Python >= 3.11 and make; everything else goes into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= configs/scenarios/syria_safe_zone_2019.toml
EPISODES ?= 1000000

.PHONY: install forecast test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pivotal needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/pivotal warmup
	@touch $@

forecast: install
	$(BIN)/pivotal run $(SCENARIO) --episodes $(EPISODES)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) forecasts .pytest_cache
