#!/usr/bin/env bash
# One-shot GPU check of fine-tuning (issue 4), for a fresh GPU box with the repository as the working directory.
# Runs in well under 8 minutes on one H200; writes everything to $OUT/gpu_results.txt (or ./artifacts/) and prints it.
#
#   PFT_DATA_DIR     folder holding sst2/train.tsv and sst2/dev.tsv (default: ../shared/data, else artifacts/shared-data)
#   PFT_BENCH_MODEL  encoder to fine-tune (default: minilm, the bundled one; a local folder works too)
#   PFT_GPU_QUICK=1  tiny sizes, to check the script itself on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-artifacts}"
mkdir -p "$OUT"
RESULTS="$OUT/gpu_results.txt"
: > "$RESULTS"
say() { echo "$@" | tee -a "$RESULTS"; }
run() { # run a step with a time limit; its output goes to the results file too
  local limit=$1; shift
  say "\$ $*"
  timeout "$limit" "$@" 2>&1 | grep -v -i -E "warn|loading weights|writing model shards" | tee -a "$RESULTS"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || say "(exit status $rc)"
}

PY=python3
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, transformers, peft" 2>/dev/null; then PY=.venv/bin/python; fi
if [ -z "${PFT_DATA_DIR:-}" ]; then
  if [ -f ../shared/data/sst2/train.tsv ]; then PFT_DATA_DIR=../shared/data; else PFT_DATA_DIR=artifacts/shared-data; fi
fi
export PFT_DATA_DIR PFT_BENCH_MODEL="${PFT_BENCH_MODEL:-minilm}" PFT_RUNS_DIR="$OUT/gpu-runs" PYTHONUNBUFFERED=1
export TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
rm -rf "$PFT_RUNS_DIR"

if [ "${PFT_GPU_QUICK:-0}" = 1 ]; then
  LIMIT=64; EVAL_LIMIT=32; STEPS=4; EPOCHS=1; BS=16
else
  LIMIT=0; EVAL_LIMIT=0; STEPS=150; EPOCHS=2; BS=16
fi

say "== environment ($(date -u +%FT%TZ))"
nvidia-smi -L 2>/dev/null | tee -a "$RESULTS"
$PY -c "import sys, torch, transformers, peft; print('python', sys.version.split()[0], '| torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| cuda', torch.cuda.is_available())" 2>&1 | tee -a "$RESULTS"
MIXED=$($PY -c "import torch; print('bf16' if torch.cuda.is_available() else 'auto')" 2>/dev/null || echo auto)  # bf16 needs CUDA
say "data: $PFT_DATA_DIR  model: $PFT_BENCH_MODEL  python: $PY  mixed precision: $MIXED"
if [ ! -f "$PFT_DATA_DIR/sst2/train.tsv" ]; then say "no sst2 data at $PFT_DATA_DIR; set PFT_DATA_DIR"; exit 1; fi

say ""; say "== speed: our recipe vs the naive one, full fine-tuning, same number of steps"
run 150 $PY -m bench.finetune --limit "$LIMIT" --steps "$STEPS" --warmup-steps 10 --batch-size 32 --threads 8 --model "$PFT_BENCH_MODEL"
run 150 $PY -m bench.finetune --limit "$LIMIT" --steps "$STEPS" --warmup-steps 10 --batch-size 32 --threads 8 --model "$PFT_BENCH_MODEL" --precision "$MIXED"

say ""; say "== accuracy: each method, $EPOCHS epochs on the sst2 train file, scored on dev.tsv"
run 200 $PY -m bench.finetune --accuracy --limit "$LIMIT" --eval-limit "$EVAL_LIMIT" --epochs "$EPOCHS" --batch-size "$BS" \
  --threads 8 --model "$PFT_BENCH_MODEL" --methods full head bitfit lora full@2e-4

say ""; say "== the CLI end to end on the GPU (run contract, mixed precision)"
run 90 $PY -m core finetune --train "$PFT_DATA_DIR/sst2/train.tsv" --eval "$PFT_DATA_DIR/sst2/dev.tsv" --model "$PFT_BENCH_MODEL" \
  --method lora --epochs 1 --precision "$MIXED" --batch-size "$BS" --max-train-examples "${LIMIT/#0/5000}" --seed 1 --out gpu-cli-lora
$PY - <<'EOF' 2>&1 | tee -a "$RESULTS"
import json, os, pathlib
run = pathlib.Path(os.environ["PFT_RUNS_DIR"]) / "gpu-cli-lora"
status = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
m = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
print("state:", status.get("state"), "| error:", status.get("error"), "| files:", sorted(p.name for p in run.iterdir()) if run.exists() else None)
print("accuracy:", m.get("accuracy"), "| device:", m.get("device"), "| train s:", m.get("train_seconds"), "| trainable:", m.get("trainable_params"))
EOF

say ""; say "results written to $RESULTS"
