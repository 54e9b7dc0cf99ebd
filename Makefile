# Each target sets up .venv with pip when needed, then runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.echocaptions-installed

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: demo test bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml setup.py | $(PY)
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/echocaptions build --recipe demo --workers 2 --out out/demo
	@echo "dataset card: out/demo/README.md  (open with datasets.load_dataset('out/demo'))"

# pytest exits 5 when it collected no tests: that is a failure here.
test: $(STAMP)
	@$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/dedup.py
	$(PY) benchmarks/dicom_decode.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf out build *.egg-info .pytest_cache
