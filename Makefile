# Conveyor — developer entry points. `make demo` and `make test` work on a fresh machine
# (Python 3.11, JDK 17+, Maven): they create the virtualenv and start the local stack themselves.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test stacks check retention every 2 s (Kafka's default is 5 min), so a record stamped older
# than retention is deleted at once and the tests see it (issue 13).
TEST_ENV := CONVEYOR_KAFKA_RETENTION_CHECK_MS=$${CONVEYOR_KAFKA_RETENTION_CHECK_MS:-2000}

PLUGINS := examples/conveyor-langid examples/conveyor-qdrant
FOLDERS := streams processors sinks dlq schemas tools review
# kustomize (Go module proxy), built once into build/bin for rendering and validating k8s/
KUSTOMIZE_VERSION := v5.7.1
KUSTOMIZE := $(CURDIR)/build/bin/kustomize
TEST_ENV += CONVEYOR_KUSTOMIZE=$(KUSTOMIZE)

.PHONY: install up down status demo test test-faults test-faults-full test-unit lint lint-imports lint-ruff lint-types docs bench soak models eval clean \
	datasets \
	wheel image k8s k8s-validate

$(STAMP): pyproject.toml setup.py $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,docs,bench]'
	# the example plugins (examples/): tests run them end to end through their entry points
	$(BIN)/pip install -q $(addprefix -e ,$(PLUGINS))
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
test: install $(KUSTOMIZE)
	$(TEST_ENV) $(BIN)/pytest -q -rs tests --ignore=tests/faults

# The fault-injection suite (issue 3): ≥2,000 real inputs per scenario while processors are
# SIGKILLed, the broker restarts, Milvus goes away, transient failures are injected and hostile
# input is mixed in; figures go to build/fault-report.json.
# With it, the cluster scenarios (issue 12) at CI size: three KRaft nodes, two instances of every
# processor, 1,000 texts + 8 documents each; test-faults-full runs them at 10,000 texts.
test-faults: install
	mkdir -p build
	$(TEST_ENV) CONVEYOR_FAULT_SUITE=1 $(BIN)/pytest -q -rs -s -p no:cacheprovider --basetemp=build/fault-tmp tests/faults

test-faults-full: install
	mkdir -p build
	$(TEST_ENV) CONVEYOR_FAULT_SUITE=1 CONVEYOR_FAULT_CLUSTER_TEXTS=10000 CONVEYOR_FAULT_CLUSTER_PRODUCE_SECONDS=300 \
		$(BIN)/pytest -q -rs -s -p no:cacheprovider --basetemp=build/fault-tmp tests/faults/test_cluster_faults.py

test-unit: install
	$(BIN)/pytest -q tests/unit

# Static checks CI runs: the import contract (.importlinter), ruff and mypy (rules and strictness
# in pyproject.toml) and the docs site, strictly.
lint: lint-imports lint-ruff lint-types docs

lint-imports: install
	$(BIN)/lint-imports

lint-ruff: install
	$(BIN)/ruff check .

# mypy reads the packages under their installed names through build/api-src/conveyor/ (as docs does).
lint-types: install
	mkdir -p build/api-src/conveyor
	for d in $(FOLDERS); do ln -sfn ../../../$$d build/api-src/conveyor/$$d; done
	$(BIN)/mypy $(addprefix -p conveyor.,$(FOLDERS))

# The MkDocs site into build/site; mkdocstrings reads the sources under their installed names,
# linked in build/api-src/conveyor/ (the repository keeps the card's folders).
docs: install
	mkdir -p build/api-src/conveyor
	for d in $(FOLDERS); do ln -sfn ../../../$$d build/api-src/conveyor/$$d; done
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# One run, one report (about 17 min on 2 cores): raw libraries, OCR settings, stages, text capacity
# with its CPU profile, open-loop latency and commit cost (real stack, exactly-once), commit cadence,
# the mixed document run with peak RSS, the embed step on Quix Streams and Faust, scale-out 1/2/4,
# extract on the largest documents; build/bench/bench.{jsonl,png}. Figures: docs/benchmarks.md.
bench: install
	$(BIN)/python -m conveyor.tools.bench

# 20 minutes of the whole pipeline at half its text capacity (texts + a document every 30 s):
# RSS per process sampled every 30 s, growth and slope after the warm-up; build/bench/soak.jsonl.
# Outside CI. SOAK_ARGS="--minutes 5 --rate 40 --milvus-uri http://HOST:19530" to change it (with Milvus
# Lite, the default, the collection lives inside the index + classify process and grows with its rows).
soak: install
	$(BIN)/python -m conveyor.tools.bench.soak $(SOAK_ARGS)

# Measured quality on ../shared/corpus (skips what is absent): build/eval/eval.json + eval.md.
eval: install
	$(BIN)/python -m conveyor.tools.evaluation

# The training set of issue 24 from local clones of the public repositories it names (training splits
# only): files, a manifest (path, sha256, label source) and the extract stage's OCR, cached under
# ~/.cache/conveyor/datasets (CONVEYOR_DATASETS_DIR). CLONES is the folder holding the clones
# (default ../datasets; a missing clone is named with the command that gets it). About 16 min on
# 2 cores the first time (OCR of 770 images), seconds after.
CLONES ?= $(CURDIR)/../datasets
datasets: install
	$(BIN)/python -m conveyor.tools.datasets --clones $(CLONES)

# Retrain the shipped models (needs `make datasets` for the document models): intent, the rules'
# field confidence table, the document type (about 12 min) and the key-field model (about 15 min).
models: install
	$(BIN)/python -m conveyor.tools.training.train_intent
	$(BIN)/python -m conveyor.tools.training.field_confidence
	$(BIN)/python -m conveyor.tools.training.train_doctype
	$(BIN)/python -m conveyor.tools.training.train_keyfields

$(KUSTOMIZE):
	mkdir -p build/bin
	GOBIN=$(CURDIR)/build/bin GOFLAGS=-mod=mod go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# A wheel and an sdist of this checkout into dist/.
wheel: install
	$(BIN)/python -m build --outdir dist .

# The container image (podman; a Debian bookworm base made with debootstrap when no --base is given).
image: install
	$(BIN)/python -m conveyor.tools.image

# k8s/base from the pipeline definition; then every overlay rendered and validated offline.
k8s: install
	$(BIN)/python -m conveyor.tools.k8s generate

k8s-validate: install $(KUSTOMIZE)
	$(BIN)/python -m conveyor.tools.k8s validate --kustomize $(KUSTOMIZE)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
