# chute — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
ARGS ?=

.PHONY: venv run demo test slow lint unit bench clean package deploy

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

test: lint  ## lint, type-check, then every test but the slow ones (unit, integration, e2e, faults), on 2 workers
	$(BIN)/python -m pytest -q -m "not slow" -n 2

slow: venv  ## the slow scenarios (hundreds of units under faults); CI runs them after `make test`
	$(BIN)/python -m pytest -q -m slow

BENCHES := $(filter-out __init__ table timing,$(basename $(notdir $(wildcard bench/*.py))))

bench: venv  ## every benchmark (each prints one JSON line), then the table of goals
	@mkdir -p .chute && : > .chute/bench.jsonl
	@for name in $(BENCHES); do \
		$(BIN)/python -m bench.$$name | tee -a .chute/bench.jsonl || exit 1; done
	@$(BIN)/python -m bench.table < .chute/bench.jsonl

STAGE ?= prod
STACK ?= chute-$(STAGE)
PACKAGE_DIR := build/package

package: venv  ## build/package/: deployment.zip and template.json (chalice package + infra/resources.py)
	$(BIN)/python -m infra.template package --stage $(STAGE) --out $(PACKAGE_DIR)

# Needs the aws CLI and credentials; ARTIFACTS_BUCKET is an existing bucket for the code and the
# template; PARAMS adds overrides, e.g. PARAMS="ModelApiKey=sk-… WorkConcurrency=20".
deploy: package  ## create or update the stack: make deploy ARTIFACTS_BUCKET=… NOTIFICATION_EMAIL=…
	@test -n "$(ARTIFACTS_BUCKET)" || { echo "error: set ARTIFACTS_BUCKET=<an S3 bucket for the code>" >&2; exit 2; }
	@command -v aws >/dev/null || { echo "error: the aws CLI is not installed" >&2; exit 2; }
	aws cloudformation package --template-file $(PACKAGE_DIR)/template.json \
		--s3-bucket $(ARTIFACTS_BUCKET) --s3-prefix $(STACK) --use-json \
		--output-template-file $(PACKAGE_DIR)/packaged.json
	aws cloudformation deploy --template-file $(PACKAGE_DIR)/packaged.json --stack-name $(STACK) \
		--s3-bucket $(ARTIFACTS_BUCKET) --s3-prefix $(STACK) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
		--parameter-overrides Stage=$(STAGE) NotificationEmail=$(NOTIFICATION_EMAIL) $(PARAMS)
	aws cloudformation describe-stacks --stack-name $(STACK) --query "Stacks[0].Outputs" --output table

clean:
	rm -rf $(VENV) .chute .mypy_cache .ruff_cache .pytest_cache
