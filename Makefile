# Two commands do all set-up: `make demo` and `make test`. Both create or reuse
# .venv and install Nudge with every dependency pinned (requirements/constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# LightGBM's OpenMP threads spin against each other when several processes share
# two cores (see PERFORMANCE.md); one thread per process is faster here.
export OMP_NUM_THREADS ?= 1

.PHONY: demo test lint typecheck check serve bench constraints clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Nudge needs Python 3.11 or newer, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml requirements/constraints.txt
	@echo "Installing Nudge and its pinned dependencies into $(VENV) (first time takes about two minutes)..."
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nudge demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

serve: $(STAMP)
	$(BIN)/nudge serve

# The HTTP part needs wrk (Debian: apt-get install wrk); without it that part is skipped.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_decide
	$(BIN)/python -m benchmarks.bench_policy
	$(BIN)/python -m benchmarks.bench_journeys
	$(BIN)/python -m benchmarks.bench_data

# Re-pin everything beneath nudge after changing a version in pyproject.toml.
constraints: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip freeze --exclude-editable | sort -f > requirements/constraints.txt

clean:
	rm -rf .nudge reports .mypy_cache .pytest_cache .ruff_cache
