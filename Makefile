# favor-bench: `make studies` regenerates the default studies and plots; `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup studies demo test lint slow calibrate bench-smoke audit gpu-compare dashboard clean

# torch first and pinned: it installs the CPU build (an unpinned torch pulls a multi-GB CUDA build).
# triton is installed so the fused kernels are tested on CPU through its interpreter.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,audit]' triton==3.9.0 ruff
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m estimators.demo

studies: $(STAMP)
	$(BIN)/python -m studies all --recompute

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/python -m pytest -q && $(MAKE) bench-smoke

slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Tier 2: every Tier 1 pair of the check set over fresh seeds: 200 per pair that must pass, 460 per
# planted defect (the fewest that can establish power 0.99); several hours on 2 cores. Rewrites
# results/calibration/ (--resume continues an interrupted run).
calibrate: $(STAMP)
	$(BIN)/python scripts/calibrate.py --seeds 200 --power-seeds 460 --workers 2

# asv suite smoke: discovery/signature check, then one quick call of a few small cases in this
# environment (numpy, torch and jax on CPU; torch:cuda shows the n/a path). Nothing is timed or saved.
ASV := $(BIN)/asv
ASV_ENV := -E existing:$(BIN)/python
SMOKE := -b 'ProjectionDraw.time_draw\(.numpy., .orthogonal., .portable., 64, 16\)' \
	-b 'FeatureMap.time_features\(.numpy., .positive., 4096\)' \
	-b 'GramEstimate.time_estimate_gram\(.numpy., .positive-ort., 1024\)' \
	-b 'AttentionTime.time_attention\(.(numpy|jax:cpu|torch:cuda)., .favor-causal., .forward., 1024\)' \
	-b 'AttentionTime.time_attention\(.torch:cpu., .favor., .forward\+backward., 1024\)' \
	-b 'AttentionPeakMemory.track_peak_bytes\(.numpy., .favor-causal., .forward., 1024\)' \
	-b 'AttentionAccuracy.track_relative_error\(.numpy., .positive-ort., .causal.\)' \
	-b 'MonteCarloThroughput.track_samples_per_second\(.jax:cpu., .positive-ort.\)' \
	-b 'ImportAndFirstCall.timeraw_import_and_first_call\(.numpy.\)'

bench-smoke: $(STAMP)
	$(ASV) machine --yes > /dev/null
	$(ASV) check $(ASV_ENV)
	$(ASV) run $(ASV_ENV) --quick --show-stderr $(SMOKE) --set-commit-hash $$(git rev-parse HEAD)

# asv dashboard without internet: publishes .asv/results into .asv/html, replaces the page's CDN
# libraries with local copies from the bench extra (scripts/offline_dashboard.py), serves it on
# http://127.0.0.1:$(DASHBOARD_PORT)/ until Ctrl-C. Needs results: `make bench-smoke`, or any asv run.
DASHBOARD_PORT ?= 8080

dashboard: $(STAMP)
	$(BIN)/python scripts/offline_dashboard.py --publish --serve $(DASHBOARD_PORT)

audit: $(STAMP)
	$(BIN)/python -m studies audit --target performer-pytorch

gpu-compare: $(STAMP)
	$(BIN)/python scripts/gpu_compare.py --out results/gpu_speed_memory

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
