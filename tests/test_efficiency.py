"""The data-efficiency batch over every method family and the chart's seed spread and crossovers."""

from __future__ import annotations

import pandas as pd
import pytest

from core import charts
from core.cli import compare as cli_compare
from core.errors import UserError


def test_sizes_take_rows_per_class_and_all():
    assert cli_compare.parse_sizes("8pc,100,all,16", n_labels=2) == [16, 100, 0]
    for bad in ("0", "-3", "eightpc", ""):
        with pytest.raises(UserError, match="--sizes"):
            cli_compare.parse_sizes(bad, 2)


def test_plan_runs_every_method_at_every_size_and_seed_cheapest_first():
    plan = cli_compare.EfficiencyPlan(
        prefix="eff",
        data_argv=["--train", "reviews", "--eval", "reviews"],
        sizes=[16, 0],
        shots=[0],
        methods=["logreg", "setfit"],
        seeds=[0, 1],
    )
    names = [name for name, _ in plan.commands()]
    assert names == [
        "eff-prompt-0shot",
        "eff-logreg-16-s0",
        "eff-logreg-16-s1",
        "eff-setfit-16-s0",
        "eff-setfit-16-s1",
        "eff-logreg-all-s0",
        "eff-logreg-all-s1",
        "eff-setfit-all-s0",
        "eff-setfit-all-s1",
    ]
    argv = dict(plan.commands())["eff-setfit-all-s1"]
    assert argv[argv.index("--method") + 1] == "setfit" and argv[argv.index("--max-train-examples") + 1] == "0"
    assert argv[argv.index("--seed") + 1] == "1"
    with pytest.raises(UserError, match="Unknown method 'bogus'"):
        cli_compare.EfficiencyPlan(prefix="e", data_argv=[], sizes=[16], shots=[], methods=["bogus"])


def frame(rows):
    return pd.DataFrame(rows, columns=["run", "kind", "model", "method", "n_train_examples", "macro_f1"])


def test_series_show_seed_spread_and_crossovers():
    eff = frame(
        [
            ("p0", "prompt", "smollm2", "zero-shot", 0, 0.60),
            ("p4", "prompt", "smollm2", "4-shot balanced", 4, 0.70),
            ("l16a", "finetune", "minilm", "logreg", 16, 0.55),
            ("l16b", "finetune", "minilm", "logreg", 16, 0.65),
            ("l64", "finetune", "minilm", "logreg", 64, 0.75),
            ("l256", "finetune", "minilm", "logreg", 256, 0.80),
            ("f16", "finetune", "minilm", "full", 16, 0.50),
            ("f64", "finetune", "minilm", "full", 64, 0.60),
        ]
    )
    series = charts.efficiency_series(eff)
    logreg16 = series[(series["series"] == "logreg · minilm") & (series["n_train_examples"] == 16)].iloc[0]
    assert (logreg16["macro_f1"], logreg16["low"], logreg16["high"], logreg16["runs"]) == (pytest.approx(0.60), 0.55, 0.65, 2)
    assert set(series["series"]) == {"prompt · smollm2", "logreg · minilm", "full · minilm"}
    cross = charts.efficiency_crossovers(series)
    assert cross.to_dict("records") == [
        {"series": "logreg · minilm", "n_train_examples": 64, "macro_f1": 0.75}
    ]  # full never does
    spec = charts.efficiency_chart(eff).to_dict()
    assert len(spec["layer"]) == 3


def test_training_curves_share_a_whole_number_step_axis_from_zero():
    """One dev evaluation at step 13 used to get an axis of its own labelled '13.000000'."""
    history = pd.DataFrame(
        [{"step": s, "loss": 1.0 / s} for s in (1, 3, 6, 9, 12)] + [{"step": 13, "epoch": 0.4, "eval_macro_f1": 0.25}]
    )
    spec = charts.training_curves(history).to_dict()
    axes = [c["encoding"]["x"] for c in spec["hconcat"]]
    assert all(a["scale"]["domain"] == [0, 13] and a["axis"]["format"] == "d" and a["axis"]["tickMinStep"] == 1 for a in axes), (
        axes
    )
