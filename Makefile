# make demo: set up and run allowlist on the built-in demo estate (local ARM emulator)
# make test: set up and run lint, type checks and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint help bench bench-scale bench-startup clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/allowlist demo

lint: install
	$(BIN)/ruff check allowlist tests bench
	$(BIN)/ruff format --check allowlist tests bench
	$(BIN)/mypy

# after changing any help text (a command's docstring or options, COMMANDS, the app's text): saves what
# each --help prints, which allowlist prints without importing typer
help: install
	$(BIN)/python -c "from allowlist.cli.main import save_help; save_help()"

test: lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/plan_vs_baseline.py --record bench/RESULTS.md

bench-scale: install
	$(BIN)/python bench/scale.py --sizes 1000,10000 --record bench/RESULTS.md

bench-startup: install
	$(BIN)/python bench/startup.py --record bench/RESULTS.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
