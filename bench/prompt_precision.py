"""GPU check: the big-local-model options against the fp32 transformers run on the same prompts.

Scores a sample's test split (default: the bundled SmolLM2 on `reviews`, 4 balanced shots, contextual calibration, so
every variant sees exactly the same prompts) in fp32 with the transformers scorer, then with each variant: transformers
in bf16, fp16, 4-bit and 8-bit (bitsandbytes), and vLLM's offline engine in bf16 and fp32 (one engine at a time). For each it
prints the seconds, the accuracy, the label agreement with the fp32 run and the largest difference of a label probability. A
variant this machine cannot run prints the one sentence the product gives (no GPU, no bitsandbytes, no vllm).

    python -m bench.prompt_precision [--model smollm2] [--sample reviews] [--limit 0]
        [--variants bf16 fp16 4bit 8bit vllm-bf16 vllm-fp32]
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import replace

import numpy as np

VARIANTS = {
    "bf16": {"precision": "bf16"},
    "fp16": {"precision": "fp16"},
    "4bit": {"quantize": "4bit"},
    "8bit": {"quantize": "8bit"},
    "vllm-bf16": {"backend": "vllm", "precision": "bf16"},
    "vllm-fp32": {"backend": "vllm", "precision": "fp32"},
}


def main(argv: list[str] | None = None) -> int:
    from core import data, prompting, vllm_backend
    from core.errors import UserError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--sample", default="reviews")
    p.add_argument("--limit", type=int, default=0, help="score only this many test rows (0 = all)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = p.parse_args(argv)
    ds = data.load_sample(args.sample)
    base = prompting.PromptConfig(
        model=args.model, shots=4, calibration="contextual", precision="fp32", batch_size=16, max_eval_examples=args.limit or None
    )

    def run(config):
        started = time.perf_counter()
        result = prompting.run_prompting(config, ds.splits["train"], ds.splits["test"], ds.label_names)
        return result, time.perf_counter() - started

    run(replace(base, max_eval_examples=4))  # loads (and converts) the model outside the timing
    reference, seconds = run(base)
    ref = reference.calibrated["contextual"]
    print(
        f"{'fp32':10s} {seconds:7.1f} s  accuracy {reference.metrics['accuracy']:.3f}  "
        f"({len(ref)} rows of {args.sample}, {args.model})"
    )
    for name in args.variants:
        try:
            config = replace(base, **VARIANTS[name])
            run(replace(config, max_eval_examples=4))
            result, seconds = run(config)
        except UserError as e:
            print(f"{name:10s} unavailable: {e}")
            continue
        except Exception as e:  # a GPU library's own failure: reported, the other variants still run
            print(f"{name:10s} failed: {type(e).__name__}: {str(e)[:300]}")
            continue
        finally:
            vllm_backend.engine.cache_clear()  # the next engine needs the GPU memory this one holds
            gc.collect()
        probs = result.calibrated["contextual"]
        agree = float((probs.argmax(1) == ref.argmax(1)).mean())
        print(
            f"{name:10s} {seconds:7.1f} s  accuracy {result.metrics['accuracy']:.3f}  label agreement with fp32 {agree:.1%}  "
            f"max prob difference {np.abs(probs - ref).max():.4f}"
        )
    return 0


if __name__ == "__main__":  # vLLM starts its engine in a spawned process, which re-imports this module
    raise SystemExit(main())
