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
    return (
        f"'{name}' was stopped by its time budget{where}: it is not fully trained, so its scores understate "
        "what the method can do (raise the time budget or lower the epochs)."
    )


def below_majority_warning(name: str, macro_f1: float, majority_f1: float) -> str | None:
    """A sentence when a run does not beat always answering the most frequent label on macro-F1, else None."""
    if not macro_f1 <= majority_f1:
        return None
    return (
        f"'{name}' does not beat the majority baseline on macro-F1 ({macro_f1:.3f} vs {majority_f1:.3f} for always "
        "answering the most frequent label): it has learned nothing usable from the text."
    )


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
    return {
        "time budget": budget_warning(name, config, metrics),
        "below majority": None if majority is None or math.isnan(f1) else below_majority_warning(name, f1, majority),
    }


def run_warnings(name: str, config: dict, metrics: dict | None) -> list[str]:
    """The warnings a finished run carries on the Fine-tune and Runs pages: time budget, below the majority baseline."""
    return [w for w in _run_checks(name, config, metrics).values() if w]


def run_flags(config: dict, metrics: dict | None) -> str:
    """The run's warnings as a short table cell: 'time budget', 'below majority', both, or ''."""
    return ", ".join(flag for flag, w in _run_checks("", config, metrics).items() if w)


def _mcnemar_p(cmp: Comparison, a: str, b: str) -> float:
    rows = cmp.mcnemar[
        ((cmp.mcnemar["run_a"] == a) & (cmp.mcnemar["run_b"] == b)) | ((cmp.mcnemar["run_a"] == b) & (cmp.mcnemar["run_b"] == a))
    ]
    return float(rows["p_value"].iloc[0]) if len(rows) else math.nan


def cost_phrase(row: pd.Series) -> str:
    """What a run costs in words: training parameters and time, the hyperparameter search that chose it, tokens, money
    and latency of an endpoint, inference speed, peak memory, each when recorded."""
    trainable, seconds = _num(row.get("trainable_params")), _num(row.get("train_seconds"))
    if trainable == 0:
        parts = ["needs no training"]
    else:
        what = f"trains {int(trainable):,} parameters" if not math.isnan(trainable) else "is trained"
        parts = [what + (f" in {seconds:.0f} s" if not math.isnan(seconds) else "")]
    trials, searched = _num(row.get("search_trials")), _num(row.get("search_seconds"))
    if not math.isnan(trials):  # a searched run is not like for like with an unsearched one: its search is part of its cost
        parts.append(
            f"was chosen by a {int(trials)}-trial search costing {searched:,.0f} s"
            if not math.isnan(searched)
            else f"was chosen by a {int(trials)}-trial search"
        )
    tokens_in, tokens_out = _num(row.get("prompt_tokens")), _num(row.get("completion_tokens"))
    if not math.isnan(tokens_in):
        usd = _num(row.get("cost_usd"))
        money = f" (${usd:.4f})" if not math.isnan(usd) else " (no price set)"
        parts.append(
            f"sends {int(tokens_in):,} prompt and {int(0 if math.isnan(tokens_out) else tokens_out):,} completion tokens{money}"
        )
    latency, speed, memory = _num(row.get("latency_ms")), _num(row.get("examples_per_second")), _num(row.get("peak_memory_mb"))
    if not math.isnan(latency):
        parts.append(f"waits {latency:,.0f} ms per request (median)")
    if not math.isnan(speed):
        parts.append(f"labels {speed:.1f} examples/s")
    if not math.isnan(memory):
        parts.append(f"peaks at {memory:,.0f} MB of memory")
    return f"'{row['run']}' " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def family(kind: str) -> str:
    """'prompt' for a prompted run (local model or endpoint), 'fine-tune' for anything trained on the labels."""
    return "prompt" if kind == "prompt" else "fine-tune"


def _score(row: pd.Series) -> str:
    return f"{row['macro_f1']:.3f} (95% CI {row['macro_f1_low']:.3f}-{row['macro_f1_high']:.3f})"


