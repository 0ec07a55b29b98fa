# Two commands do everything on a fresh machine:
#   make demo   set up .venv, get Fashion-MNIST, run the offline demo DAG to tables, plots, report
#   make test   set up .venv, get Fashion-MNIST, run the test suite (what CI runs)

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
CORES ?= 2
# --replace-workflow-config: the demo config replaces config.yaml instead of merging into it.
DEMO := --configfile config/demo.yaml --replace-workflow-config
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data demo demo-report test lint dryrun clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[workflow,dev]'
	touch $@

# Debian's dataset-fashion-mnist; without apt (or root) the demo names the package and path.
data:
	@if [ ! -f $(FMNIST) ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	fi

demo: setup data
	snakemake --cores $(CORES) $(DEMO)
	snakemake --cores $(CORES) $(DEMO) --report results/demo/report.html

test: setup data
	pytest -q

lint: setup
	ruff check microclip tests benchmarks
	snakemake --lint --cores 1
	snakemake --lint --cores 1 $(DEMO)

dryrun: setup
	snakemake -n --cores 8

clean-demo:
	rm -rf results/demo logs/demo
