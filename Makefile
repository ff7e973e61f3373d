# Set-up and entry points. Each target installs what it needs into .venv on a fresh machine.
# TORCH_CONSTRAINTS pins the local CPU wheel of this machine kind; set it empty to let pip choose (e.g. CUDA).
PYTHON ?= python3
VENV ?= .venv
TORCH_CONSTRAINTS ?= constraints.txt
EXTRAS ?= dev,data,tf
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(EXTRAS)
PIP_C := $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS),)

.PHONY: demo test check-metrics bench lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_C) torch
	$(PY) -m pip install --quiet $(PIP_C) -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)  ## the whole mission offline: data, a tiny VideoGPT trained, sampled, scored; quickstart/report.html
	$(VENV)/bin/vgbench weights fetch i3d.kinetics400_tfhub
	$(VENV)/bin/vgbench quickstart --out quickstart

test: $(STAMP)  ## lint, then the whole suite, slow tests included (CI runs this)
	$(VENV)/bin/ruff check vgbench tests benchmarks
	$(VENV)/bin/vgbench weights fetch i3d.kinetics400_tfhub
	$(PY) -m pytest $(PYTEST_ARGS)

# REUSE_QUICKSTART=1 (set by .ci/run right after `make test`, whose quickstart test ran into $(CI_QS)): the gate
# resumes that run (every stage done: nothing recomputed) instead of training it again; otherwise it starts fresh.
CI_QS := $(abspath $(VENV))/ci-quickstart

check-metrics: $(STAMP)  ## the project's metric regression gate (.ci/expected_metrics.yaml)
	rm -rf $(VENV)/ci-results.jsonl
	$(if $(REUSE_QUICKSTART),,rm -rf $(CI_QS))
	$(VENV)/bin/vgbench demo --results $(VENV)/ci-results.jsonl
	$(VENV)/bin/vgbench quickstart --small --out $(CI_QS)
	cat $(CI_QS)/results.jsonl >> $(VENV)/ci-results.jsonl
	$(VENV)/bin/vgbench check .ci/expected_metrics.yaml --results $(VENV)/ci-results.jsonl --junit $(VENV)/ci-check.xml

bench: $(STAMP)  ## performance figures (benchmarks/README.md)
	$(PY) benchmarks/bench_i3d.py
	$(PY) benchmarks/bench_fvd_memory.py
	$(PY) benchmarks/bench_c3d.py
	$(PY) benchmarks/bench_datasets.py
	$(PY) benchmarks/bench_e2e.py
	$(PY) benchmarks/bench_vqvae.py
	$(PY) benchmarks/bench_gpt.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_bootstrap.py

lint: $(STAMP)
	$(VENV)/bin/ruff check vgbench tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
