"""--backend vllm without vLLM: the glue (token sequences in, prompt_logprobs out, label scores) against the transformers scorer.

vLLM cannot be installed here (no GPU, and it would replace this environment's torch), so these tests put a STAND-IN
`vllm` module in its place. The stand-in is only a stand-in for vLLM's data structures: LLM.generate takes token-id
prompts and returns, per prompt, `prompt_logprobs` shaped as vLLM's (None at position 0, then {token id: Logprob} per
position, the token actually there plus the most likely one), with real log-probabilities computed by transformers on
the same weights. What these tests show is that core.vllm_backend builds the right sequences and reads that structure
into the same label scores, calibration and predictions as the transformers scorer. The real engine is checked on a GPU
by bench/gpu_check.sh (bench/prompt_precision.py), which compares it with the fp32 transformers run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass, replace

import numpy as np
import pytest

from core import data, endpoints, models, prompting, vllm_backend
from core.cli import main
from core.errors import UserError
from core.prompting import PromptConfig


@dataclass
class Logprob:  # vllm.logprobs.Logprob's fields
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class StandInLLM:
    """vllm.LLM's constructor and generate(), answering with transformers' log-probabilities in vLLM's output shape."""

    def __init__(self, model: str, **kwargs):
        self.kwargs = kwargs
        self.lm = models.load_causal_lm(model, "cpu")

    def generate(self, prompts, params, use_tqdm=True):
        import torch

        assert params.max_tokens == 1 and params.prompt_logprobs == 0
        out = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            with torch.inference_mode():
                logp = torch.log_softmax(self.lm(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)  # (T, V)
            positions: list = [None]
            for i in range(1, len(ids)):
                top = int(logp[i - 1].argmax())  # listed besides the prompt's own token, as vLLM does with k >= 1
                positions.append({top: Logprob(float(logp[i - 1, top]), 1), ids[i]: Logprob(float(logp[i - 1, ids[i]]))})
            out.append(types.SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=positions))
        return out


@pytest.fixture
def stand_in_vllm(monkeypatch):
    """A `vllm` module that imports (StandInLLM, SamplingParams), and a CUDA device as far as the vllm backend can tell."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = StandInLLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    real = endpoints.local_options  # the vllm backend sees a CUDA machine; the transformers one stays on the CPU
    monkeypatch.setattr(
        endpoints, "local_options", lambda config, device: real(config, "cuda" if config.backend == "vllm" else device)
    )
    monkeypatch.setattr(vllm_backend, "CHUNK", 7)  # several generate calls, one of them short
    vllm_backend.engine.cache_clear()
    yield module
    vllm_backend.engine.cache_clear()


def both_backends(config: PromptConfig, n: int):
    ds = data.load_sample("reviews")

    def run(c: PromptConfig):
        return prompting.run_prompting(c, ds.splits["train"], ds.splits["test"], ds.label_names, all_calibrations=True)

    return run(replace(config, backend="transformers", max_eval_examples=n)), run(
        replace(config, backend="vllm", max_eval_examples=n)
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"shots": 2, "scoring": "sum"},
        {"shots": 0, "instruction": "", "scoring": "mean"},  # no shared prefix: each sequence starts with the query itself
    ],
)
def test_vllm_glue_gives_the_transformers_scores_on_a_tiny_llama(stand_in_vllm, tiny_llama_dir, settings):
    """Multi-token label words (the tiny tokenizer splits them), every calibration, with and without a shared prefix."""
    config = PromptConfig(model=str(tiny_llama_dir), precision="fp32", calibration="contextual", batch_size=4, **settings)
    ours, theirs = both_backends(config, 6)
    assert any(
        len(ids) > 1
        for ids in prompting.label_token_ids(
            models.load_tokenizer(str(tiny_llama_dir)), prompting.PromptParts("", "x", [" negative", " neutral"])
        )
    )
    for calibration in ("none", "contextual", "pmi"):
        np.testing.assert_allclose(theirs.calibrated[calibration], ours.calibrated[calibration], atol=1e-5)
    assert theirs.predictions["pred"].tolist() == ours.predictions["pred"].tolist()
    assert theirs.metrics["total_params"] == ours.metrics["total_params"]
    engine = vllm_backend.engine(str(tiny_llama_dir), "fp32")
    assert engine.llm.kwargs["dtype"] == "float32" and engine.llm.kwargs["skip_tokenizer_init"]


@pytest.mark.slow
def test_vllm_glue_gives_the_transformers_predictions_with_the_bundled_smollm2(stand_in_vllm):
    """The bundled SmolLM2 on reviews, 2 shots, 8 rows: same labels, probabilities within 1e-4 (the scorer caches the
    prefix, the stand-in runs every sequence whole, which is slow: hence few rows)."""
    ours, theirs = both_backends(PromptConfig(shots=2, precision="fp32", calibration="contextual"), 8)
    assert theirs.predictions["pred"].tolist() == ours.predictions["pred"].tolist()
    assert np.abs(theirs.calibrated["contextual"] - ours.calibrated["contextual"]).max() < 1e-4


def test_label_sums_read_the_label_tokens_of_each_sequence():
    """Sequence (row n, label c) holds prefix + row + label tokens; only the label positions count, by token id."""
    rows, labels = [[5, 6], [7]], [[1], [2, 3]]
    seqs = vllm_backend.sequences([9], rows, labels)
    assert seqs == [[9, 5, 6, 1], [9, 5, 6, 2, 3], [9, 7, 1], [9, 7, 2, 3]]
    logprobs = [[None] + [{t: Logprob(-0.1 * t * (k + 1)), 0: Logprob(-9.0)} for t in s[1:]] for k, s in enumerate(seqs)]
    expected = [[-0.1, -0.2 * 2 - 0.3 * 2], [-0.1 * 3, -0.2 * 4 - 0.3 * 4]]
    np.testing.assert_allclose(vllm_backend.label_sums(logprobs, 1, rows, labels), expected)
    with pytest.raises(UserError, match="The prompt is empty"):
        vllm_backend.sequences([], [[]], labels)


def test_vllm_needs_a_cuda_gpu_even_when_installed(monkeypatch, tiny_llama_dir):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else None)
    config = PromptConfig(model=str(tiny_llama_dir), backend="vllm")
    with pytest.raises(UserError, match=r"^--backend vllm needs a CUDA GPU; this machine scores on cpu\.$"):
        endpoints.local_options(config, "cpu")


def test_vllm_with_quantize_is_refused_in_one_sentence(runs_dir, tiny_llama_dir, capsys):
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_llama_dir),
                "--backend",
                "vllm",
                "--quantize",
                "4bit",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "--quantize is for the transformers backend; vLLM loads quantized checkpoints (AWQ, GPTQ) by their model name."
    )
    assert len(err.splitlines()) == 1
