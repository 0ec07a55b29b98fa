# Two commands do everything on a fresh machine:
#   make demo   set up .venv, get Fashion-MNIST, run the offline demo DAG to tables, plots, report
#   make test   set up .venv, get Fashion-MNIST, run the test suite (what CI runs)
#   make test-slurm / make test-browser: the SLURM profile on a one-node cluster, the report in
#               headless Chromium (CI runs both after make test)

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
CORES ?= 2
# --replace-workflow-config: the demo config replaces config.yaml instead of merging into it.
DEMO := --configfile config/demo.yaml --replace-workflow-config
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data demo demo-tolerance readme test test-slurm test-browser lint dryrun clean-demo

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

# One snakemake process: the DAG, then (--report-after-run) the self-contained report.
demo: setup data
	snakemake --cores $(CORES) $(DEMO) --report results/demo/report.html --report-after-run \
		--report-stylesheet workflow/report/stylesheet.css

# The demo again with other thread counts, then the README's demo section (tables, diagnostics,
# figures, tolerance) regenerated from results/demo (never typed by hand).
demo-tolerance: setup data
	snakemake --cores $(CORES) --configfile config/demo.yaml config/demo_tolerance.yaml \
		--replace-workflow-config collect_results

readme: setup
	microclip readme results/demo $(if $(wildcard results/demo_tolerance/runs.csv),--compare results/demo_tolerance)

test: setup data
	pytest -q

# The SLURM profile on a real cluster: a one-node SLURM with accounting on this machine
# (.ci/slurm-up.sh, as root: packages, slurm.conf from `slurmd -C`, daemons, an sbatch round
# trip), then the reduced demo DAG submitted through profiles/slurm (tests/test_slurm.py), with
# the account and partitions the script creates. On a real cluster: set MICROCLIP_SLURM_ACCOUNT,
# MICROCLIP_GPU_PARTITION, MICROCLIP_CPU_PARTITION and run the pytest line alone.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SLURM_TEST_ENV := MICROCLIP_TEST_SLURM=1 MICROCLIP_SLURM_ACCOUNT=microclip \
	MICROCLIP_GPU_PARTITION=gpu MICROCLIP_CPU_PARTITION=cpu

test-slurm: setup data
	$(SUDO) bash .ci/slurm-up.sh up
	$(SLURM_TEST_ENV) pytest -q -s -m slurm tests/test_slurm.py

# The report in headless Chromium (Debian's chromium + chromium-driver, installed here when
# root and apt allow): the report of `make test`'s demo run, or MICROCLIP_REPORT=path.
test-browser: setup
	@if ! command -v chromedriver >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi
	pytest -q -s -m browser tests/test_report_browser.py

lint: setup
	ruff check microclip tests benchmarks
	snakemake --lint --cores 1
	snakemake --lint --cores 1 $(DEMO)

dryrun: setup
	snakemake -n --cores 8

clean-demo:
	rm -rf results/demo logs/demo
