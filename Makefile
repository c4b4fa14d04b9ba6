# Two commands on a fresh machine: `make demo` and `make test`. Both bootstrap .venv
# (re-installing only when pyproject.toml changes) so they are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml scripts/bootstrap.sh requirements/models.txt 2>/dev/null | sha256sum | cut -c1-16)

.PHONY: demo test lint bench fuzz install clean

$(STAMP):
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh $(VENV)
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ouro demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Each benchmark prints a table and writes JSON under bench/results/.
bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/kernel.py
	$(BIN)/python bench/submit_share.py
	$(BIN)/python bench/kernel.py --backend postgresql
	$(BIN)/python bench/flux.py
	$(BIN)/python bench/flux.py --executor ray
	$(BIN)/python bench/skills.py
	$(BIN)/python bench/tool_run.py
	$(BIN)/python bench/build_jail.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/skills_retrieval.py
	$(BIN)/python bench/skills_retrieval_scale.py
	$(BIN)/python bench/vectors_postgres.py
	$(BIN)/python bench/llm_evidence.py
	$(BIN)/python bench/improve.py
	$(BIN)/python bench/sanitizer.py
	$(BIN)/python bench/improve_loop.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/mcp_overhead.py

# Coverage-guided fuzzing (atheris) of every harness in fuzz/, FUZZ_SECONDS each; the
# corpora and crash files go under FUZZ_DIR, never into the tree (docs/security.md).
FUZZ_SECONDS ?= 60
FUZZ_DIR ?= /tmp/ouro-fuzz
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS) --corpus $(FUZZ_DIR)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
