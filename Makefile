# Everything a fresh machine needs is installed from here: `make test` and `make demo`
# create .venv and install the project into it before they run anything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LINTED := sweep tests $(wildcard bench)

.PHONY: install browser demo test test-min test-slurm lint bench bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sweep run studies/digits.yaml --confirm 1

# The suite on TEST_WORKERS processes (pytest-xdist; each its own PostgreSQL server and
# MLflow store), tests handed out one at a time as workers free up. Three on two cores:
# many tests wait on the worker processes they start (8 min here; four: no faster).
TEST_WORKERS ?= 3
test: $(STAMP) browser
	$(BIN)/ruff check $(LINTED)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# Debian's chromium and its driver, for the test that opens the MLflow UI and the report
# in a real browser (tests/answers/test_browser.py). Installed where apt-get can run (root, or
# sudo without a password); elsewhere those tests fail and say why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install \
			-y -qq chromium chromium-driver >/dev/null; \
	else echo "note: no chromium and no apt-get to install it: tests/answers/test_browser.py will fail"; fi

# The declared minimum versions (constraints/minimum.txt, generated from pyproject's
# floors) in their own venv, and the whole suite on them: proves the floors hold.
MIN_VENV := .venv-min
test-min: browser
	$(PYTHON) constraints/floors.py
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/pip install --quiet -c constraints/minimum.txt -e '.[dev]'
	$(MIN_VENV)/bin/pip check
	$(MIN_VENV)/bin/python -m pytest -q

# The job array on a real single-node SLURM (Debian's slurm-wlm and munge, installed with
# apt-get: run as root), started and stopped by docker/slurm/single-node.sh.
test-slurm: $(STAMP)
	bash docker/slurm/single-node.sh up
	$(BIN)/python -m pytest -q -o addopts=-ra tests/slurm; status=$$?; \
		bash docker/slurm/single-node.sh down; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)

# Every benchmark of bench/ (its wall time is in bench/README.md, with the figures); the
# versions measured are written to bench/versions.txt (pip install -c reproduces them).
# bench/requirements.txt: what the benchmarks compare regsweep with (KerasTuner, Optuna's
# MLflow callback), installed for them only.
bench: $(STAMP)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/run_all.py

# A 10,000-trial study and 8/32/64 workers (about an hour here): bench/README.md.
bench-scale: $(STAMP)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/run_all.py --only scale_trials many_workers

clean:
	rm -rf $(VENV) $(MIN_VENV) *.egg-info .pytest_cache .ruff_cache
