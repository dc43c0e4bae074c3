# make demo  - set up .venv, run the demo flow locally with a live progress display, then run it
#              again through a server and an agent (examples/orchestrated_demo.sh)
# make test  - set up .venv (and the system packages the tests need), run ruff and mypy, then the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every plugin under plugins/ is installed editable; each may add pins in requirements/<name>.txt.
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
EDITABLES := -e core $(addprefix -e ,$(PLUGIN_DIRS))
REQUIREMENTS := requirements/dev.txt $(filter-out requirements/dev.txt,$(sort $(wildcard requirements/*.txt)))

.PHONY: venv demo test system-deps clean

# The last step writes bytecode for the editable sources, as installing a wheel does: where
# PYTHONDONTWRITEBYTECODE=1, every process (each CLI call, server and agent the tests start) would
# compile them from source again.
$(VENV)/.installed: $(REQUIREMENTS) core/pyproject.toml $(addsuffix pyproject.toml,$(PLUGIN_DIRS)) Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install -q --disable-pip-version-check $(addprefix -r ,$(REQUIREMENTS))
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps $(EDITABLES)
	$(BIN)/python -m compileall -q core/src $(addsuffix src,$(PLUGIN_DIRS)) > /dev/null
	touch $@

venv: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

demo: venv
	$(BIN)/headwater run examples/demo.py
	BIN=$(BIN) bash examples/orchestrated_demo.sh

test: venv system-deps
	$(BIN)/ruff check core plugins contrib tests benchmarks docs
	$(BIN)/mypy
	$(BIN)/python -m pytest --durations=25

clean:
	rm -rf $(VENV) site .pytest_cache
