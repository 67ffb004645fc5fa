# Set-up and everyday commands. `make demo` and `make test` work on a fresh clone:
# both create .venv/ first when it is missing or older than pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test test-unit demo sandbox lint clean publish-image

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

demo: install
	$(PY) examples/demo.py

sandbox: install
	$(VENV)/bin/covalent-ecs sandbox

lint: install
	$(VENV)/bin/ruff check executor runtime_image tests examples benchmarks

clean:
	rm -rf $(VENV) .pytest_cache

# Build the runner image without Docker and push it (ECR of [executors.ecs] by default).
# Pass flags through PUBLISH_ARGS, e.g.
#   make publish-image PUBLISH_ARGS="--registry https://ghcr.io --repository me/covalent-runner"
PUBLISH_ARGS ?=
publish-image: install
	$(VENV)/bin/covalent-ecs publish-image $(PUBLISH_ARGS)
