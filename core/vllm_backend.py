"""--backend vllm: the transformers scorer's exact prompts, scored by vLLM's offline engine (imported only when chosen).

run_prompting builds the same token ids for both backends (prefix, one row per query or calibration input, the label
words' tokens). Here every (row, label) pair becomes one sequence, prefix + row + label tokens, sent as token ids with
SamplingParams(max_tokens=1, prompt_logprobs=0): vLLM then returns, for every prompt position after the first, a dict
{token id: Logprob} holding at least the token actually there. Summing the label tokens' entries gives the same
(rows, labels) table of log-likelihoods as prompting.score_rows, so calibration, metrics and the verdict follow unchanged.
"""

from __future__ import annotations

import functools

import numpy as np

from core import models
from core.errors import UserError

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CHUNK = 512  # sequences per generate call: progress (and Ctrl-C) between calls, vLLM batches within each
GPU_MEMORY = 0.5  # share of the GPU vLLM takes for weights and KV cache (its default 0.9 leaves nothing to the app)


def sequences(prefix_ids: list[int], rows: list[list[int]], label_ids: list[list[int]]) -> list[list[int]]:
    """prefix + row + label tokens for every row and label, row by row (row 0's labels first)."""
    if not prefix_ids and any(not r for r in rows):
        raise UserError("The prompt is empty; give an instruction or a query template with some text in it.")
    return [prefix_ids + r + ids for r in rows for ids in label_ids]


def label_sums(prompt_logprobs: list, prefix_len: int, rows: list[list[int]], label_ids: list[list[int]]) -> np.ndarray:
    """(rows, labels) summed log-probabilities of the label tokens, read from each sequence's prompt_logprobs (in the
    order of sequences(): a list per sequence, None at position 0, then {token id: Logprob} per position)."""
    out = np.zeros((len(rows), len(label_ids)))
    k = 0
    for n, r in enumerate(rows):
        start = prefix_len + len(r)
        for c, ids in enumerate(label_ids):
            out[n, c] = sum(prompt_logprobs[k][start + j][t].logprob for j, t in enumerate(ids))
            k += 1
    return out


def count_params(path: str) -> int:
    """Parameters of the model, counted on the meta device from its config (vLLM's weights live in its engine)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return int(sum(p.numel() for p in model.parameters()))


class Engine:
    """vLLM's offline engine on one model, fed token ids (the project's tokenizer made them, so vLLM's is never used)."""

    def __init__(self, name: str, precision: str):
        from vllm import LLM

        self.path = models._converted(models.resolve(name)).path  # a bundled GGUF model: its de-quantized folder
        self.llm = LLM(
            model=self.path,
            dtype=DTYPES[precision],
            skip_tokenizer_init=True,
            enforce_eager=True,
            gpu_memory_utilization=GPU_MEMORY,
            seed=0,
        )
        self.total_params = count_params(self.path)

    def score(self, prefix_ids: list[int], rows: list[list[int]], label_ids: list[list[int]], progress=None) -> np.ndarray:
        """(rows, labels) summed label log-probabilities; progress gets (sequences scored, sequences) after every chunk."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        seqs = sequences(prefix_ids, rows, label_ids)
        logprobs: list = []
        for start in range(0, len(seqs), CHUNK):
            outputs = self.llm.generate([{"prompt_token_ids": s} for s in seqs[start : start + CHUNK]], params, use_tqdm=False)
            logprobs += [o.prompt_logprobs for o in outputs]
            if progress:
                progress(len(logprobs), len(seqs))
        return label_sums(logprobs, len(prefix_ids), rows, label_ids)


@functools.lru_cache(maxsize=1)
def engine(name: str, precision: str) -> Engine:
    """One engine per process (it holds its share of the GPU until the process ends)."""
    return Engine(name, precision)
