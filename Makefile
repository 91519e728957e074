# The two commands of the README. Each does all set-up on a fresh machine (a virtual environment in .venv with
# the CPU build of torch 2.13.0 installed first, so that nothing pulls the CUDA wheels), then runs.
#   make run      the whole study on the embedded default (config.yaml), offline, on the CPU
#   make test     the code checks (snakemake --lint, snakefmt, ruff, mypy) and the test suite
#   make example  the minimal working example (config/example.yaml, about a minute) into results/example/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SNAKEMAKE_ARGS ?= --cores all
# the minimal example's own config and working folder (tests/test_example.py runs exactly these arguments)
EXAMPLE_ARGS := --configfile config/example.yaml --directory results/example

.PHONY: run example test lint install system-deps clean-results docs-figure

# `depthxai run` is snakemake plus a line after each job: the stage and an estimate of the time left
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m depthxai run -- $(SNAKEMAKE_ARGS)

example: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m depthxai run -- $(SNAKEMAKE_ARGS) $(EXAMPLE_ARGS)

# the code checks first (seconds), then the suite
test: $(STAMP) system-deps lint
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest

lint: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --lint
	PATH="$(CURDIR)/$(BIN):$$PATH" snakefmt --check workflow/ Snakefile
	PATH="$(CURDIR)/$(BIN):$$PATH" ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" mypy

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test,hf,lint]"
	rm -f $(VENV)/.installed-*
	touch $@

# Debian packages some tests need (a real single-node SLURM: tests/test_slurm.py). Installed only when running
# as root with apt and only when a program is missing (about 25 s once, nothing after); apt's output is shown
# only if it fails, and a failure does not stop the tests: those that need SLURM skip and say why.
SYSTEM_PROGRAMS := munged slurmctld slurmd sbatch srun squeue sinfo scontrol scancel
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  for prog in $(SYSTEM_PROGRAMS); do command -v $$prog >/dev/null || missing=1; done; \
	  if [ -n "$$missing" ]; then \
	    log=$$(mktemp); \
	    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        slurm-wlm munge) >"$$log" 2>&1; then echo "system-deps: installed slurm-wlm munge"; \
	    else tail -n 20 "$$log"; echo "system-deps: could not install slurm-wlm munge; SLURM tests will skip"; fi; \
	    rm -f "$$log"; \
	  fi; \
	fi

clean-results:
	rm -rf results logs .snakemake

# The README's `depthxai explain` panel: a synthetic test scene and the METER-XXS the default run trained (run
# `make run` first); written to docs/ (committed: it is documentation, not a result).
DOCS_SCENE := results/data/synthindoor/rgb/test_000003.png
docs-figure: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m depthxai explain -q $(DOCS_SCENE) --model meter_xxs_synthindoor \
	  --weights results/models/synthindoor/meter_xxs/weights.pt --method saliency --method ig --method rollout \
	  --method "captum:NoiseTunnel(Saliency)" --method-params ig='{"n_steps": 32}' --target near --evaluate \
	  --out results/docs_explain
	cp results/docs_explain/test_000003/panel.png docs/explain_synthindoor_meter_xxs.png
