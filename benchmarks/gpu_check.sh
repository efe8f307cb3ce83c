#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU, most valuable steps first: build for the
# visible card only, the CUDA tests, compute-sanitizer memcheck, the op against the
# reference and torch.compile of it, the training step (eager, fp32 and bf16), then the
# rest (slow CUDA tests, racecheck, sweep plot, profile, compiled training step).
#
#   bash benchmarks/gpu_check.sh [--dry-run] [OUT_DIR]
#
# Each step has its own time box, and the whole run a budget of BUDGET_S seconds (480 by
# default; 3600 in a dry run, which must reach every step): a step that would start past it is skipped, so a slow step cannot eat the
# others. Results are written as they come: OUT_DIR holds at most 8 files (gpu_check.log,
# op.json, train.json, train_compiled.json, tables.md, op_sweep.png, op_sweep.json,
# profile.txt), so that all of them come back from the device tool.
#
# --dry-run runs every step on the CPU at tiny sizes (DHIF_BENCH_TINY=1) with the installed
# build: each pytest selection the GPU run makes is collected (it must find a test) and its
# CPU counterpart run (it must pass a test); CUDA-only steps (build, compute-sanitizer)
# print what they would run. `.ci/run` runs it.
#
# On the GPU machine the kernels are built in place (build_ext --inplace, PYTHONPATH=.):
# the image's own environment is not written. Its Python has no expecttest, without which
# the opcheck tests would skip, so the build step fails without it. Wheels in .whl/ (carried
# by the device tool) are installed into /tmp/site first. Prepared here, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl expecttest
# then, with .whl carried: bash benchmarks/gpu_check.sh "$OUT"
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
case "${1:-}" in -*) echo "usage: bash benchmarks/gpu_check.sh [--dry-run] [OUT_DIR]" >&2; exit 2;; esac
OUT=${1:-gpu_results}
mkdir -p "$OUT" || exit 2
if [ "$DRY" = 0 ] && compgen -G ".whl/*.whl" > /dev/null; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export OUT DRY PY=${PYTHON:-python3} PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET_S=${BUDGET_S:-$([ "$DRY" = 1 ] && echo 3600 || echo 480)}
if [ "$DRY" = 1 ]; then
  export DEVICE=cpu DHIF_BENCH_TINY=1 CUDA_VISIBLE_DEVICES=""
else
  export DEVICE=cuda
fi
exec > >(tee "$OUT/gpu_check.log") 2>&1
status=0
summary="| step | box (s) | took (s) | result |"$'\n'"|---|---|---|---|"

# step NAME BOX FUNCTION: runs FUNCTION in its own time box (cut to what the budget has
# left) and records how long it took and how it ended.
step() {
  local name=$1 box=$2 fn=$3 left=$((BUDGET_S - SECONDS)) result rc
  echo; echo "== $name (box ${box}s, ${SECONDS}s into the run)"
  if [ "$left" -lt 10 ]; then
    result="skipped: past the ${BUDGET_S}s budget"
  else
    [ "$box" -gt "$left" ] && box=$left
    local start=$SECONDS
    timeout --kill-after=10 "$box" bash -c "$fn"; rc=$?
    case $rc in
      0) result="ok" ;;
      3) result="unavailable" ;;
      124|137) result="timed out"; status=1 ;;
      *) result="failed (exit $rc)"; status=1 ;;
    esac
    result="$result|$((SECONDS - start))"
  fi
  echo "-- $name: ${result%|*}"
  summary+=$'\n'"| $name | $box | ${result#*|} | ${result%|*} |"
}

# pytest ARGS...: must run at least one test and pass.
run_pytest() {
  local log; log=$(mktemp)
  "$PY" -m pytest -q -p no:cacheprovider -rs "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if ! tail -n 3 "$log" | grep -Eq "[0-9]+ passed"; then echo "this selection ran no test: pytest $*"; rc=1; fi
  rm -f "$log"; return "$rc"
}

# selection ARGS...: on the GPU, the tests; in a dry run, that the selection collects a test.
selection() {
  if [ "$DRY" = 1 ]; then
    local found; found=$("$PY" -m pytest -q -p no:cacheprovider --collect-only "$@" 2>&1 | grep -c "::")
    echo "would run pytest $* ($found tests collected)"; [ "$found" -gt 0 ]
  else
    run_pytest "$@"
  fi
}

# gpu_only COMMAND...: runs it on the GPU; in a dry run prints it.
gpu_only() {
  if [ "$DRY" = 1 ]; then echo "dry run, would run: $*"; return 0; fi
  "$@"
}

