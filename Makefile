# The two quick-start commands (see README): `make demo` and `make test`.
# Each bootstraps what it needs: the virtualenv, the Python packages, the Maven jars and the local stack.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv stack-down system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never downloads one).
# Needs root and apt; elsewhere the browser tests skip and say why.
system-deps:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

demo: $(STAMP)
	$(BIN)/nudge demo

# pytest exits 5 when it collected no test: that must fail, not pass.
test: $(STAMP) system-deps
	$(BIN)/nudge stack fetch
	$(BIN)/python -m pytest -p no:cacheprovider -q -rfEs tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests were collected: failing"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy core schemas streams agents stack simulator bench

stack-down: $(STAMP)
	$(BIN)/nudge stack down
