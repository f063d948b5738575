"""Baseline rows, run warnings and the plain-language verdict of a comparison, with every caveat."""

from __future__ import annotations

import numpy as np
import pytest

from core.comparison import evaluate, report, verdict
from core.runs import RunDir
from tests.compare_fixtures import make_run

BUDGET = {"stopped_by": "max_train_seconds", "epochs_done": 1.6, "train_seconds": 120.0}


@pytest.mark.parametrize(
    "p,text",
    [
        (0.0004, "p < 0.001"),
        (1e-12, "p < 0.001"),
        (0.001, "p = 0.001"),
        (0.03, "p = 0.03"),
        (0.0312, "p = 0.031"),
        (0.41, "p = 0.41"),
        (1.0, "p = 1"),
    ],
)
def test_p_values_read_like_people_write_them(p, text):
    assert verdict.format_p(p) == text


def test_baseline_rows_are_dummy_classifiers_on_the_joined_labels(runs_dir):
    a = make_run(runs_dir, "full", 0.8, n=60, seed=1)
    b = make_run(runs_dir, "part", 0.7, n=20, seed=2)  # joined on its 20 examples
    cmp = evaluate.compare_runs([a, b], n_resamples=100)
    rows = cmp.baselines.set_index("run")
    assert list(rows.index) == ["majority", "stratified random"] and set(rows["kind"]) == {"baseline"}
    y = cmp.joined["label"].tolist()
    expected = evaluate.majority_baseline(y, cmp.labels)
    assert rows.loc["majority", "accuracy"] == pytest.approx(expected["accuracy"])
    assert rows.loc["majority", "macro_f1"] == pytest.approx(expected["macro_f1"])
    strat = evaluate.classification_metrics(y, evaluate.baseline_predictions(y, "stratified"), cmp.labels)
    assert rows.loc["stratified random", "macro_f1"] == pytest.approx(strat["macro_f1"])
    table = evaluate.format_metrics_table(cmp.metrics, cmp.baselines)
    assert list(table["run"]) == ["full", "part", "majority", "stratified random"]
    assert list(table.columns[:8]) == [
        "run",
        "warnings",
        "macro_f1",
        "train s",
        "examples/s",
        "trainable params",
        "peak MB",
        "accuracy",
    ]
    assert list(evaluate.per_class_table(cmp.metrics, cmp.baselines).columns) == [
        "run",
        "f1_negative",
        "f1_neutral",
        "f1_positive",
    ]


def test_verdict_names_the_best_run_its_interval_margin_significance_and_cost(runs_dir):
    a = make_run(runs_dir, "prompt-8shot", 0.45, seed=1, n=300)
    b = make_run(
        runs_dir,
        "finetune-lora",
        0.9,
        kind="finetune",
        seed=2,
        n=300,
        n_train_examples=256,
        metrics_extra={"train_seconds": 95.0, "peak_memory_mb": 1234.0},
    )
    cmp = evaluate.compare_runs([a, b], n_resamples=200)
    headline, caveats = verdict.verdict(cmp)
    best = cmp.metrics.set_index("run").loc["finetune-lora"]
    other = cmp.metrics.set_index("run").loc["prompt-8shot"]
    assert headline.startswith(
        f"Fine-tuning beats prompting: the best fine-tune run 'finetune-lora' reaches macro-F1 "
        f"{best['macro_f1']:.3f} (95% CI {best['macro_f1_low']:.3f}-{best['macro_f1_high']:.3f}), "
        f"{best['macro_f1'] - other['macro_f1']:.3f} ahead of the best prompt run 'prompt-8shot'"
    )
    assert "the difference is significant (McNemar p < 0.001)" in headline
    assert "'finetune-lora' trains 1,000 parameters in 95 s, labels 24.0 examples/s and peaks at 1,234 MB of memory" in headline
    assert "'prompt-8shot' needs no training" in headline
    assert "cheapest" not in headline  # the prompt is far outside the best run's interval
    assert caveats == []  # 300 examples, no budget stop, both above the majority baseline, same rows


