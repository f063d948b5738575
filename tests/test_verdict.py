"""Baseline rows, run warnings and the plain-language verdict of a comparison, with every caveat."""

from __future__ import annotations

import pytest

from core.comparison import evaluate, verdict
from core.runs import RunDir
from tests.compare_fixtures import make_run

BUDGET = {"stopped_by": "max_train_seconds", "epochs_done": 1.6, "train_seconds": 120.0}


@pytest.mark.parametrize("p,text", [(0.0004, "p < 0.001"), (1e-12, "p < 0.001"), (0.001, "p = 0.001"), (0.03, "p = 0.03"),
                                    (0.0312, "p = 0.031"), (0.41, "p = 0.41"), (1.0, "p = 1")])
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
    assert list(table.columns[:8]) == ["run", "warnings", "macro_f1", "train s", "examples/s", "trainable params", "peak MB",
                                       "accuracy"]
    assert list(evaluate.per_class_table(cmp.metrics, cmp.baselines).columns) == ["run", "f1_negative", "f1_neutral", "f1_positive"]


def test_verdict_names_the_best_run_its_interval_margin_significance_and_cost(runs_dir):
    a = make_run(runs_dir, "prompt-8shot", 0.45, seed=1, n=300)
    b = make_run(runs_dir, "finetune-lora", 0.9, kind="finetune", seed=2, n=300, n_train_examples=256,
                 metrics_extra={"train_seconds": 95.0, "peak_memory_mb": 1234.0})
    cmp = evaluate.compare_runs([a, b], n_resamples=200)
    headline, caveats = verdict.verdict(cmp)
    best = cmp.metrics.set_index("run").loc["finetune-lora"]
    other = cmp.metrics.set_index("run").loc["prompt-8shot"]
    assert headline.startswith(f"'finetune-lora' is best on macro-F1 with {best['macro_f1']:.3f} "
                               f"(95% CI {best['macro_f1_low']:.3f}-{best['macro_f1_high']:.3f})")
    assert f"{best['macro_f1'] - other['macro_f1']:.3f} ahead of 'prompt-8shot'" in headline
    assert "the difference is significant (McNemar p < 0.001)" in headline
    assert "'finetune-lora' trains 1,000 parameters in 95 s, labels 24.0 examples/s and peaks at 1,234 MB of memory" in headline
    assert "'prompt-8shot' needs no training" in headline
    assert caveats == []  # 300 examples, no budget stop, both above the majority baseline, same rows


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
        "'budget' was stopped by its time budget after 1.6 of 3 epochs")
    assert verdict.run_flags(below.config, below.metrics) == "below majority"
    assert verdict.run_flags(fine.config, fine.metrics) == "" and verdict.run_warnings("fine", fine.config, fine.metrics) == []
    for broken in (None, {}, [1, 2], {"macro_f1": 0.1, "labels": ["a"], "confusion_matrix": "oops"}):
        assert verdict.run_warnings("x", {}, broken) == []


def test_finished_runs_record_peak_memory(runs_dir):
    run = RunDir(make_run(runs_dir, "a", 0.8))
    assert run.metrics["peak_memory_mb"] > 0
