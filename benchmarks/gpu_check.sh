#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: build with CUDA for the visible card, run
# the CUDA tests, compute-sanitizer (memcheck, racecheck), the op and network benchmarks,
# the op sweep plot and a profile of the training step, and write the results tables.
# Uses the python3 that holds torch (no network needed). Estimated under 10 minutes on an
# H100; not yet run on a GPU.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [all|compiled]
#
# "compiled" builds and runs only the torch.compile training steps, which take a few
# minutes to compile. OUT_DIR receives at most 8 files: gpu_check.log, the benchmark
# JSONs, tables_cuda.md, op_sweep_cuda.png and profile_cuda.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_results}}
PART=${2:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT/gpu_check.log"
BENCH=(-q -p no:cacheprovider)
status=0
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

{
  step "machine"
  echo "GPU check, $(date -u +%Y-%m-%d)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

  step "build for this GPU only"
  arch=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
  TORCH_CUDA_ARCH_LIST="$arch" DHIF_FORCE_CUDA=1 "$PY" -m pip install --no-build-isolation --no-deps -e . \
    > "$OUT/build.tmp" 2>&1 || { tail -60 "$OUT/build.tmp"; exit 1; }
  rm -f "$OUT/build.tmp"
  "$PY" -c "import dhif; print(dhif.build_info()); assert 'fused' in dhif.available_impls('cuda')" || exit 1

  if [ "$PART" = compiled ]; then
    step "training step under torch.compile"
    "$PY" -m pytest benchmarks/bench_train_step.py "${BENCH[@]}" -k "cuda and compiled and not keep" \
      --benchmark-json "$OUT/train_cuda_compiled.json" || status=1
    "$PY" benchmarks/report.py "$OUT/train_cuda_compiled.json" > "$OUT/tables_cuda_compiled.md"
    cat "$OUT/tables_cuda_compiled.md"
    exit $status
  fi

  step "tests (the CUDA parameters run now)"
  "$PY" -m pytest tests/test_adaptive_filter.py tests/test_dhif_net.py -q -p no:cacheprovider -rs || status=1

  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool"
    compute-sanitizer --tool "$tool" --error-exitcode 1 "$PY" tests/sanitizer_case.py 2>&1 | tail -25 \
      && echo "compute-sanitizer $tool: clean" || { echo "compute-sanitizer $tool: FAILED"; status=1; }
  done

  step "op benchmarks"
  "$PY" -m pytest benchmarks/bench_adaptive_filter.py "${BENCH[@]}" -k cuda --benchmark-json "$OUT/op_cuda.json" \
    || status=1
  step "network benchmarks (eager)"
  "$PY" -m pytest benchmarks/bench_train_step.py "${BENCH[@]}" -k "cuda and not compiled" \
    --benchmark-json "$OUT/train_cuda.json" || status=1
  step "tables"
  "$PY" benchmarks/report.py "$OUT/op_cuda.json" "$OUT/train_cuda.json" | tee "$OUT/tables_cuda.md"
  step "op sweep"
  "$PY" benchmarks/sweep.py --device cuda --sizes 64 256 512 1024 2048 --out "$OUT/op_sweep_cuda.png" || status=1
  step "profile of a training step"
  for impl in fused reference; do
    "$PY" benchmarks/profile_step.py --device cuda --impl "$impl"
    "$PY" benchmarks/profile_step.py --device cuda --impl "$impl" --bf16
  done > "$OUT/profile_cuda.txt" 2>&1 || status=1
  head -40 "$OUT/profile_cuda.txt"
  step "done, status $status"
  exit $status
} 2>&1 | tee "$LOG"
