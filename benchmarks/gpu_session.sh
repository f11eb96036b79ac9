#!/usr/bin/env bash
# One prepared GPU session: the GPU tests and the speed benchmarks (autoencoder, DDPM at two sizes, DDIM-50),
# each under its own time limit, logs under $OUT (or ./gpu-out). Run from the repository root on a
# machine whose python3 has CUDA PyTorch:
#   bash benchmarks/gpu_session.sh [DATA_DIR]      (DATA_DIR: the four MNIST IDX .gz files)
# Optional wheels (e.g. diffusers for the reference rows) in .whl/ are installed to /tmp/site.
set -u
OUT=${OUT:-gpu-out}
DATA=${1:-.gpudata/mnist}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=src
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=src:/tmp/site
fi
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-520} ))  # the whole script ends by then
section() { echo; echo "=== $1 ($(date +%T))"; }
limit() { local left=$(( DEADLINE - $(date +%s) )); echo $(( left < $1 ? (left > 5 ? left : 5) : $1 )); }

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -c "import diffusers; print('diffusers', diffusers.__version__)" || echo "diffusers missing: its rows skip"

section "GPU tests"
timeout $(limit 180) python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -25 | tee "$OUT/gpu-tests.log"

section "benchmark: lecture autoencoder, 20 epochs x 60,000"
timeout $(limit 230) python3 benchmarks/run.py --device cuda --data-dir "$DATA" --verbose \
  --rows ae-none-plain,ae-none-connlab,ae-concat-plain,ae-concat-connlab \
  --json "$OUT/bench-ae.json" 2>&1 | tail -22 | tee "$OUT/bench-ae.log"

section "benchmark: DDPM training (batch 128) and DDIM-50 sampling"
timeout $(limit 200) python3 benchmarks/run.py --device cuda --data-dir "$DATA" --verbose \
  --rows ddpm-diffusers,ddpm-connlab,ddim50 --json "$OUT/bench-ddpm.json" 2>&1 | tail -14 | tee "$OUT/bench-ddpm.log"

section "benchmark: DDIM-50 with the U-Net compiled (the default graphs the eager U-Net)"
timeout $(limit 90) python3 benchmarks/run.py --device cuda --verbose --compile on \
  --rows ddim50 --json "$OUT/bench-ddim-compiled.json" 2>&1 | tail -6 | tee "$OUT/bench-ddim-compiled.log"

section "benchmark: DDPM training at issue 9's reference size (UNet2DModel 4.0M vs the closest connlab U-Net)"
timeout $(limit 180) python3 benchmarks/run.py --device cuda --data-dir "$DATA" --verbose \
  --rows ddpm-diffusers-4m,ddpm-connlab-4m --json "$OUT/bench-4m.json" 2>&1 | tail -10 | tee "$OUT/bench-4m.log"

section "benchmark: ae-concat-connlab with --compile on (the default is off since 2026-11-29), twice: cold, then warm cache"
for pass in cold warm; do
  timeout $(limit 90) python3 benchmarks/run.py --device cuda --data-dir "$DATA" --verbose --compile on \
    --rows ae-concat-connlab --json "$OUT/bench-ae-compiled-$pass.json" 2>&1 | tail -6 | tee "$OUT/bench-ae-compiled-$pass.log"
done

section "benchmark: DDPM training at batch 512 (as long as time is left)"
timeout $(limit 150) python3 benchmarks/run.py --device cuda --data-dir "$DATA" --verbose \
  --rows ddpm-diffusers-b512,ddpm-connlab-b512 --json "$OUT/bench-b512.json" 2>&1 | tail -10
section "done"
