#!/usr/bin/env bash
# On a machine with an accelerator: install the CUDA extra, print the device, run the speed
# benchmark, `make demo` and a 2048-seed PPO CartPole run, and print the rows of
# docs/performance.md's GPU table (JSON lines; also written to ${OUT:-runs/device_check}/).
#   bash scripts/device_check.sh            # CUDA 12 wheels; EXTRA=cuda13 or tpu for others
# GPU reductions are not bit-deterministic by default; DETERMINISTIC=1 sets
# XLA_FLAGS=--xla_gpu_deterministic_ops=true (slower) to compare against the CPU's numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA="${EXTRA:-cuda12}"
OUT="${OUT:-runs/device_check}"
mkdir -p "$OUT"
PY=.venv/bin/python
[ -x "$PY" ] || python3 -m venv .venv
$PY -m pip install -qq --upgrade pip
$PY -m pip install -qq -e ".[dev,$EXTRA]"
if [ "${DETERMINISTIC:-0}" = 1 ]; then export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_deterministic_ops=true"; fi
$PY -c "import jax, json; print(json.dumps({'devices': [str(d) for d in jax.devices()], 'jax': jax.__version__}))" | tee "$OUT/devices.json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt" || true
$PY scripts/bench.py --seeds 1,16,256,2048 | tee "$OUT/bench.json"
make demo RUN="$OUT/demo" | tee "$OUT/demo.txt"
$PY -m jaxrl train --algo ppo --env CartPole-v1 --seeds 2048 --total-steps 500000 \
    --out "$OUT/ppo-2048" | tail -3 | tee "$OUT/ppo-2048.txt"
$PY - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/ppo-2048/summary.json"))
print(json.dumps({"row": "PPO CartPole-v1, 2048 seeds x 500k steps", "devices": s["devices"],
                  "env_steps_per_second": s["env_steps_per_second"],
                  "compile_seconds": s["compile_seconds"], "run_seconds": s["run_seconds"],
                  "final_return_iqm": s["final_return"]["iqm"], "ci95": s["final_return"]["ci95"]}))
PY
