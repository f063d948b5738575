"""The comparison in plain words: which run wins, by how much, whether it is chance, what it costs, and what to distrust.

Also the warnings a single run carries wherever it is shown (stopped by its time budget, not beating the majority class)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.comparison.evaluate import BUDGET_STOP, Comparison, majority_baseline

MIN_EVAL_EXAMPLES = 200  # fewer evaluation examples than this: intervals too wide to separate runs a few points apart
SIGNIFICANCE = 0.05


def format_p(p: float) -> str:
    """A p-value as people read it: 'p < 0.001', 'p = 0.03', 'p = 0.41'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def budget_warning(name: str, config: dict, metrics: dict) -> str | None:
    """A sentence when the run's training was stopped by its time budget, else None."""
    if (metrics or {}).get("stopped_by") != BUDGET_STOP:
        return None
    done, planned = _num(metrics.get("epochs_done")), _num((config or {}).get("epochs"))
    where = f" after {done:.1f} of {planned:g} epochs" if not (math.isnan(done) or math.isnan(planned)) else ""
    return (f"'{name}' was stopped by its time budget{where}: it is not fully trained, so its scores understate "
            "what the method can do (raise the time budget or lower the epochs).")


def below_majority_warning(name: str, macro_f1: float, majority_f1: float) -> str | None:
    """A sentence when a run does not beat always answering the most frequent label on macro-F1, else None."""
    if not macro_f1 <= majority_f1:
        return None
    return (f"'{name}' does not beat the majority baseline on macro-F1 ({macro_f1:.3f} vs {majority_f1:.3f} for always "
            "answering the most frequent label): it has learned nothing usable from the text.")


def majority_macro_f1(metrics: dict) -> float | None:
    """Macro-F1 of the majority baseline on a run's own evaluation labels (from its confusion matrix), None if unknown."""
    labels, matrix = (metrics or {}).get("labels"), (metrics or {}).get("confusion_matrix")
    try:
        support = np.asarray(matrix, dtype=int).sum(axis=1)
        y_true = [lab for lab, n in zip(labels, support, strict=True) for _ in range(n)]
    except (TypeError, ValueError):
        return None
    return majority_baseline(y_true, list(labels))["macro_f1"] if y_true else None


def _run_checks(name: str, config: dict, metrics: dict | None) -> dict[str, str | None]:
    """Short flag -> warning sentence (None when it does not apply) for one finished run on its own evaluation split."""
    if not isinstance(metrics, dict) or not metrics:
        return {}
    config = config if isinstance(config, dict) else {}
    majority, f1 = majority_macro_f1(metrics), _num(metrics.get("macro_f1"))
    return {"time budget": budget_warning(name, config, metrics),
            "below majority": None if majority is None or math.isnan(f1) else below_majority_warning(name, f1, majority)}


def run_warnings(name: str, config: dict, metrics: dict | None) -> list[str]:
    """The warnings a finished run carries on the Fine-tune and Runs pages: time budget, below the majority baseline."""
    return [w for w in _run_checks(name, config, metrics).values() if w]


def run_flags(config: dict, metrics: dict | None) -> str:
    """The run's warnings as a short table cell: 'time budget', 'below majority', both, or ''."""
    return ", ".join(flag for flag, w in _run_checks("", config, metrics).items() if w)


def _mcnemar_p(cmp: Comparison, a: str, b: str) -> float:
    rows = cmp.mcnemar[((cmp.mcnemar["run_a"] == a) & (cmp.mcnemar["run_b"] == b))
                       | ((cmp.mcnemar["run_a"] == b) & (cmp.mcnemar["run_b"] == a))]
    return float(rows["p_value"].iloc[0]) if len(rows) else math.nan


def cost_phrase(row: pd.Series) -> str:
    """What a run costs in words: training parameters and time, inference speed, peak memory when recorded."""
    trainable, seconds = _num(row.get("trainable_params")), _num(row.get("train_seconds"))
    if trainable == 0:
        parts = ["needs no training"]
    else:
        what = f"trains {int(trainable):,} parameters" if not math.isnan(trainable) else "is trained"
        parts = [what + (f" in {seconds:.0f} s" if not math.isnan(seconds) else "")]
    speed, memory = _num(row.get("examples_per_second")), _num(row.get("peak_memory_mb"))
    if not math.isnan(speed):
        parts.append(f"labels {speed:.1f} examples/s")
    if not math.isnan(memory):
        parts.append(f"peaks at {memory:,.0f} MB of memory")
    return f"'{row['run']}' " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def verdict(cmp: Comparison) -> tuple[str, list[str]]:
    """(headline, caveats): the best run on macro-F1 with its 95% interval, its margin over the runner-up and whether McNemar
    finds it significant, the cost of both, then every caveat that applies to this comparison."""
    ranked = cmp.metrics.sort_values("macro_f1", ascending=False, kind="stable").reset_index(drop=True)
    best, second = ranked.iloc[0], ranked.iloc[1]
    majority = float(cmp.baselines.set_index("run").loc["majority", "macro_f1"])
    margin, p = best["macro_f1"] - second["macro_f1"], _mcnemar_p(cmp, best["run"], second["run"])
    lead = f"'{best['run']}' is best on macro-F1 with {best['macro_f1']:.3f} (95% CI {best['macro_f1_low']:.3f}-{best['macro_f1_high']:.3f})"
    if best["macro_f1"] <= majority:
        lead = f"No run beats the majority baseline (macro-F1 {majority:.3f}); the best, " + lead[0].lower() + lead[1:]
    if margin == 0:
        versus = f", tied with '{second['run']}'"
    else:
        versus = f", {margin:.3f} ahead of '{second['run']}' ({second['macro_f1']:.3f})"
    if math.isnan(p):
        significance = ""
    elif p < SIGNIFICANCE:
        significance = f"; the difference is significant (McNemar {format_p(p)})"
    else:
        significance = f"; the difference is not significant (McNemar {format_p(p)}), so it may be chance"
    headline = f"{lead}{versus}{significance}. Cost: {cost_phrase(best)}; {cost_phrase(second)}."
    return headline, caveats(cmp, majority)


def caveats(cmp: Comparison, majority: float) -> list[str]:
    """Sentences on what limits the comparison: few examples, budget-stopped runs, runs below the majority baseline, runs
    joined on a subset of their examples (runs of different evaluation splits are refused by the join)."""
    out = []
    n = len(cmp.joined)
    if n < MIN_EVAL_EXAMPLES:
        out.append(f"Only {n} evaluation examples (fewer than {MIN_EVAL_EXAMPLES}): the intervals are wide and differences of "
                   "a few points may be noise.")
    by_name = dict(zip(cmp.names, cmp.runs, strict=True))
    for _, row in cmp.metrics.iterrows():
        run = by_name[row["run"]]
        out += [w for w in (budget_warning(row["run"], run.config, run.metrics),
                            below_majority_warning(row["run"], row["macro_f1"], majority)) if w]
    return out + list(cmp.notes)
