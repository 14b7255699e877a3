# Two commands from nothing: `make demo` and `make test`.
# torch==2.13.0 goes in first: it is the CPU wheel on this machine's disk, and a looser
# requirement installed from nothing would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo tour test test-all lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: a 2-layer LSTM on Shakespeare for 5 minutes, then samples at three
# temperatures, the held-out loss beside a unigram baseline, and the loss curve.
DEMO_RUN := runs/demo-$(shell date +%Y%m%d-%H%M%S)
demo: setup
	$(VENV)/bin/rnnkit train lm --data shakespeare --out $(DEMO_RUN) --time-budget 5m \
		--cell lstm --num-layers 2 --hidden-size 256 --embedding-size 64 \
		--batch-size 32 --bptt 128 --lr 3e-3 --eval-every 200 --eval-max-tokens 200000
	@for t in 0.5 0.8 1.0; do \
		echo; echo "--- sample at temperature $$t"; \
		$(VENV)/bin/rnnkit sample $(DEMO_RUN) --prime "ROMEO." --length 400 --temperature $$t --seed 1; \
	done
	@echo; $(VENV)/bin/rnnkit evaluate $(DEMO_RUN) --split val
	@echo; echo "loss curve: $(DEMO_RUN)/loss.png"

tour: setup
	$(PY) examples/layers_tour.py

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m 'slow or not slow'

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/layers.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
