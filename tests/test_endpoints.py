"""Endpoint models without a model server: the spec, the settings an endpoint refuses, how answers are read in each
scoring mode, the cost arithmetic, the response cache, and the big-local-model options refused on a CPU machine.
The same code against real servers: tests/test_endpoints_server.py."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from core import endpoints
from core.cli import main
from core.errors import UserError
from core.prompting import PromptConfig


def test_a_spec_names_model_and_url_and_only_the_key_variable():
    e = endpoints.parse_spec("openai:meta-llama/Llama-3.1-8B@http://127.0.0.1:8000/v1/", "MY_KEY")
    assert (e.model, e.base_url, e.api_key_env) == ("meta-llama/Llama-3.1-8B", "http://127.0.0.1:8000/v1", "MY_KEY")
    assert e.record() == {"model": "meta-llama/Llama-3.1-8B", "base_url": "http://127.0.0.1:8000/v1", "api_key_env": "MY_KEY"}
    assert endpoints.parse_spec("openai:a@b@https://api.example.com/v1").model == "a@b"  # the URL follows the last '@'
    assert endpoints.is_endpoint("openai:x@http://h/v1") and not endpoints.is_endpoint("smollm2")


@pytest.mark.parametrize(
    "spec", ["openai:llama3", "openai:@http://h:1/v1", "openai:llama3@localhost:8000", "openai:m@ftp://h/v1"]
)
def test_a_bad_spec_is_one_sentence(spec):
    with pytest.raises(UserError, match="is not an endpoint model; write openai:MODEL@URL"):
        endpoints.parse_spec(spec)


def test_the_key_variable_must_be_a_name_and_a_pasted_key_is_not_echoed():
    with pytest.raises(UserError, match="NAME of an environment variable") as e:
        endpoints.parse_spec("openai:m@http://h/v1", "sk-secret-123456")
    assert "secret" not in str(e.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"use_chat_template": True}, "applies its server's own chat template"),
        ({"precision": "bf16"}, "are for local models"),
        ({"quantize": "4bit"}, "are for local models"),
        ({"backend": "vllm"}, "are for local models"),
        ({"scoring_mode": "generate", "calibration": "contextual"}, "use --calibrate none"),
    ],
)
def test_settings_an_endpoint_cannot_use_are_refused(settings, message):
    with pytest.raises(UserError, match=message):
        PromptConfig(model="openai:m@http://127.0.0.1:9/v1", **settings)


def test_echo_reads_the_label_words_tokens_only():
    prompt, word = "Text: ok\nCategory:", " positive"
    tokens = ["Text", ":", " ok", "\n", "Category", ":", " pos", "itive", " and"]  # the last is the one generated token
    offsets = list(np.cumsum([0] + [len(t) for t in tokens])[:-1])
    values = [None, -1.0, -2.0, -0.5, -3.0, -0.1, -0.7, -0.2, -4.0]
    response = {
        "choices": [
            {"text": prompt + word + " and", "logprobs": {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}}
        ]
    }
    total, n = endpoints.echo_score(response, prompt, word)
    assert n == 2 and math.isclose(total, -0.9)
    del response["choices"][0]["logprobs"]["text_offset"]  # offsets rebuilt from the tokens when a server leaves them out
    assert endpoints.echo_score(response, prompt, word) == (total, 2)
    with pytest.raises(ValueError):
        endpoints.echo_score({"choices": [{"text": "x", "logprobs": None}]}, prompt, word)


def test_chat_logprobs_sum_the_listed_tokens_a_word_starts_with():
    listed = [
        {"token": " Positive", "logprob": math.log(0.5)},
        {"token": "pos", "logprob": math.log(0.2)},
        {"token": "Neg", "logprob": math.log(0.1)},
        {"token": " ", "logprob": math.log(0.05)},
    ]
    response = {
        "choices": [{"logprobs": {"content": [{"token": " Positive", "logprob": math.log(0.5), "top_logprobs": listed}]}}]
    }
    scores = endpoints.chat_scores(response, ["positive", "negative", "neutral"])
    assert math.isclose(scores[0], math.log(0.7)) and math.isclose(scores[1], math.log(0.1))
    assert math.isclose(scores[2], math.log(0.05) - 1.0)  # not listed: one nat below the least likely listed token
    with pytest.raises(ValueError):
        endpoints.chat_scores({"choices": [{"logprobs": None}]}, ["a", "b"])


def test_cost_is_tokens_times_price_per_million_and_null_without_a_price():
    meter = endpoints.Meter()
    meter.add({"usage": {"prompt_tokens": 1500, "completion_tokens": 10}}, 40.0, cached=False)
    meter.add({"usage": {"prompt_tokens": 500, "completion_tokens": 30}}, 20.0, cached=True)
    meter.add({}, 30.0, cached=False)  # a server without usage fields counts nothing
    m = meter.metrics(2.0, 10.0)
    assert (m["prompt_tokens"], m["completion_tokens"], m["requests"], m["cached_requests"]) == (2000, 40, 3, 1)
    assert math.isclose(m["cost_usd"], (2000 * 2.0 + 40 * 10.0) / 1e6) and m["latency_ms"] == 30.0
    assert meter.metrics(None, None)["cost_usd"] is None
    assert math.isclose(meter.metrics(1.0, None)["cost_usd"], 2000 / 1e6)


def test_the_cache_keys_on_url_model_and_request_and_keeps_answers(tmp_path):
    cache = endpoints.Cache(tmp_path / "c.sqlite")
    a, b = endpoints.Endpoint("m", "http://h/v1", "K"), endpoints.Endpoint("m", "http://other/v1", "K")
    key = endpoints.Cache.key(a, "chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert key != endpoints.Cache.key(b, "chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert key != endpoints.Cache.key(a, "chat", {"messages": [{"role": "user", "content": "hi "}]})
    assert key == endpoints.Cache.key(
        endpoints.Endpoint("m", "http://h/v1", "OTHER_VAR"), "chat", {"messages": [{"role": "user", "content": "hi"}]}
    )  # the key's variable is no part of it
    cache.put(key, {"choices": [{"text": "x"}]}, 12.5)
    assert endpoints.Cache(tmp_path / "c.sqlite").get(key) == (
        {"choices": [{"text": "x"}]},
        12.5,
    )  # on disk, for the next process


def test_usage_line_names_mode_tokens_cost_latency_and_unparsed():
    line = endpoints.describe_usage(
        {
            "scoring_mode": "generate",
            "requests": 10,
            "cached_requests": 4,
            "prompt_tokens": 1234,
            "completion_tokens": 50,
            "cost_usd": 0.0012,
            "latency_ms": 85.0,
            "unparsed": 2,
        }
    )
    assert line == (
        "scoring mode generate, 10 requests (4 from the cache), 1,234 prompt + 50 completion tokens, cost $0.0012, "
        "median latency 85 ms, 2 unparsed answers"
    )
    assert endpoints.missing_views({"scoring_mode": "generate"}) and not endpoints.missing_views({"scoring_mode": "echo"})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--precision", "bf16"], "--precision bf16 is for a CUDA GPU; on cpu the model runs in fp32"),
        (["--precision", "fp16"], "--precision fp16 is for a CUDA GPU"),
        (["--quantize", "4bit"], "--quantize 4bit needs a CUDA GPU"),
        (["--quantize", "8bit"], "--quantize 8bit needs a CUDA GPU"),
        (["--backend", "vllm"], "--backend vllm needs"),
    ],
)
def test_gpu_options_say_why_they_are_unavailable_here(flags, message, tiny_llama_dir, runs_dir, capsys):
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
                "--calibrate",
                "none",
                "--max-eval-examples",
                "4",
                *flags,
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not any(runs_dir.iterdir())  # refused before a run folder was made


def test_on_a_gpu_the_options_reach_the_loader_or_name_the_missing_package(tiny_llama_dir, monkeypatch):
    """What a CUDA machine gets (the device is given, so no GPU is needed): bf16/fp16 and 4/8-bit as load options, and
    one sentence naming bitsandbytes or vllm where it is not installed."""
    config = lambda **kw: PromptConfig(model=str(tiny_llama_dir), **kw)  # noqa: E731
    assert endpoints.local_options(config(precision="fp16"), "cuda") == {"precision": "fp16"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(
        UserError,
        match=r"^--quantize 8bit needs the bitsandbytes package, which is not installed \(pip install bitsandbytes\)\.$",
    ):
        endpoints.local_options(config(quantize="8bit"), "cuda")
    with pytest.raises(UserError, match=r"^--backend vllm needs the vllm package, which is not installed"):
        endpoints.local_options(config(backend="vllm"), "cuda")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert endpoints.local_options(config(quantize="4bit", precision="bf16"), "cuda") == {"precision": "bf16", "quantize": "4bit"}
    assert endpoints.local_options(config(backend="vllm", precision="fp32"), "cuda") == {}


def test_fp32_and_auto_precision_load_as_before_on_cpu(tiny_llama_dir):
    assert endpoints.local_options(PromptConfig(model=str(tiny_llama_dir)), "cpu") == {}
    assert endpoints.local_options(PromptConfig(model=str(tiny_llama_dir), precision="fp32"), "cpu") == {}
