"""Comparison statistics against hand-computed values, and the joins' refusals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.comparison import evaluate
from core.errors import UserError
from tests.compare_fixtures import make_run


def test_mcnemar_exact_matches_hand_computed_binomial():
    # A right and B wrong on 1 example, the reverse on 6: n = 7 < 25 -> exact; p = 2 * (C(7,0) + C(7,1)) / 2^7 = 16/128
    a = [True] * 1 + [False] * 6 + [True] * 10
    b = [False] * 1 + [True] * 6 + [True] * 10
    result = evaluate.mcnemar_test(a, b)
    assert (result["only_a_right"], result["only_b_right"]) == (1, 6)
    assert result["method"] == "exact binomial"
    assert result["p_value"] == pytest.approx(0.125)


def test_mcnemar_chi_square_with_continuity_correction():
    # b = 10, c = 30: chi2 = (|10 - 30| - 1)^2 / 40 = 9.025; p = P(chi2_1 > 9.025) = 0.002663...
    a = [True] * 10 + [False] * 30 + [True] * 5
    b = [False] * 10 + [True] * 30 + [True] * 5
    result = evaluate.mcnemar_test(a, b)
    assert result["method"] == "chi-square, continuity-corrected"
    assert result["statistic"] == pytest.approx(9.025)
    assert result["p_value"] == pytest.approx(0.0026631, rel=1e-3)


def test_mcnemar_without_disagreement_is_not_significant():
    assert evaluate.mcnemar_test([True, False], [True, False])["p_value"] == 1.0


def test_bootstrap_interval_brackets_the_estimate_and_matches_a_loop():
    rng = np.random.default_rng(1)
    labels = ["a", "b", "c"]
    y_true = list(rng.choice(labels, 80))
    y_pred = [t if rng.random() < 0.7 else rng.choice(labels) for t in y_true]
    ci = evaluate.bootstrap_metrics(y_true, y_pred, labels, n_resamples=400, seed=3).set_index("metric")
    acc = ci.loc["accuracy"]
    assert acc["low"] <= acc["value"] <= acc["high"] and acc["high"] - acc["low"] < 0.3
    # the same resamples, computed one at a time with classification_metrics, give the same macro-F1 percentiles
    r = np.random.default_rng(3)
    idx = r.integers(0, 80, size=(400, 80))
    loop = [
        evaluate.classification_metrics([y_true[i] for i in row], [y_pred[i] for i in row], labels)["macro_f1"] for row in idx
    ]
    assert ci.loc["macro_f1", "low"] == pytest.approx(np.percentile(loop, 2.5))
    assert ci.loc["macro_f1", "high"] == pytest.approx(np.percentile(loop, 97.5))


def test_bootstrap_of_a_perfect_classifier_has_no_width():
    ci = evaluate.bootstrap_metrics(["a", "b"] * 10, ["a", "b"] * 10, ["a", "b"], n_resamples=200).set_index("metric")
    assert tuple(ci.loc["accuracy", ["value", "low", "high"]]) == (1.0, 1.0, 1.0)


def test_reliability_and_ece_by_hand():
    # two bins used: conf 0.9 (4 examples, 3 right) and conf 0.6 (2 examples, 0 right): ECE = 4/6*0.15 + 2/6*0.6 = 0.3
    bins, ece = evaluate.reliability([0.9, 0.9, 0.9, 0.9, 0.6, 0.6], [1, 1, 1, 0, 0, 0])
    assert ece == pytest.approx(0.3)
    assert list(bins["count"]) == [2, 4]


def test_join_refuses_runs_of_different_splits(runs_dir):
    a = make_run(runs_dir, "a", 0.8)
    b = make_run(runs_dir, "b", 0.6, eval_sha256="another-split")
    with pytest.raises(UserError, match="different splits"):
        evaluate.compare_runs([a, b])


def test_join_refuses_a_single_run_and_unfinished_runs(runs_dir):
    a = make_run(runs_dir, "a", 0.8)
    with pytest.raises(UserError, match="at least two runs"):
        evaluate.compare_runs([a])
    (runs_dir / "b").mkdir()
    (runs_dir / "b" / "config.json").write_text('{"kind": "prompt"}')
    with pytest.raises(UserError, match="has not finished"):
        evaluate.compare_runs([a, runs_dir / "b"])


def test_compare_runs_joins_and_counts(runs_dir):
    a = make_run(runs_dir, "good", 0.9, seed=1)
    b = make_run(runs_dir, "weak", 0.5, kind="finetune", seed=2, n_train_examples=64)
    cmp = evaluate.compare_runs([a, b], n_resamples=200)
    assert len(cmp.joined) == 60 and cmp.names == ["good", "weak"]
    table = evaluate.agreement_table(cmp.joined, "good", "weak")
    assert table.to_numpy().sum() == 60
    good_acc = cmp.metrics.set_index("run").loc["good", "accuracy"]
    assert good_acc == pytest.approx(cmp.joined["correct@good"].mean())
    assert cmp.mcnemar.loc[0, "only_a_right"] == table.iloc[0, 1]
    assert set(cmp.confusions.groupby("run")["count"].sum()) == {60}
    cells = evaluate.error_cases(cmp.joined, cmp.names, cell="only B right")
    assert len(cells) == table.iloc[1, 0] and (cells["agreement"] == "only B right").all()
    by_label = evaluate.error_cases(cmp.joined, cmp.names, label="neutral")
    assert set(by_label["label"]) == {"neutral"}
    assert by_label["max_confidence"].is_monotonic_decreasing


def test_efficiency_frame_reads_n_train_examples(runs_dir):
    paths = [make_run(runs_dir, f"ft{n}", 0.5, kind="finetune", n_train_examples=n) for n in (16, 64)]
    paths.append(make_run(runs_dir, "p4", 0.7, n_train_examples=4))
    eff = evaluate.efficiency_frame(paths)
    assert list(eff["n_train_examples"]) == [16, 64, 4]
    assert isinstance(eff, pd.DataFrame) and eff["macro_f1"].between(0, 1).all()
    assert not math.isnan(eff["macro_f1"].sum())


def test_runs_scored_on_a_subset_join_on_the_shared_rows(runs_dir):
    full = make_run(runs_dir, "full", 0.8, kind="finetune", n=60)
    part = make_run(runs_dir, "part", 0.6, n=20, seed=5)  # a prompt run capped to the first 20 rows of the same split
    cmp = evaluate.compare_runs([full, part], n_resamples=100)
    assert len(cmp.joined) == 20 and set(cmp.joined["id"]) == {f"ex{i:03d}" for i in range(20)}
    assert cmp.notes == ["Run 'full' scored 60 examples; the comparison uses the 20 that every run scored."]
    assert cmp.metrics.set_index("run").loc["full", "accuracy"] == pytest.approx(cmp.joined["correct@full"].mean())


def test_runs_without_shared_examples_are_refused(runs_dir):
    a = make_run(runs_dir, "a", 0.8, n=10)
    b = make_run(runs_dir, "b", 0.8, n=10)
    preds = pd.read_csv(b / "predictions.csv", dtype=str)
    preds["id"] = "other-" + preds["id"]
    preds.to_csv(b / "predictions.csv", index=False)
    with pytest.raises(UserError, match="share no evaluated example"):
        evaluate.compare_runs([a, b])
