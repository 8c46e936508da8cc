# The few commands people need. Each creates .venv on first use and installs the package into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The data folder (RECOMMENDER_DATA, else data/raw, else ../shared/data beside the checkout) is
# resolved by recommender/core/config.py, so make, the CLI and a plain `jupyter lab` agree.

.PHONY: install run lab test bench serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,serve]"
	touch $(STAMP)

install: $(STAMP)

DATASET ?= ml-latest-small
JOBS ?= 2

run: $(STAMP)  ## every notebook end to end (DATASET=ml-latest-small, any release name, fetched if missing; JOBS notebooks at once), reports in reports/
	$(BIN)/recommender run --dataset $(DATASET) --jobs $(JOBS)

lab: $(STAMP)  ## JupyterLab on notebooks/, the project's environment as its kernel, data as for make run
	-$(BIN)/recommender data fetch ml-latest-small
	$(BIN)/jupyter lab --notebook-dir=notebooks --KernelManager.transport=ipc

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest -q

bench: $(STAMP)  ## benchmarks that print figures (install the optional [bench] extra for Surprise)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/u20.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/scale.py

serve: $(STAMP)  ## the REST API and the web page on http://127.0.0.1:8000/ (ml-latest-small)
	$(BIN)/python -m pip install --quiet -e ".[serve]"
	$(BIN)/recommender serve --dataset ml-latest-small

clean:
	rm -rf $(VENV) build *.egg-info
