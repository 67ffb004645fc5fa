# Set-up and everyday commands. `make demo` and `make test` work on a fresh clone:
# both create .venv/ first when it is missing or older than pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test test-unit demo sandbox lint clean publish-image runner-requirements bench bench-quick bench-original bench-compare bench-runner-start

# uv (a package on PyPI) installs the same pinned wheels several times faster than pip;
# when it cannot be installed, or cannot install (uv does not read pip's configuration:
# a private index or proxy certificate set up for pip), pip does the same job.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if $(PY) -m pip install -q --disable-pip-version-check uv >/dev/null 2>&1 \
		&& echo "installing with uv" \
		&& $(VENV)/bin/uv pip install --python $(PY) -q -e '.[dev]'; then \
		:; \
	else \
		echo "uv unavailable or failed: installing with pip"; \
		$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'; \
	fi
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
	$(VENV)/bin/ruff check executor runtime_image pytest_plugin tests examples benchmarks

# Benchmarks (not tests): this executor and the original covalent-ecs-plugin side by
# side in the sandbox; prints the table, writes benchmarks/results/latest.{json,md}.
# The original plugin gets its own cached venv (benchmarks/.venv-original).
bench-original:
	PYTHON=$(PYTHON) benchmarks/setup_original.sh

bench: install bench-original
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

bench-quick: install bench-original
	$(PY) benchmarks/bench.py --quick $(BENCH_ARGS)

# Is the run `make bench` just wrote the same as the committed one? (benchmarks/compare.py says the rule)
bench-compare: install
	$(PY) benchmarks/compare.py

# Runner start in the published image (Debian base, chroot; needs root): prints
# "container start -> function start" p50/p95 over 12 cold starts.
bench-runner-start: install
	$(PY) benchmarks/runner_start.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# Build the runner image without Docker and push it (ECR of [executors.ecs] by default).
# Pass flags through PUBLISH_ARGS, e.g.
#   make publish-image PUBLISH_ARGS="--registry https://ghcr.io --repository me/covalent-runner"
PUBLISH_ARGS ?=
publish-image: install
	$(VENV)/bin/covalent-ecs publish-image $(PUBLISH_ARGS)

# The runner's pinned dependencies (this client's versions) for `docker build` (Dockerfile).
runner-requirements: install
	mkdir -p build
	$(PY) -c "from covalent_ecs_executor.image.layers import pinned_requirements as p; print(*p(), sep='\\n')" > build/runner-requirements.txt
	@echo "wrote build/runner-requirements.txt"
