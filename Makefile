# The two commands of the README. Each does all set-up on a fresh machine (a virtual environment in .venv with
# the CPU build of torch 2.13.0 installed first, so that nothing pulls the CUDA wheels), then runs.
#   make run    the whole study on the embedded default (config.yaml), offline, on the CPU
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SNAKEMAKE_ARGS ?= --cores all

.PHONY: run test install system-deps clean-results

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake $(SNAKEMAKE_ARGS)

test: $(STAMP) system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

# Debian packages some tests need (a real single-node SLURM). Installed only when running as root with apt;
# elsewhere those tests skip and say why.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  command -v slurmctld >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null); \
	fi

clean-results:
	rm -rf results logs .snakemake
