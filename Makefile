# Two commands on a fresh machine: `make demo` and `make test`. Both bootstrap .venv
# (re-installing only when pyproject.toml changes) so they are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml scripts/bootstrap.sh 2>/dev/null | sha256sum | cut -c1-16)

.PHONY: demo test lint bench install clean

$(STAMP):
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh $(VENV)
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ouro demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/kernel.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
