"""core/evaluate's metrics come from scikit-learn and scipy; the hand-written formulas they replaced are kept here as the
oracle, and both must agree on fixtures (absent classes, never-predicted classes, ties, edge confidences)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.comparison import evaluate

LABELS = ["neg", "neu", "pos", "rare"]


def old_confusion(y_true, y_pred, labels):
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=False):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


def old_metrics(y_true, y_pred, labels):
    m = old_confusion(y_true, y_pred, labels)
    pc = {}
    for i, lab in enumerate(labels):
        tp, predicted, support = m[i, i], m[:, i].sum(), m[i, :].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        pc[lab] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": int(support)}
    present = [lab for lab in labels if pc[lab]["support"] > 0]
    return {
        "accuracy": float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=False)])) if y_true else 0.0,
        "macro_f1": float(np.mean([pc[lab]["f1"] for lab in present])) if present else 0.0,
        "per_class": pc,
        "confusion_matrix": m.tolist(),
    }


def old_mcnemar_p(b, c):
    n = b + c
    if n == 0:
        return 1.0
    if n < 25:
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)
    return math.erfc(math.sqrt((abs(b - c) - 1) ** 2 / n / 2))


def old_reliability(confidence, correct, n_bins=10):
    conf = np.clip(np.asarray(confidence, dtype=float), 0, 1)
    ok = np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows, ece = [], 0.0
    for k in range(n_bins):
        mask = which == k
        if mask.any():
            ece += mask.mean() * abs(ok[mask].mean() - conf[mask].mean())
            rows.append((edges[k], edges[k + 1], conf[mask].mean(), ok[mask].mean(), int(mask.sum())))
    return rows, ece


def _fixtures():
    rng = np.random.default_rng(7)
    for n, p_right in ((50, 0.7), (300, 0.4), (7, 0.5)):
        y_true = list(rng.choice(LABELS[:3], n))  # 'rare' never occurs in the truth
        y_pred = [t if rng.random() < p_right else str(rng.choice(LABELS)) for t in y_true]
        yield y_true, y_pred
    yield ["neg"] * 5 + ["pos"] * 5, ["neg"] * 10  # one class never predicted
    yield ["neu"] * 4, ["neu"] * 4  # perfect on a single class
    yield [], []


@pytest.mark.parametrize("case", range(6))
def test_classification_metrics_equal_the_hand_formulas(case):
    y_true, y_pred = list(_fixtures())[case]
    new, old = evaluate.classification_metrics(y_true, y_pred, LABELS), old_metrics(y_true, y_pred, LABELS)
    assert new["confusion_matrix"] == old["confusion_matrix"]
    assert new["accuracy"] == pytest.approx(old["accuracy"], abs=1e-12)
    assert new["macro_f1"] == pytest.approx(old["macro_f1"], abs=1e-12)
    for lab in LABELS:
        for key in ("precision", "recall", "f1", "support"):
            assert new["per_class"][lab][key] == pytest.approx(old["per_class"][lab][key], abs=1e-12), (lab, key)


@pytest.mark.parametrize("b,c", [(0, 0), (1, 6), (3, 3), (12, 12), (0, 24), (10, 30), (40, 41), (5, 200)])
def test_mcnemar_p_values_equal_the_hand_formulas(b, c):
    a = [True] * b + [False] * c + [True] * 4 + [False] * 3
    other = [False] * b + [True] * c + [True] * 4 + [False] * 3
    result = evaluate.mcnemar_test(a, other)
    assert (result["only_a_right"], result["only_b_right"]) == (b, c)
    assert result["p_value"] == pytest.approx(old_mcnemar_p(b, c), rel=1e-9, abs=1e-15)


def test_reliability_bins_equal_the_hand_formulas():
    rng = np.random.default_rng(3)
    conf = np.concatenate([rng.uniform(0.3, 1.0, 200), [0.1, 0.2, 0.5, 0.9, 1.0, 1.2, -0.1]])  # edges and out-of-range values
    ok = rng.random(len(conf)) < conf.clip(0, 1)
    frame, ece = evaluate.reliability(conf, ok)
    rows, old_ece = old_reliability(conf, ok)
    assert ece == pytest.approx(old_ece, abs=1e-12)
    assert len(frame) == len(rows)
    for got, want in zip(frame.itertuples(index=False), rows, strict=True):
        assert tuple(got) == pytest.approx(want, abs=1e-12)


def test_reliability_when_every_prediction_is_right_or_wrong():
    for ok in ([1, 1, 1], [0, 0, 0]):
        frame, ece = evaluate.reliability([0.95, 0.95, 0.55], ok)
        rows, old_ece = old_reliability([0.95, 0.95, 0.55], ok)
        assert ece == pytest.approx(old_ece) and list(frame["count"]) == [r[4] for r in rows]
