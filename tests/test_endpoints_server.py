"""Endpoint models against real OpenAI-compatible servers started inside the test run (tests/endpoint_server.py):
llama-cpp-python's server on the bundled SmolLM2 GGUF (echo and chat log-probabilities) agrees with the local scorer;
`transformers serve` (no log-probabilities) is scored by generation; every failure is one sentence and exit status 2,
and what was answered before it stays in the cache."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from core import data, endpoints, models, prompting
from core.cli import main
from core.errors import UserError
from tests.endpoint_server import FakeServer, free_port, llama_available, start_llama

KEY = "sk-test-0123456789abcdef"  # the key the keyed server wants; it must never reach a file
ROWS = 12  # of the 99 test rows of reviews (a fixed random subset, as --max-eval-examples takes it)
# Measured on these 12 rows: 12 of 12 predictions agree, label probabilities differ by 0.030 on average (at most 0.157):
# the server reads the Q4_1 GGUF with a BOS token first, the local scorer the de-quantized weights without one.
AGREEMENT, PROB_GAP = 10 / 12, 0.06
needs_llama = pytest.mark.skipif(not llama_available(), reason="llama-cpp-python[server] is not installed")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PFT_ENDPOINT_CACHE", str(tmp_path / "endpoint-cache.sqlite"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def prompt(model: str, *extra) -> int:
    return main(["prompt", "--train", "reviews", "--eval", "reviews", "--model", model, "--calibrate", "none", *extra])


def read(run) -> tuple[dict, dict, pd.DataFrame]:
    return (
        json.loads((run / "config.json").read_text()),
        json.loads((run / "metrics.json").read_text()),
        pd.read_csv(run / "predictions.csv"),
    )


def one_sentence(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


@pytest.mark.slow
def test_echo_scores_agree_with_the_local_scorer(llama_server, runs_dir, capsys):
    rows = [
        "--max-eval-examples",
        str(ROWS),
    ]  # llama-cpp-python's echo sorts the vocabulary at every prompt token: ~1 s a request
    assert (
        prompt(llama_server.spec(), *rows, "--concurrency", "4", "--price-input", "0.5", "--price-output", "1.5", "--out", "ep")
        == 0
    )
    config, metrics, preds = read(runs_dir / "ep")
    assert metrics["scoring_mode"] == "echo" and config["scoring_mode"] == "echo" and metrics["unparsed"] == 0
    assert config["endpoint"] == {"model": "smollm2", "base_url": llama_server.base_url, "api_key_env": None}
    ds = data.load_sample("reviews")
    local = prompting.run_prompting(
        prompting.PromptConfig(calibration="none", max_eval_examples=ROWS), ds.splits["train"], ds.splits["test"], ds.label_names
    )
    joined = preds.merge(local.predictions, on="id", suffixes=("", "_local"))
    assert len(preds) == len(local.predictions) == len(joined) == ROWS
    assert set(preds["label"]) == set(local.predictions["label"]) and set(preds["pred"]) <= set(ds.label_names)
    agreement = float((joined["pred"] == joined["pred_local"]).mean())
    print(f"echo vs local scorer: {agreement:.3f} of {len(joined)} predictions agree")
    assert agreement >= AGREEMENT
    probs = preds[[f"prob_{lab}" for lab in ds.label_names]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    gap = np.abs(
        joined[[f"prob_{lab}" for lab in ds.label_names]].to_numpy()
        - joined[[f"prob_{lab}_local" for lab in ds.label_names]].to_numpy()
    ).mean()
    assert gap <= PROB_GAP  # the same likelihoods, not merely the same argmax (misaligned echo numbers are far off)
    # every (row, label) is one request, plus the probe: tokens from the server's usage fields, cost from the prices
    assert metrics["requests"] == len(preds) * len(ds.label_names) + 1 and metrics["cached_requests"] == 0
    assert metrics["prompt_tokens"] > 10 * metrics["requests"] and metrics["completion_tokens"] >= metrics["requests"] - 1
    assert metrics["cost_usd"] == pytest.approx(
        (metrics["prompt_tokens"] * 0.5 + metrics["completion_tokens"] * 1.5) / 1e6, abs=1e-6
    )
    assert metrics["latency_ms"] > 0
    # a rerun asks nothing twice: every answer comes from the cache, with the same tokens and predictions
    assert prompt(llama_server.spec(), *rows, "--price-input", "0.5", "--price-output", "1.5", "--out", "again") == 0
    _, again, preds_again = read(runs_dir / "again")
    assert again["cached_requests"] == again["requests"] == metrics["requests"]
    assert again["prompt_tokens"] == metrics["prompt_tokens"] and preds_again["pred"].tolist() == preds["pred"].tolist()
    assert "from the cache" in capsys.readouterr().out


@pytest.mark.slow
def test_chat_logprobs_give_probabilities_and_calibration(llama_server, runs_dir):
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                llama_server.spec(),
                "--scoring-mode",
                "chat-logprobs",
                "--calibrate",
                "contextual",
                "--max-eval-examples",
                "12",
                "--out",
                "chat",
            ]
        )
        == 0
    )
    config, metrics, preds = read(runs_dir / "chat")
    assert metrics["scoring_mode"] == "chat-logprobs" and metrics["calibration"] == "contextual" and len(preds) == 12
    assert metrics["requests"] == 12 + len(prompting.CONTENT_FREE)  # one per row and per content-free input, no probe
    assert np.allclose(preds[[c for c in preds if c.startswith("prob_")]].sum(axis=1), 1, atol=1e-4)


@pytest.mark.slow
def test_a_server_without_logprobs_is_scored_by_generation(transformers_server, runs_dir, capsys):
    folder = models._converted(models.resolve("smollm2")).path  # transformers serve names its model by its folder
    assert (
        prompt(
            transformers_server.spec(folder), "--max-eval-examples", "4", "--concurrency", "2", "--timeout", "300", "--out", "gen"
        )
        == 0
    )
    config, metrics, preds = read(runs_dir / "gen")
    assert metrics["scoring_mode"] == "generate" and config["scoring_mode"] == "generate" and metrics["calibration"] == "none"
    assert metrics["requests"] == 4 + 3  # the three probes (echo ignored, no log-probabilities, one generation), then a row each
    assert metrics["unparsed"] == int((preds["pred"] == endpoints.UNPARSED).sum())
    assert set(preds["pred"]) <= {*data.load_sample("reviews").label_names, endpoints.UNPARSED}
    assert preds["confidence"].isna().all() and preds["answer"].notna().any()  # no probabilities in this mode, never invented
    assert metrics["completion_tokens"] > 0 and metrics["prompt_tokens"] > 0
    # the run labels new data as it labelled its own rows (answers from the cache), without inventing probabilities
    src, out = runs_dir.parent / "new.csv", runs_dir.parent / "labelled.csv"
    preds[["text"]].to_csv(src, index=False)
    assert main(["predict", "gen", str(src), "--out", str(out)]) == 0
    labelled = pd.read_csv(out, keep_default_na=False)
    assert labelled["label"].tolist() == preds["pred"].tolist()
    assert (labelled["confidence"] == "").all() and (labelled.filter(like="prob_") == "").all().all()
    # a model the server does not have: one sentence in the server's words, exit 2
    capsys.readouterr()
    assert prompt(transformers_server.spec("no-such-model"), "--max-eval-examples", "2", "--retries", "0", "--out", "gone") == 2
    one_sentence(capsys, "no-such-model")


def test_nothing_listening_is_one_sentence(runs_dir, capsys):
    assert prompt(f"openai:m@http://127.0.0.1:{free_port()}/v1", "--retries", "1", "--out", "down") == 2
    one_sentence(capsys, "Nothing answered at http://127.0.0.1:", "after 1 retries")
    assert json.loads((runs_dir / "down" / "status.json").read_text())["state"] == "failed"


def test_a_429_storm_is_retried_with_backoff_then_one_sentence(runs_dir, capsys):
    server = FakeServer("rate")
    try:
        assert prompt(server.spec(), "--retries", "2", "--out", "storm") == 2
    finally:
        server.stop()
    one_sentence(capsys, "still answered 429 (rate limited) after 2 retries", "--concurrency")
    assert server.hits == 3  # the first try and two retries, then it stops asking


def test_malformed_json_is_one_sentence(runs_dir, capsys):
    server = FakeServer("malformed")
    try:
        assert prompt(server.spec(), "--retries", "0", "--out", "garbled") == 2
    finally:
        server.stop()
    one_sentence(capsys, "not an OpenAI-compatible JSON response")


@pytest.mark.slow
@needs_llama
def test_keys_are_read_from_the_named_variable_and_never_written(tmp_path, runs_dir, capsys, monkeypatch):
    server = start_llama(tmp_path, api_key=KEY)
    try:
        assert prompt(server.spec(), "--max-eval-examples", "3", "--retries", "0", "--out", "nokey") == 2
        one_sentence(capsys, "unauthorised (HTTP 401)", "--api-key-env")
        monkeypatch.setenv("PFT_TEST_KEY", "sk-wrong")
        assert (
            prompt(server.spec(), "--api-key-env", "PFT_TEST_KEY", "--max-eval-examples", "3", "--retries", "0", "--out", "wrong")
            == 2
        )
        one_sentence(capsys, "unauthorised (HTTP 401)", "check the key in PFT_TEST_KEY")
        monkeypatch.delenv("PFT_TEST_KEY")
        assert prompt(server.spec(), "--api-key-env", "PFT_TEST_KEY", "--max-eval-examples", "3", "--out", "unset") == 2
        one_sentence(capsys, "PFT_TEST_KEY (--api-key-env) is not set")
        monkeypatch.setenv("PFT_TEST_KEY", KEY)
        assert prompt(server.spec(), "--api-key-env", "PFT_TEST_KEY", "--max-eval-examples", "3", "--out", "keyed") == 0
    finally:
        server.stop()
    config, metrics, _ = read(runs_dir / "keyed")
    assert config["api_key_env"] == "PFT_TEST_KEY" and config["endpoint"]["api_key_env"] == "PFT_TEST_KEY"
    written = [p for p in [*runs_dir.rglob("*"), *tmp_path.glob("endpoint-cache.sqlite*")] if p.is_file()]
    assert written and not [p for p in written if KEY.encode() in p.read_bytes()]


@pytest.mark.slow
@needs_llama
def test_a_server_that_dies_midway_keeps_its_answers_for_the_rerun(tmp_path):
    server = start_llama(tmp_path)
    port = server.port
    ds = data.load_sample("reviews")
    config = prompting.PromptConfig(model=server.spec(), calibration="none", max_eval_examples=4, concurrency=1, retries=0)
    reports = []

    def die(done, total):
        reports.append(done)
        server.stop()  # after the first answered example, the server goes away

    with pytest.raises(UserError, match="Nothing answered at .* answers received so far are cached"):
        prompting.run_prompting(config, ds.splits["train"], ds.splits["test"], ds.label_names, progress=die)
    with sqlite3.connect(tmp_path / "endpoint-cache.sqlite") as db:
        kept = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert reports and kept >= 2  # the probe and at least the first answer
    server = start_llama(tmp_path, port=port)  # back on the same address: the rerun pays only for what was never answered
    try:
        result = prompting.run_prompting(config, ds.splits["train"], ds.splits["test"], ds.label_names)
    finally:
        server.stop()
    assert result.metrics["cached_requests"] == kept and result.metrics["requests"] == 4 * 3 + 1


@pytest.mark.slow
@needs_llama
def test_misaligned_echo_log_probabilities_are_not_trusted(tmp_path, runs_dir):
    server = start_llama(tmp_path, bos=False)  # llama-cpp-python's default for SmolLM2: each echoed token gets the next one's
    try:
        assert prompt(server.spec(), "--max-eval-examples", "3", "--out", "probed") == 0
    finally:
        server.stop()
    _, metrics, _ = read(runs_dir / "probed")
    assert metrics["scoring_mode"] == "chat-logprobs"
