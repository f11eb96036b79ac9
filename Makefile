# Two commands do all set-up on a fresh machine:
#   make demo   -> installs into .venv, then runs the whole lab on the embedded MNIST subset
#                  and writes runs/demo/report.html
#   make test   -> installs into .venv (with test extras), then runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A CPU build of PyTorch. On the lab's machines this wheel is local; elsewhere override, e.g.
#   make test TORCH_SPEC="torch --index-url <PyTorch's CPU wheel index>"
TORCH_SPEC ?= torch==2.13.0
OUT    ?= runs/demo
WEB    := src/connlab/explore/web

.PHONY: demo test clean

$(BIN)/.installed: pyproject.toml $(WEB)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e '.[test]'
	@# Debian's headless Chromium for the report page test (root only; otherwise that test is skipped)
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed"
	@# Debian's SLURM and munge for tests/test_slurm.py (root only; otherwise those tests are skipped)
	command -v slurmctld >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null) || \
		echo "slurm-wlm not installed"
	@# node and npm (Debian) for the explorer's pinned onnxruntime-web; without them the explorer tests skip
	command -v npm >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null) || echo "npm not installed"
	command -v npm >/dev/null && npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error || \
		echo "onnxruntime-web not installed (npm missing or failed): connlab explore will name the command"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/connlab demo --out $(OUT) --resume
	@echo "the report: $(OUT)/report.html"

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs $(WEB)/node_modules