def _significance(p: float) -> str:
    if math.isnan(p):
        return ""
    if p < SIGNIFICANCE:
        return f"; the difference is significant (McNemar {format_p(p)})"
    return f"; the difference is not significant (McNemar {format_p(p)}), so it may be chance"


def _families_lead(cmp: Comparison, ranked: pd.DataFrame) -> tuple[str, pd.Series, pd.Series] | None:
    """The prompt-or-fine-tune answer when both families ran: the best of each, margin, McNemar; None otherwise."""
    fams = ranked["kind"].map(family)
    if fams.nunique() < 2:
        return None
    tuned, prompt = ranked[fams == "fine-tune"].iloc[0], ranked[fams == "prompt"].iloc[0]
    margin, p = tuned["macro_f1"] - prompt["macro_f1"], _mcnemar_p(cmp, tuned["run"], prompt["run"])
    if margin == 0:
        text = (
            f"Fine-tuning and prompting tie: the best fine-tuned run '{tuned['run']}' and the best prompt "
            f"'{prompt['run']}' both reach macro-F1 {_score(tuned)}"
        )
        return text + _significance(p), tuned, prompt
    win, lose = (tuned, prompt) if margin > 0 else (prompt, tuned)
    how = "Fine-tuning beats prompting" if margin > 0 else "Prompting beats fine-tuning"
    text = (
        f"{how}: the best {family(win['kind'])} run '{win['run']}' reaches macro-F1 {_score(win)}, {abs(margin):.3f} ahead "
        f"of the best {family(lose['kind'])} run '{lose['run']}' ({_score(lose)})"
    )
    return text + _significance(p), win, lose


def cheapest_within_interval(ranked: pd.DataFrame) -> pd.Series | None:
    """The run with the least compute (training plus labelling the evaluation split, then money) whose macro-F1 lies
    inside the best run's 95% interval, when that is not the best run itself; None otherwise."""
    best = ranked.iloc[0]
    close = ranked[ranked["macro_f1"] >= best["macro_f1_low"]]
    cost = close.assign(_s=close["seconds"].fillna(math.inf), _usd=close.reindex(columns=["cost_usd"])["cost_usd"].fillna(0.0))
    cheapest = cost.sort_values(["_s", "_usd"], kind="stable").iloc[0]
    if cheapest["run"] == best["run"] or not cheapest["_s"] < _num(best.get("seconds")):
        return None
    return ranked[ranked["run"] == cheapest["run"]].iloc[0]


def verdict(cmp: Comparison) -> tuple[str, list[str]]:
    """(headline, caveats). When prompt and fine-tuned runs are both present the headline answers the page's question
    first: the best of each family, the margin, whether McNemar finds it significant; otherwise the best run against the
    runner-up. Then what both cost, the cheapest run within the best run's interval, and every caveat that applies."""
    ranked = cmp.metrics.sort_values("macro_f1", ascending=False, kind="stable").reset_index(drop=True)
    best = ranked.iloc[0]
    majority = float(cmp.baselines.set_index("run").loc["majority", "macro_f1"])
    families = _families_lead(cmp, ranked)
    if families is not None:
        lead, first, second = families
    else:
        first, second = best, ranked.iloc[1]
        margin = best["macro_f1"] - second["macro_f1"]
        lead = f"'{best['run']}' is best on macro-F1 with {_score(best)}"
        lead += (
            f", tied with '{second['run']}'"
            if margin == 0
            else f", {margin:.3f} ahead of '{second['run']}' ({second['macro_f1']:.3f})"
        )
        lead += _significance(_mcnemar_p(cmp, best["run"], second["run"]))
    if best["macro_f1"] <= majority:
        lead = (
            f"No run beats the majority baseline (macro-F1 {majority:.3f}); "
            + ("" if families else "the best, ")
            + lead[0].lower()
            + lead[1:]
        )
    headline = f"{lead}. Cost: {cost_phrase(first)}; {cost_phrase(second)}."
    cheap = cheapest_within_interval(ranked)
    if cheap is not None:
        headline += (
            f" The cheapest run within the best run's interval is '{cheap['run']}' (macro-F1 {cheap['macro_f1']:.3f}, "
            f"{cheap['seconds']:,.0f} s of compute against {best['seconds']:,.0f} s for '{best['run']}')."
        )
    return headline, caveats(cmp, majority)