def test_verdict_answers_the_family_question_before_ranking_two_fine_tunes(runs_dir):
    """Six runs as on held-out finance news: the headline is the best fine-tune against the best prompt, not the two
    fine-tunes against each other; then the cheapest run inside the best run's interval; the best prompt barely above
    the majority baseline is a caveat."""
    make = [
        ("full", 0.95, "finetune", 3, {"seconds": 614.0, "train_seconds": 600.0}),
        ("full-2", 0.93, "finetune", 4, {"seconds": 700.0, "train_seconds": 690.0}),
        ("logreg", 0.93, "finetune", 5, {"seconds": 13.0, "train_seconds": 9.0}),
        ("zero-shot", 0.25, "prompt", 6, {"seconds": 40.0}),
        ("four-shot", 0.2, "prompt", 7, {"seconds": 60.0}),
    ]
    paths = [
        make_run(runs_dir, name, acc, kind=kind, seed=seed, n=300, metrics_extra=extra) for name, acc, kind, seed, extra in make
    ]
    cmp = evaluate.compare_runs(paths, n_resamples=200)
    headline, caveats = verdict.verdict(cmp)
    rows = cmp.metrics.set_index("run")
    best_prompt = rows.loc[rows["kind"].eq("prompt"), "macro_f1"].idxmax()
    assert headline.startswith("Fine-tuning beats prompting: the best fine-tune run 'full' reaches macro-F1")
    assert f"ahead of the best prompt run '{best_prompt}'" in headline and "'full-2'" not in headline
    cheap = rows[rows["macro_f1"] >= rows.loc["full", "macro_f1_low"]]
    assert "logreg" in cheap.index  # the fixture puts it inside the interval; the sentence must name it
    assert (
        f"The cheapest run within the best run's interval is 'logreg' (macro-F1 {rows.loc['logreg', 'macro_f1']:.3f}, "
        "13 s of compute against 614 s for 'full')"
    ) in headline
    majority = cmp.baselines.set_index("run").loc["majority", "macro_f1"]
    barely = [c for c in caveats if "barely above the majority baseline" in c]
    prompt_row = rows.loc[best_prompt]
    assert (prompt_row["macro_f1_low"] <= majority < prompt_row["macro_f1"]) == bool(barely)
    assert barely and barely[0].startswith(f"The best prompt run '{best_prompt}' is barely above the majority baseline")


def test_verdict_says_what_the_search_behind_a_run_cost(runs_dir):
    a = make_run(
        runs_dir,
        "lora-searched",
        0.9,
        kind="finetune",
        seed=1,
        n=300,
        metrics_extra={"search_trials": 20, "search_seconds": 1234.0, "train_seconds": 60.0},
    )
    b = make_run(runs_dir, "prompt", 0.5, seed=2, n=300)
    headline, _ = verdict.verdict(evaluate.compare_runs([a, b], n_resamples=100))
    assert "'lora-searched' trains 1,000 parameters in 60 s, was chosen by a 20-trial search costing 1,234 s, labels" in headline
    assert "'prompt' needs no training, labels" in headline


def test_verdict_and_table_show_endpoint_tokens_money_and_latency(runs_dir):
    api = {"prompt_tokens": 123_456, "completion_tokens": 300, "cost_usd": 0.0185, "latency_ms": 212.0}
    a = make_run(runs_dir, "gpt", 0.9, seed=1, n=300, metrics_extra=api)
    b = make_run(runs_dir, "local", 0.5, seed=2, n=300)
    cmp = evaluate.compare_runs([a, b], n_resamples=100)
    headline, _ = verdict.verdict(cmp)
    assert (
        "'gpt' needs no training, sends 123,456 prompt and 300 completion tokens ($0.0185), waits 212 ms per request "
        "(median), labels 24.0 examples/s"
    ) in headline
    table = evaluate.format_metrics_table(cmp.metrics, cmp.baselines).set_index("run")
    assert table.loc["gpt", ["tokens in/out", "USD", "latency ms"]].tolist() == ["123,456 / 300", "0.0185", "212"]
    assert table.loc["local", ["tokens in/out", "USD", "latency ms"]].tolist() == ["", "", ""]
    without = evaluate.format_metrics_table(evaluate.compare_runs([b, b], n_resamples=50).metrics)
    assert "USD" not in without.columns  # no endpoint run: the table stays narrow


def test_verdict_says_when_the_difference_may_be_chance(runs_dir):
    a = make_run(runs_dir, "a", 0.70, seed=1)
    b = make_run(runs_dir, "b", 0.72, seed=2)
    cmp = evaluate.compare_runs([a, b], n_resamples=100)
    headline, _ = verdict.verdict(cmp)
    p = cmp.mcnemar.loc[0, "p_value"]
    assert p >= 0.05 and f"not significant (McNemar {verdict.format_p(p)}), so it may be chance" in headline


def test_every_caveat(runs_dir):
    good = make_run(runs_dir, "good", 0.9, kind="finetune", seed=1, config_extra={"epochs": 3.0}, metrics_extra=BUDGET)
    bad = make_run(runs_dir, "bad", 0.0, seed=2, n=40)  # always wrong; scored the first 40 rows only
    cmp = evaluate.compare_runs([good, bad], n_resamples=100)
    _, caveats = verdict.verdict(cmp)
    text = "\n".join(caveats)
    assert "Only 40 evaluation examples (fewer than 200)" in text
    assert "'good' was stopped by its time budget after 1.6 of 3 epochs" in text
    majority = cmp.baselines.set_index("run").loc["majority", "macro_f1"]
    assert f"'bad' does not beat the majority baseline on macro-F1 (0.000 vs {majority:.3f}" in text
    assert "Run 'good' scored 60 examples; the comparison uses the 40 that every run scored." in text
    assert len(caveats) == 4
    flags = evaluate.format_metrics_table(cmp.metrics, cmp.baselines).set_index("run")["warnings"]
    assert flags.to_dict() == {"good": "time budget", "bad": "below majority", "majority": "", "stratified random": ""}


