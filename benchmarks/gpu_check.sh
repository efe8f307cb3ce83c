#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: build with CUDA, run the CUDA tests, run
# compute-sanitizer (memcheck, racecheck) on a small case, run the op benchmarks and write
# a results table. Uses the python3 that holds torch (no network needed).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_results}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{
  echo "## GPU check, $(date -u +%Y-%m-%d)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$OUT/machine.txt"

# Build in place against this torch, for this GPU only (fast).
arch=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
TORCH_CUDA_ARCH_LIST="$arch" DHIF_FORCE_CUDA=1 "$PY" -m pip install --no-build-isolation --no-deps -e . \
  > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
"$PY" -c "import dhif; print(dhif.build_info()); assert 'fused' in dhif.available_impls('cuda')" | tee -a "$OUT/machine.txt"

# CUDA tests (and the rest of the op tests, which now include the cuda parameters).
"$PY" -m pytest tests/test_adaptive_filter.py tests/test_dhif_net.py -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -5

# compute-sanitizer on a small case: forward and backward, every axis, both paddings, K 7 and 3.
cat > "$OUT/sanitizer_case.py" <<'PY'
import torch
from dhif.ops import adaptive_filter
for dtype in (torch.float32, torch.float16):
    for k in (7, 3):
        for dim in (1, 2, 3):
            for padding in ("replicate", "zeros"):
                x = torch.rand(2, 5, 9, 11, device="cuda", dtype=dtype, requires_grad=True)
                t = torch.randn(2, k, 5, 9, 11, device="cuda", dtype=dtype, requires_grad=True)
                adaptive_filter(x, t, dim, padding, impl="fused").sum().backward()
torch.cuda.synchronize()
print("sanitizer case done")
PY
for tool in memcheck racecheck; do
  compute-sanitizer --tool "$tool" --error-exitcode 1 "$PY" "$OUT/sanitizer_case.py" > "$OUT/sanitizer_$tool.log" 2>&1 \
    && echo "compute-sanitizer $tool: clean" || { echo "compute-sanitizer $tool: FAILED"; tail -30 "$OUT/sanitizer_$tool.log"; }
done

# Benchmarks and the results table.
"$PY" -m pytest benchmarks/bench_adaptive_filter.py -q -p no:cacheprovider -k cuda \
  --benchmark-json "$OUT/bench_gpu.json" 2>&1 | tail -3
"$PY" benchmarks/report.py "$OUT/bench_gpu.json" | tee "$OUT/results.md"