def caveats(cmp: Comparison, majority: float) -> list[str]:
    """Sentences on what limits the comparison: few examples, budget-stopped runs, runs below the majority baseline, the
    best run of a family whose interval reaches down to that baseline, a generated run's unparsed answers and missing
    probabilities, runs joined on a subset of their examples (runs of different evaluation splits are refused by the join)."""
    out = []
    n = len(cmp.joined)
    if n < MIN_EVAL_EXAMPLES:
        out.append(
            f"Only {n} evaluation examples (fewer than {MIN_EVAL_EXAMPLES}): the intervals are wide and differences of "
            "a few points may be noise."
        )
    by_name = dict(zip(cmp.names, cmp.runs, strict=True))
    for _, row in cmp.metrics.iterrows():
        run = by_name[row["run"]]
        out += [
            w
            for w in (
                budget_warning(row["run"], run.config, run.metrics),
                below_majority_warning(row["run"], row["macro_f1"], majority),
            )
            if w
        ]
    for _, row in cmp.metrics.iterrows():  # an endpoint's generate mode: answers parsed to labels, no probabilities
        if _num(row.get("unparsed")) > 0:
            out.append(f"'{row['run']}' gave {int(row['unparsed'])} answers that named no label; they count as wrong.")
        if math.isnan(_num(row.get("ece"))):
            out.append(
                f"'{row['run']}' has no probabilities (scoring mode {row.get('scoring_mode') or 'unknown'}): it has no "
                "calibration line or ECE, and its confidence is empty in the error cases."
            )
    fams = cmp.metrics.assign(family=cmp.metrics["kind"].map(family)).sort_values("macro_f1", ascending=False, kind="stable")
    for _, row in fams.drop_duplicates("family").iterrows():  # the best of each family, barely above the baseline
        if majority < row["macro_f1"] and row["macro_f1_low"] <= majority:
            out.append(
                f"The best {row['family']} run '{row['run']}' is barely above the majority baseline: its macro-F1 "
                f"{row['macro_f1']:.3f} has a 95% interval reaching down to {row['macro_f1_low']:.3f}, and always "
                f"answering the most frequent label scores {majority:.3f}."
            )
    out += search_offer(cmp, fams)
    return out + list(cmp.notes)


def search_offer(cmp: Comparison, ranked: pd.DataFrame) -> list[str]:
    """When one family's runs include a searched one and the other family's do not, say so and give the command that
    runs the same search for the other side (a searched fine-tune against a default prompt is not like for like)."""
    searched = ranked.assign(_trials=ranked.reindex(columns=["search_trials"])["search_trials"]).dropna(subset=["_trials"])
    if ranked["family"].nunique() < 2 or searched.empty or searched["family"].nunique() > 1:
        return []
    row = searched.iloc[0]
    other = "prompt" if row["family"] == "fine-tune" else "fine-tune"
    data = dict(zip(cmp.names, cmp.runs, strict=True))[row["run"]].config.get("dataset") or {}
    method = "prompt" if other == "prompt" else "lora"
    command = (
        f"python -m core search --method {method} --train {data.get('train', 'TRAIN')} --eval {data.get('eval', 'EVAL')} "
        f"--trials {int(row['_trials'])}"
    )
    return [
        f"'{row['run']}' was chosen by a {int(row['_trials'])}-trial search and no {other} run was searched, so the "
        f"{row['family']} side had more tuning; give the {other} side the same search: {command}"
    ]
