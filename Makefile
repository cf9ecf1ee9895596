# chute — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
ARGS ?=

.PHONY: venv run demo test slow lint unit bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

run: venv  ## start the embedded stack and the API on http://127.0.0.1:8000 (Ctrl-C stops; ARGS=--fresh starts empty)
	$(BIN)/python -m infra.local $(ARGS)

demo: venv  ## a scripted end-to-end job: make demo ARGS="--files 100 --corrupt 1"
	@$(BIN)/python -m chute_cli demo $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

unit: venv
	$(BIN)/python -m pytest -q tests/unit

test: lint  ## lint, type-check, then every test but the slow ones (unit, integration, e2e, faults)
	$(BIN)/python -m pytest -q -m "not slow"

slow: venv  ## the slow scenarios (hundreds of units under faults); CI runs them after `make test`
	$(BIN)/python -m pytest -q -m slow

BENCHES := $(filter-out __init__ table timing,$(basename $(notdir $(wildcard bench/*.py))))

bench: venv  ## every benchmark (each prints one JSON line), then the table of goals
	@mkdir -p .chute && : > .chute/bench.jsonl
	@for name in $(BENCHES); do \
		$(BIN)/python -m bench.$$name | tee -a .chute/bench.jsonl || exit 1; done
	@$(BIN)/python -m bench.table < .chute/bench.jsonl

clean:
	rm -rf $(VENV) .chute .mypy_cache .ruff_cache .pytest_cache
