# Two commands do all set-up: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean prometheus

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "python3.11 not found: install Python 3.11 or run 'make PY=/path/to/python3.11'"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/som demo --duration $${DURATION:-30}

# Debian's prometheus package (prometheus + promtool) for tests/test_prometheus.py; a no-op
# when both are on PATH. Recommends (node exporter) are not needed.
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends prometheus; }

test: $(STAMP) prometheus
	@command -v openssl >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq openssl)
	$(BIN)/ruff check engine models connectors config tests benchmarks
	$(BIN)/python -m pytest engine models connectors config tests

bench: $(STAMP)
	$(BIN)/python benchmarks/stream_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
