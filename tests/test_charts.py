"""Chart specs that only a look at the picture would otherwise catch: bars that start at zero, and charts that stay
readable at 77 labels."""

from __future__ import annotations

import pandas as pd

from core import charts


def test_length_histogram_bars_rise_from_zero():
    """With x/x2 and no y baseline, Vega-Lite drew each bin as a thin dash floating at its count (and a -500 y axis)."""
    lengths = pd.DataFrame({"label": ["a", "b"] * 50, "tokens": [3 + i % 40 for i in range(100)]})
    spec = charts.length_histogram(lengths, max_length=32).to_dict()
    hist = spec["layer"][0]
    assert hist["mark"]["type"] == "bar" and hist["encoding"]["y2"] == {"datum": 0}
    assert charts.length_histogram(lengths).to_dict()["encoding"]["y2"] == {"datum": 0}


def test_class_probabilities_keep_the_likely_classes_and_the_true_label():
    """77 labels gave 77 rows of 40 px, nearly all empty; now the 8 most probable under any run, and the true label."""
    labels = [f"intent_{i:02d}" for i in range(77)]
    probs = pd.DataFrame(
        [
            {"run": run, "label": lab, "probability": (i + 1) / 4000 + (0.5 if (run, i) in (("a", 3), ("b", 40)) else 0)}
            for run in ("a", "b")
            for i, lab in enumerate(labels)
        ]
    )
    spec = charts.class_probabilities(probs, true_label="intent_00").to_dict()
    order = spec["encoding"]["y"]["sort"]
    assert order[:2] == ["intent_03", "intent_40"] or order[:2] == ["intent_40", "intent_03"]
    assert len(order) == 9 and order[-1] == "intent_00" and "intent_76" in order
    assert set(pd.DataFrame(next(iter(spec["datasets"].values())))["label"]) == set(order)
    assert charts.class_probabilities(probs[probs["label"].isin(labels[:3])], "intent_00").to_dict()["encoding"]["y"]["sort"] == [
        "intent_02",
        "intent_01",
        "intent_00",
    ]  # few classes: all of them, most probable first
