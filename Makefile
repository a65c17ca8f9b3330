# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Spinning OpenMP threads make torch 2-3x slower when another process shares the cores.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-no-shared install benchmarks detector clean colab-check test-py312

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e ".[test,app,export,dlib]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m dflib demo --out demo_out

test: $(VENV)/.installed
	$(PY) -m pytest -q

# Colab's Python (3.12) with Colab's preinstalled versions; dflib installed as the notebooks' setup
# cells do; fails if pip changes one of them; then the notebooks run on a stand-in Colab.
colab-check:
	$(PYTHON) scripts/colab_check.py

# The suite on Python 3.12 with the newest versions pip resolves (PyAV 19 has no 3.11 wheels), so
# a new release that breaks dflib shows here first.
VENV312 ?= .venv312
test-py312:
	test -x $(VENV312)/bin/python || $$(scripts/python312.sh) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install -q --upgrade pip
	$(VENV312)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -r requirements.txt -e ".[test,app,export,dlib]"
	$(VENV312)/bin/python -c "import importlib.metadata as m; print('newest on 3.12:', *(f'{p} {m.version(p)}' for p in ('av', 'torch', 'numpy', 'gradio', 'onnxruntime', 'onnx', 'opencv-python-headless')))"
	$(VENV312)/bin/python -m pytest -q

# The shipped detector, from ../shared/data: about 1.5 hours on 2 cores, resumable (run it again).
detector: $(VENV)/.installed
	$(PY) recipes/shipped_detector.py --out recipe_out --ship

# The tests whose inputs change with ../shared/data, run again with it hidden: what a fresh clone
# without the sample clips runs.
test-no-shared: $(VENV)/.installed
	DFLIB_SAMPLE_DATA=/nonexistent $(PY) -m pytest -q -m either_sample_data

benchmarks: $(VENV)/.installed
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/predict.py
	$(PY) benchmarks/labels.py
	$(PY) benchmarks/export.py

clean:
	rm -rf $(VENV) $(VENV312) .venv-colab demo_out .pytest_cache
