#!/usr/bin/env bash
# Every benchmark in one command, from the repository root of an installed checkout:
# the op (fused vs reference vs torch.compile of the reference), the DHIF-Net training step,
# whole-image inference and the largest batch in a memory budget, the op size sweep plot,
# the CPU kernels' instruction count (where valgrind is installed), and the markdown tables.
#
#   bash benchmarks/run_all.sh            # writes benchmarks/results/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/results
mkdir -p "$OUT"
PY=${PYTHON:-python}
DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
"$PY" -m pytest benchmarks/bench_adaptive_filter.py -q -p no:cacheprovider --benchmark-json "$OUT/op_$DEVICE.json"
"$PY" -m pytest benchmarks/bench_train_step.py -q -p no:cacheprovider --benchmark-json "$OUT/train_$DEVICE.json"
"$PY" benchmarks/sweep.py --device "$DEVICE" --out "$OUT/op_sweep_$DEVICE.png"
if command -v valgrind > /dev/null; then
  "$PY" benchmarks/instruction_count.py | tee "$OUT/instruction_count.json"
fi
"$PY" benchmarks/report.py "$OUT/op_$DEVICE.json" "$OUT/train_$DEVICE.json" | tee "$OUT/tables_$DEVICE.md"