def test_headline_says_when_no_run_beats_the_majority(runs_dir):
    a = make_run(runs_dir, "a", 0.0, seed=1)
    b = make_run(runs_dir, "b", 0.0, seed=2)
    headline, caveats = verdict.verdict(evaluate.compare_runs([a, b], n_resamples=100))
    assert headline.startswith("No run beats the majority baseline (macro-F1 0.167); the best, 'a' is best")
    assert sum("does not beat the majority baseline" in c for c in caveats) == 2


def test_run_warnings_read_the_runs_own_metrics(runs_dir):
    budget = RunDir(make_run(runs_dir, "budget", 0.9, kind="finetune", config_extra={"epochs": 3.0}, metrics_extra=BUDGET))
    below = RunDir(make_run(runs_dir, "below", 0.0))
    fine = RunDir(make_run(runs_dir, "fine", 0.9))
    assert verdict.run_flags(budget.config, budget.metrics) == "time budget"
    assert verdict.run_warnings("budget", budget.config, budget.metrics)[0].startswith(
        "'budget' was stopped by its time budget after 1.6 of 3 epochs"
    )
    assert verdict.run_flags(below.config, below.metrics) == "below majority"
    assert verdict.run_flags(fine.config, fine.metrics) == "" and verdict.run_warnings("fine", fine.config, fine.metrics) == []
    for broken in (None, {}, [1, 2], {"macro_f1": 0.1, "labels": ["a"], "confusion_matrix": "oops"}):
        assert verdict.run_warnings("x", {}, broken) == []


def test_finished_runs_record_peak_memory(runs_dir):
    run = RunDir(make_run(runs_dir, "a", 0.8))
    assert run.metrics["peak_memory_mb"] > 0


def test_a_generated_run_without_probabilities_is_compared_and_its_gaps_said(runs_dir):
    """An endpoint's generate mode writes empty confidence and probabilities and '(unparsed)' answers: Compare, the
    report and the verdict still work, and say what is missing."""
    gen = make_run(runs_dir, "gen", 0.8, seed=1, metrics_extra={"scoring_mode": "generate", "unparsed": 5})
    preds = RunDir(gen).predictions()
    for col in [c for c in preds.columns if c.startswith("prob_")] + ["confidence"]:
        preds[col] = ""
    preds.loc[:4, "pred"] = "(unparsed)"
    preds.to_csv(gen / "predictions.csv", index=False)
    ft = make_run(runs_dir, "ft", 0.7, kind="finetune", seed=2)
    cmp = evaluate.compare_runs([gen, ft], n_resamples=50)
    rows = cmp.metrics.set_index("run")
    assert np.isnan(rows.loc["gen", "ece"]) and not np.isnan(rows.loc["ft", "ece"])
    assert set(cmp.reliability["run"]) == {"ft"}
    assert rows.loc["gen", "accuracy"] <= (60 - 5) / 60  # unparsed answers count as wrong
    _, caveats = verdict.verdict(cmp)
    assert "'gen' gave 5 answers that named no label; they count as wrong." in caveats
    assert any(c.startswith("'gen' has no probabilities (scoring mode generate)") for c in caveats)
    assert "no calibration line" in report.build_report(cmp)


def test_a_searched_side_against_an_unsearched_one_offers_the_same_search(runs_dir):
    """Budget honesty: a searched fine-tune against default prompts gets a caveat with the command that searches the
    prompt side as many times; once both sides are searched, or no run is, there is nothing to offer."""
    tuned = make_run(runs_dir, "lora-searched", 0.9, kind="finetune", seed=1, n=300, metrics_extra={"search_trials": 20})
    prompt = make_run(runs_dir, "prompt", 0.5, seed=2, n=300)
    _, caveats = verdict.verdict(evaluate.compare_runs([tuned, prompt], n_resamples=100))
    offer = [c for c in caveats if "no prompt run was searched" in c]
    assert len(offer) == 1 and offer[0].startswith("'lora-searched' was chosen by a 20-trial search")
    assert offer[0].endswith("python -m core search --method prompt --train reviews:train --eval reviews:test --trials 20")
    searched_prompt = make_run(runs_dir, "prompt-searched", 0.6, seed=3, n=300, metrics_extra={"search_trials": 20})
    _, caveats = verdict.verdict(evaluate.compare_runs([tuned, searched_prompt], n_resamples=100))
    assert not [c for c in caveats if "was searched" in c]
    plain = make_run(runs_dir, "lora", 0.8, kind="finetune", seed=4, n=300)
    _, caveats = verdict.verdict(evaluate.compare_runs([plain, prompt], n_resamples=100))
    assert not [c for c in caveats if "was searched" in c]