tables() {
  local files=()
  for f in "$OUT"/op.json "$OUT"/train.json "$OUT"/train_compiled.json; do [ -s "$f" ] && files+=("$f"); done
  [ ${#files[@]} -eq 0 ] || "$PY" benchmarks/report.py "${files[@]}" > "$OUT/tables.md"
}

machine() {
  echo "GPU check$([ "$DRY" = 1 ] && echo ' (dry run on the CPU)'), $(date -u +%Y-%m-%d)"
  gpu_only nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
}

build() {
  if [ "$DRY" = 1 ]; then
    echo "dry run, would run: TORCH_CUDA_ARCH_LIST=<this card> DHIF_FORCE_CUDA=1 $PY setup.py build_ext --inplace"
  else
    local arch; arch=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())") || return 1
    TORCH_CUDA_ARCH_LIST="$arch" DHIF_FORCE_CUDA=1 MAX_JOBS=16 "$PY" setup.py build_ext --inplace \
      > /tmp/dhif_build.log 2>&1 || { tail -60 /tmp/dhif_build.log; return 1; }
  fi
  "$PY" -c "import dhif; print(dhif.build_info()); assert 'fused' in dhif.available_impls('$DEVICE')" || return 1
  "$PY" -c "import expecttest" 2>/dev/null || { echo "expecttest is missing: the opcheck tests would skip;" \
    "carry its wheel (see the header of this script)"; return 1; }
}

cuda_tests() {
  selection tests -m "cuda and not slow" || return 1
  [ "$DRY" = 0 ] || run_pytest tests/test_adaptive_filter.py -m "not slow" -k "opcheck and cpu"
}

sanitizer() {
  if [ "$DRY" = 1 ]; then echo "dry run, would run: compute-sanitizer --tool $1 $PY tests/sanitizer_case.py"; return 0; fi
  compute-sanitizer --tool "$1" --error-exitcode 1 "$PY" tests/sanitizer_case.py > /tmp/sanitizer.log 2>&1
  local rc=$?
  tail -25 /tmp/sanitizer.log
  if grep -q "Device not supported" /tmp/sanitizer.log; then
    echo "compute-sanitizer is unavailable on this machine (Device not supported): not a kernel failure"; return 3
  fi
  return "$rc"
}

op_benchmarks() {
  local select=$DEVICE
  [ "$DRY" = 1 ] && { selection benchmarks/bench_adaptive_filter.py -k cuda || return 1; select="cpu and train_batch"; }
  run_pytest benchmarks/bench_adaptive_filter.py -k "$select" --benchmark-json "$OUT/op.json"
  local rc=$?; tables; return $rc
}

train_steps() {
  local select="training_step and eager and $DEVICE"
  [ "$DRY" = 1 ] && { selection benchmarks/bench_train_step.py -k "training_step and eager and cuda" || return 1; }
  run_pytest benchmarks/bench_train_step.py -k "$select" --benchmark-json "$OUT/train.json"
  local rc=$?; tables; cat "$OUT/tables.md"; return $rc
}

slow_cuda_tests() {
  selection tests -m "cuda and slow"
}

sweep() {
  local sizes="64 256 512 1024 2048"
  [ "$DRY" = 1 ] && sizes="8 16"
  "$PY" benchmarks/sweep.py --device "$DEVICE" --sizes $sizes --out "$OUT/op_sweep.png"
}

profile() {
  for impl in fused reference; do
    "$PY" benchmarks/profile_step.py --device "$DEVICE" --impl "$impl" || return 1
    "$PY" benchmarks/profile_step.py --device "$DEVICE" --impl "$impl" --bf16 || return 1
  done > "$OUT/profile.txt" 2>&1
  head -30 "$OUT/profile.txt"
}

compiled_train_steps() {
  if [ "$DRY" = 1 ]; then selection benchmarks/bench_train_step.py -k "training_step and compiled and cuda"; return; fi
  run_pytest benchmarks/bench_train_step.py -k "training_step and compiled and cuda" \
    --benchmark-json "$OUT/train_compiled.json"
  local rc=$?; tables; return $rc
}

export -f run_pytest selection gpu_only tables machine build cuda_tests sanitizer op_benchmarks train_steps \
  slow_cuda_tests sweep profile compiled_train_steps

#    name                          box (s)  function
step "machine"                     30  machine
step "build for this card"         240 build
step "CUDA tests"                  150 cuda_tests
step "compute-sanitizer memcheck"  90  "sanitizer memcheck"
step "op benchmarks"               150 op_benchmarks
step "training step, eager"        120 train_steps
step "slow CUDA tests"             150 slow_cuda_tests
step "compute-sanitizer racecheck" 60  "sanitizer racecheck"
step "op sweep"                    90  sweep
step "training-step profile"       90  profile
step "training step, compiled"     240 compiled_train_steps

echo; echo "$summary"
[ -s "$OUT/tables.md" ] && echo $'\n'"$summary" >> "$OUT/tables.md"
files=$(find "$OUT" -type f | wc -l)
if [ "$files" -gt 8 ]; then echo "$OUT holds $files files; only 8 come back from the device tool"; status=1; fi
echo "== done in ${SECONDS}s, status $status"
exit $status
