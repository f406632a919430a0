# fruits-assets: `make demo` and `make test` on a fresh machine with Python 3.11 and Java 17.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export FRUITS_DATA_ROOT ?= $(CURDIR)/data
# `dagster asset materialize` is "superseded" by dg in 1.13 and says so on every call: we use it
# knowingly (the design card names it; `dg launch` works too).
export PYTHONWARNINGS ?= ignore::FutureWarning
SAMPLE_IMAGES ?= 200
# Progress lines (images found, featurized N at X img/s, k, where outputs are); DEBUG shows every event.
DEMO_LOG_LEVEL ?= INFO
DEMO_IMAGES_DIR = $(or $(FRUITS_IMAGES_DIR),$(FRUITS_DATA_ROOT)/sample_images)

.PHONY: install java blas chromium demo test test-fast ui notebook bench clean lint

# The instance `make demo` and `make ui` use, for the dagster/dg CLIs run by hand from this folder
# too (both load .env from the working directory). Not committed: it holds an absolute path.
.env:
	@echo "DAGSTER_HOME=$(DAGSTER_HOME)" > $@

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Spark 4 needs Java 17+: fail in one clear line rather than deep inside py4j.
java:
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "error: Java >= 17 is required by Spark (found: $${v:-none}); install e.g. openjdk-17-jre-headless" >&2; exit 1; fi

demo: java blas install .env
	@$(BIN)/fruits-assets home init >/dev/null
	@if [ -z "$(FRUITS_IMAGES_DIR)" ] && [ ! -d "$(DEMO_IMAGES_DIR)" ]; then \
	  $(BIN)/python -m fruits_assets.images.sample_data "$(DEMO_IMAGES_DIR)" --images $(SAMPLE_IMAGES); fi
	FRUITS_IMAGES_DIR="$(DEMO_IMAGES_DIR)" $(BIN)/dagster asset materialize -m fruits_assets.definitions --select '*' \
	  --config-json '{"loggers": {"console": {"config": {"log_level": "$(DEMO_LOG_LEVEL)"}}}}'
	@$(BIN)/python -m fruits_assets.cli.summary

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Spark ML (the feature probe's logistic regression) multiplies matrices through native BLAS when
# the JVM finds libblas.so.3; without it, local Spark's C1-only JIT made the probe 23x slower here.
blas:
	@ldconfig -p | grep -q 'libblas\.so\.3' || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q libopenblas0-pthread >/dev/null; }

# The browser test drives Debian's Chromium (Playwright's own download cannot work offline).
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium >/dev/null; }

test: java blas install chromium
	$(BIN)/python -m pytest

# Pure logic only (no JVM, Spark, TensorFlow model, server or subprocess): under a minute.
test-fast: install
	$(BIN)/python -m pytest -m fast -q

# Lint, format and types: what CI checks before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

ui: java blas install .env
	@$(BIN)/fruits-assets home init >/dev/null
	$(BIN)/dagster dev -w workspace.yaml

# JupyterLab on 127.0.0.1 with the project kernel ("Python 3 (fruits-assets)"): this venv, reading
# the outputs of `make demo` (the same DAGSTER_HOME and FRUITS_DATA_ROOT).
$(BIN)/.notebook: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,notebook]'
	touch $@

notebook: install $(BIN)/.notebook
	@$(BIN)/python -m ipykernel install --sys-prefix --name fruits-assets --display-name "Python 3 (fruits-assets)" \
	  --env DAGSTER_HOME "$(DAGSTER_HOME)" --env FRUITS_DATA_ROOT "$(FRUITS_DATA_ROOT)" >/dev/null
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/explore.ipynb

bench: java blas install
	$(BIN)/python benchmarks/featurize.py --images 4000

clean:
	rm -rf data .dagster_home spark-warehouse
