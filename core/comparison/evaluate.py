"""Metrics, confusion matrices, comparisons, significance and disagreement tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError


def confusion(y_true: list[str], y_pred: list[str], labels: list[str]) -> np.ndarray:
    """Confusion matrix, rows = true label, columns = predicted label, in the order of labels (scikit-learn)."""
    from sklearn.metrics import confusion_matrix

    if not set(labels) & set(y_true):  # scikit-learn refuses a matrix none of whose labels occurs (or no examples at all)
        return np.zeros((len(labels), len(labels)), dtype=int)
    return confusion_matrix(y_true, y_pred, labels=labels)


def per_class(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class (scikit-learn; 0 where undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    if not len(y_true):
        return {lab: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for lab in labels}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }


def classification_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """accuracy, macro_f1, per_class, confusion_matrix, labels, n_examples: the metrics.json core of every run (scikit-learn).
    Macro-F1 averages the classes that occur in y_true."""
    from sklearn.metrics import accuracy_score, f1_score

    y_true, y_pred = list(y_true), list(y_pred)
    pc = per_class(y_true, y_pred, labels)
    present = [lab for lab in labels if pc[lab]["support"] > 0]
    n = len(y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if n else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if present else 0.0,
        "per_class": pc,
        "confusion_matrix": confusion(y_true, y_pred, labels).tolist(),
        "labels": list(labels),
        "n_examples": n,
    }


BASELINES = {"majority": "most_frequent", "stratified random": "stratified"}  # row name -> DummyClassifier strategy


def baseline_predictions(y_true: list[str], strategy: str, seed: int = 0) -> list[str]:
    """What a label-only DummyClassifier (fitted on these labels) predicts for each example: the majority class, or
    seeded draws in the class proportions. The bar every run must clear to have learned anything from the text."""
    from sklearn.dummy import DummyClassifier

    y = np.asarray([str(v) for v in y_true], dtype=object)
    features = np.zeros((len(y), 1))
    return DummyClassifier(strategy=strategy, random_state=seed).fit(features, y).predict(features).tolist()


def majority_baseline(y_true: list[str], labels: list[str]) -> dict:
    """classification_metrics of always answering the most frequent label of y_true."""
    return classification_metrics(list(y_true), baseline_predictions(y_true, "most_frequent"), labels)


def flag_below_majority(metrics: dict, y_true: list[str], labels: list[str]) -> str | None:
    """Record in metrics whether the run beats always answering the majority class on macro-F1 (below_majority,
    majority_macro_f1, majority_accuracy); a warning sentence when it does not."""
    majority = majority_baseline(y_true, labels)
    below = bool(metrics["macro_f1"] <= majority["macro_f1"])
    metrics.update(below_majority=below, majority_macro_f1=majority["macro_f1"], majority_accuracy=majority["accuracy"])
    if not below:
        return None
    return (
        f"macro-F1 {metrics['macro_f1']:.3f} does not beat the majority class (always answering it scores macro-F1 "
        f"{majority['macro_f1']:.3f}, accuracy {majority['accuracy']:.3f}); this run has not learned the task."
    )


def predictions_frame(ids, texts, labels, probs: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """predictions.csv rows: id, text, label, pred, confidence, prob_<label> per label (probs: (N, C))."""
    probs = np.asarray(probs, dtype=float)
    pred_idx = probs.argmax(axis=1)
    df = pd.DataFrame(
        {
            "id": list(ids),
            "text": list(texts),
            "label": list(labels),
            "pred": [label_names[i] for i in pred_idx],
            "confidence": probs.max(axis=1).round(6),
        }
    )
    for j, lab in enumerate(label_names):
        df[f"prob_{lab}"] = probs[:, j].round(6)
    return df


# ---- comparing runs: joins, bootstrap intervals, McNemar, agreement, calibration, data efficiency ----------------

BUDGET_STOP = "max_train_seconds"  # metrics.json stopped_by of a fine-tune cut by its time budget
EXACT_MCNEMAR_BELOW = 25  # discordant pairs below this: exact binomial test; otherwise chi-square with continuity correction
AGREEMENT_CELLS = ("both right", "only A right", "only B right", "both wrong")


@dataclass
class RunResult:
    """One finished run as the Compare page needs it: name, config, metrics and predictions."""

    name: str
    path: Path
    config: dict
    metrics: dict
    predictions: pd.DataFrame

    @property
    def eval_sha256(self) -> str:
        from core.runs import eval_split

        return eval_split(self.config)

    @property
    def labels(self) -> list[str]:
        return list(self.metrics.get("labels") or [c[len("prob_") :] for c in self.predictions.columns if c.startswith("prob_")])


def load_run_result(path: str | Path) -> RunResult:
    """Read a finished run directory (config.json, metrics.json, predictions.csv), refusing incomplete ones."""
    from core.runs import open_run

    run = open_run(path)
    config, metrics = run.config, run.metrics
    if not config:
        raise UserError(f"Run '{run.name}' has no readable config.json, so it cannot be compared.")
    if not metrics or not (run.path / "predictions.csv").exists():
        raise UserError(f"Run '{run.name}' has not finished (no metrics.json or predictions.csv yet), so it cannot be compared.")
    try:
        preds = run.predictions()
    except (OSError, ValueError) as e:
        raise UserError(f"The predictions.csv of run '{run.name}' cannot be read ({str(e)[:120]}).") from None
    missing = {"id", "text", "label", "pred", "confidence"} - set(preds.columns)
    if missing:
        raise UserError(f"The predictions.csv of run '{run.name}' lacks the column(s) {', '.join(sorted(missing))}.")
    for col in ["confidence", *[c for c in preds.columns if c.startswith("prob_")]]:  # empty: no probabilities (generate mode)
        preds[col] = pd.to_numeric(preds[col], errors="coerce")
    return RunResult(name=run.name, path=run.path, config=config, metrics=metrics, predictions=preds)


def unique_names(runs: list[RunResult]) -> list[str]:
    """Run names made unique (a second run of the same name gets a #2 suffix)."""
    seen: dict[str, int] = {}
    out = []
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        out.append(r.name if seen[r.name] == 1 else f"{r.name}#{seen[r.name]}")
    return out


def join_predictions(runs: list[RunResult]) -> pd.DataFrame:
    """One row per evaluation example: id, text, label, then pred/confidence/correct/prob_<label> per run ('<col>@<run>')."""
    if len(runs) < 2:
        raise UserError("Choose at least two runs to compare.")
    from core.runs import check_comparable

    check_comparable({name: r.config for name, r in zip(unique_names(runs), runs, strict=True)})
    for r in runs:
        if r.predictions["id"].duplicated().any():
            raise UserError(f"Run '{r.name}' has duplicate example ids in predictions.csv.")
    common = set.intersection(*(set(r.predictions["id"]) for r in runs))
    if not common:
        raise UserError(
            "These runs share no evaluated example although their split fingerprints agree, so there is nothing to compare."
        )
    base = runs[0].predictions[["id", "text", "label"]]
    base = base[base["id"].isin(common)].reset_index(drop=True)  # runs scored on a subset of the split join on the shared rows
    for name, r in zip(unique_names(runs), runs, strict=True):
        p = r.predictions
        cols = ["id", "pred", "confidence"] + [c for c in p.columns if c.startswith("prob_")]
        part = p[cols].rename(columns={c: f"{c}@{name}" for c in cols if c != "id"})
        base = base.merge(part, on="id", how="left", validate="one_to_one")
        base[f"correct@{name}"] = base[f"pred@{name}"] == base["label"]
    return base


def join_notes(runs: list[RunResult], joined: pd.DataFrame) -> list[str]:
    """Sentences about runs that scored more examples than the joined, shared rows (metrics here differ from metrics.json)."""
    return [
        f"Run '{r.name}' scored {len(r.predictions)} examples; the comparison uses the {len(joined)} that every run scored."
        for r in runs
        if len(r.predictions) > len(joined)
    ]


def _f1_from_counts(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> np.ndarray:
    """Elementwise F1 = 2 tp / (predicted + true), 0 where both are 0."""
    denom = n_pred + n_true
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)


def bootstrap_metrics(
    y_true, y_pred, labels: list[str], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Percentile bootstrap intervals for accuracy, macro-F1 and per-class F1 (rows: metric, value, low, high), vectorised."""
    index = {lab: i for i, lab in enumerate(labels)}
    t = np.array([index.get(v, -1) for v in y_true])
    p = np.array([index.get(v, -2) for v in y_pred])
    n, c = len(t), len(labels)
    if n == 0:
        raise UserError("There are no examples to compute metrics on.")
    onehot_true = (t[:, None] == np.arange(c)[None, :]).astype(float)  # (N, C)
    onehot_pred = (p[:, None] == np.arange(c)[None, :]).astype(float)  # (N, C)
    hit = (t == p).astype(float)  # (N,)
    rng = np.random.default_rng(seed)
    acc, macro, per_class = [], [], []
    chunk = max(1, min(n_resamples, 2_000_000 // max(n, 1)))  # keeps the (chunk, N) count matrix small
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))  # (B, N) resampled example indices
        counts = np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n).astype(float)  # (B, N)
        tp = counts @ (onehot_true * onehot_pred)  # (B, C)
        n_true, n_pred = counts @ onehot_true, counts @ onehot_pred  # (B, C) each
        f1 = _f1_from_counts(tp, n_pred, n_true)  # (B, C)
        present = n_true > 0
        acc.append(counts @ hit / n)
        macro.append(np.where(present, f1, 0).sum(1) / np.maximum(present.sum(1), 1))
        per_class.append(np.where(present, f1, np.nan))
    acc_s, macro_s, pc_s = np.concatenate(acc), np.concatenate(macro), np.concatenate(per_class)
    point = classification_metrics(list(y_true), list(y_pred), labels)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    rows = [
        ("accuracy", point["accuracy"], *np.percentile(acc_s, [lo_q, hi_q])),
        ("macro_f1", point["macro_f1"], *np.percentile(macro_s, [lo_q, hi_q])),
    ]
    for j, lab in enumerate(labels):
        col = pc_s[:, j][~np.isnan(pc_s[:, j])]
        lo, hi = np.percentile(col, [lo_q, hi_q]) if len(col) else (np.nan, np.nan)
        rows.append((f"f1_{lab}", point["per_class"][lab]["f1"], lo, hi))
    return pd.DataFrame(rows, columns=["metric", "value", "low", "high"])


def mcnemar_test(correct_a, correct_b) -> dict:
    """McNemar's test on paired correctness: b = only A right, c = only B right; exact binomial (scipy.stats.binomtest) when
    b + c < 25, else chi-square with continuity correction (scipy.stats.chi2)."""
    from scipy.stats import binomtest, chi2

    a, bb = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    b, c = int(np.sum(a & ~bb)), int(np.sum(~a & bb))
    n = b + c
    if n == 0:
        return {"only_a_right": b, "only_b_right": c, "statistic": 0.0, "p_value": 1.0, "method": "no disagreements"}
    if n < EXACT_MCNEMAR_BELOW:
        k = min(b, c)
        return {
            "only_a_right": b,
            "only_b_right": c,
            "statistic": float(k),
            "p_value": float(binomtest(k, n, 0.5).pvalue),
            "method": "exact binomial",
        }
    statistic = (abs(b - c) - 1) ** 2 / n
    return {
        "only_a_right": b,
        "only_b_right": c,
        "statistic": float(statistic),
        "p_value": float(chi2.sf(statistic, df=1)),
        "method": "chi-square, continuity-corrected",
    }


def run_names(joined: pd.DataFrame) -> list[str]:
    """The run names in a joined frame, in order."""
    return [c.split("@", 1)[1] for c in joined.columns if c.startswith("pred@")]


def pairwise_mcnemar(joined: pd.DataFrame) -> pd.DataFrame:
    """McNemar's test for every pair of runs in a joined frame (rows: run_a, run_b, counts, statistic, p_value, method)."""
    names = run_names(joined)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows.append({"run_a": a, "run_b": b, **mcnemar_test(joined[f"correct@{a}"], joined[f"correct@{b}"])})
    return pd.DataFrame(rows)


def agreement_cells(joined: pd.DataFrame, run_a: str, run_b: str) -> pd.Series:
    """Each example's cell of the 2x2 agreement table of two runs (both right / only A right / only B right / both wrong)."""
    a, b = joined[f"correct@{run_a}"].to_numpy(bool), joined[f"correct@{run_b}"].to_numpy(bool)
    cell = np.select([a & b, a & ~b, ~a & b], AGREEMENT_CELLS[:3], default=AGREEMENT_CELLS[3])
    return pd.Series(cell, index=joined.index, name="agreement")


def agreement_table(joined: pd.DataFrame, run_a: str, run_b: str) -> pd.DataFrame:
    """2x2 counts: rows = run A right/wrong, columns = run B right/wrong."""
    a, b = joined[f"correct@{run_a}"].to_numpy(bool), joined[f"correct@{run_b}"].to_numpy(bool)
    return pd.DataFrame(
        [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]],
        index=[f"{run_a} right", f"{run_a} wrong"],
        columns=[f"{run_b} right", f"{run_b} wrong"],
    )


def reliability(confidence, correct, n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability bins (bin_low, bin_high, confidence, accuracy, count) and expected calibration error (equal-width bins,
    scikit-learn's calibration_curve; a confidence on an edge belongs to the lower bin) over the rows with a confidence;
    NaN when none has one."""
    from sklearn.calibration import calibration_curve

    conf = np.asarray(confidence, dtype=float)
    known = ~np.isnan(conf)  # a run that gave no probabilities (an endpoint's generate mode) has none to calibrate
    conf, ok = np.clip(conf[known], 0, 1), np.asarray(correct, dtype=int)[known]
    columns = ["bin_low", "bin_high", "confidence", "accuracy", "count"]
    if not len(conf):
        return pd.DataFrame(columns=columns), (0.0 if not len(known) else float("nan"))
    accuracy, mean_conf = calibration_curve(ok, conf, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], conf), minlength=n_bins)  # calibration_curve's own binning
    used = np.flatnonzero(counts)
    ece = float(np.sum(counts[used] / len(conf) * np.abs(accuracy - mean_conf)))
    frame = pd.DataFrame(
        {
            "bin_low": edges[used],
            "bin_high": edges[used + 1],
            "confidence": mean_conf,
            "accuracy": accuracy,
            "count": counts[used].astype(int),
        },
        columns=columns,
    )
    return frame, ece


@dataclass
class Comparison:
    """Everything the Compare page and the report show for two or more runs on one split."""

    runs: list[RunResult]
    names: list[str]
    labels: list[str]
    joined: pd.DataFrame
    metrics: pd.DataFrame  # one row per run: metrics with 95% intervals and cost columns
    mcnemar: pd.DataFrame
    confusions: pd.DataFrame  # run, true, pred, count
    reliability: pd.DataFrame  # run, bin_low, bin_high, confidence, accuracy, count
    intervals: pd.DataFrame = field(default_factory=pd.DataFrame)  # run, metric, value, low, high
    notes: list[str] = field(default_factory=list)  # e.g. runs scored on a subset of the split
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)  # majority / stratified random, columns as in metrics


# What an endpoint prompt run records about its requests (core/endpoints.py): tokens, money (None without a price), latency.
ENDPOINT_COSTS = ("prompt_tokens", "completion_tokens", "cost_usd", "latency_ms")
SEARCH_COSTS = ("search_trials", "search_seconds")  # a run chosen by `python -m core search`: its trials and their compute


def _cost(metrics: dict, key: str):
    v = metrics.get(key)
    return float(v) if isinstance(v, (int, float)) else np.nan


def _metric_row(name: str, ci: pd.DataFrame, **fields) -> dict:
    """One row of the metrics table: the given fields, then each metric's value, with low/high for accuracy and macro-F1."""
    row = dict(run=name, **fields)
    for _, m in ci.iterrows():
        row[m["metric"]] = m["value"]
        if m["metric"] in ("accuracy", "macro_f1"):
            row[f"{m['metric']}_low"], row[f"{m['metric']}_high"] = m["low"], m["high"]
    return row


def compare_runs(paths: list[str | Path], n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Load and join runs, then compute interval metrics, pairwise McNemar tests, confusion matrices and calibration, and
    the majority and stratified-random baselines on the joined labels (each run's below_majority: macro-F1 not above it)."""
    runs = [load_run_result(p) for p in paths]
    joined = join_predictions(runs)
    names = run_names(joined)
    labels = list(runs[0].labels)
    for r in runs[1:]:
        labels += [lab for lab in r.labels if lab not in labels]
    y_true = joined["label"].tolist()
    baseline_rows = []
    for name, strategy in BASELINES.items():
        ci = bootstrap_metrics(y_true, baseline_predictions(y_true, strategy, seed), labels, n_resamples=n_resamples, seed=seed)
        baseline_rows.append(_metric_row(name, ci, kind="baseline", model="", method="", n_train_examples=0))
    baselines = pd.DataFrame(baseline_rows)
    majority_f1 = float(baselines.loc[0, "macro_f1"])
    metric_rows, interval_frames, conf_rows, rel_frames = [], [], [], []
    for name, r in zip(names, runs, strict=True):
        pred = joined[f"pred@{name}"].tolist()
        ci = bootstrap_metrics(y_true, pred, labels, n_resamples=n_resamples, seed=seed)
        interval_frames.append(ci.assign(run=name))
        rel, ece = reliability(joined[f"confidence@{name}"], joined[f"correct@{name}"])
        rel_frames.append(rel.assign(run=name))
        row = _metric_row(
            name,
            ci,
            kind=r.config.get("kind", "?"),
            model=r.config.get("model", "?"),
            method=r.config.get("method", ""),
            n_train_examples=r.config.get("n_train_examples"),
        )
        trainable = _cost(r.metrics, "trainable_params")
        train_seconds = _cost(r.metrics, "train_seconds")
        row.update(
            ece=ece,
            seconds=_cost(r.metrics, "seconds"),
            examples_per_second=_cost(r.metrics, "examples_per_second"),
            trainable_params=trainable,
            total_params=_cost(r.metrics, "total_params"),
            train_seconds=0.0 if trainable == 0 and np.isnan(train_seconds) else train_seconds,  # prompting trains nothing
            peak_memory_mb=_cost(r.metrics, "peak_memory_mb"),
            stopped_by=str(r.metrics.get("stopped_by") or ""),
            **{key: _cost(r.metrics, key) for key in ENDPOINT_COSTS + SEARCH_COSTS},
            unparsed=_cost(r.metrics, "unparsed"),
            scoring_mode=str(r.metrics.get("scoring_mode") or ""),
            below_majority=bool(row["macro_f1"] <= majority_f1),
        )
        metric_rows.append(row)
        m = confusion(y_true, pred, labels)
        conf_rows += [
            {"run": name, "true": t, "pred": p, "count": int(m[i, j])} for i, t in enumerate(labels) for j, p in enumerate(labels)
        ]
    return Comparison(
        runs=runs,
        names=names,
        labels=labels,
        joined=joined,
        metrics=pd.DataFrame(metric_rows),
        mcnemar=pairwise_mcnemar(joined),
        confusions=pd.DataFrame(conf_rows),
        reliability=pd.concat(rel_frames, ignore_index=True),
        intervals=pd.concat(interval_frames, ignore_index=True),
        notes=join_notes(runs, joined),
        baselines=baselines,
    )


def _blank_or(fmt: str):
    return lambda v: "" if pd.isna(v) else fmt.format(v)


def format_metrics_table(metrics: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """The compact metrics table as people read it, runs then baseline rows: warnings, macro-F1 as 'value [low, high]',
    the cost columns (training seconds, inference examples/s, trainable parameters, peak memory; for endpoint runs also
    prompt/completion tokens, money and median latency per request), then accuracy, ECE,
    kind and method; narrow enough that the costs show without scrolling sideways."""
    rows = pd.concat([metrics, baselines], ignore_index=True) if baselines is not None and len(baselines) else metrics
    budget, below = rows["stopped_by"].eq(BUDGET_STOP), rows["below_majority"].eq(True)
    flags = [
        ", ".join(f for f, on in (("time budget", a), ("below majority", b)) if on) for a, b in zip(budget, below, strict=True)
    ]
    out = pd.DataFrame({"run": rows["run"], "warnings": flags})
    interval = {
        key: [
            f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(rows[key], rows[f"{key}_low"], rows[f"{key}_high"], strict=True)
        ]
        for key in ("macro_f1", "accuracy")
    }
    out["macro_f1"] = interval["macro_f1"]
    out["train s"] = rows["train_seconds"].map(_blank_or("{:.0f}"))
    out["examples/s"] = rows["examples_per_second"].map(_blank_or("{:.1f}"))
    out["trainable params"] = rows["trainable_params"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
    out["peak MB"] = rows["peak_memory_mb"].map(_blank_or("{:,.0f}"))
    if rows.reindex(columns=list(ENDPOINT_COSTS)).notna().any().any():  # only when a run was prompted through an endpoint
        tokens = rows.reindex(columns=["prompt_tokens", "completion_tokens"])
        out["tokens in/out"] = [
            f"{int(a):,} / {int(b):,}" if pd.notna(a) and pd.notna(b) else ""
            for a, b in zip(tokens["prompt_tokens"], tokens["completion_tokens"], strict=True)
        ]
        out["USD"] = rows.reindex(columns=["cost_usd"])["cost_usd"].map(_blank_or("{:.4f}"))
        out["latency ms"] = rows.reindex(columns=["latency_ms"])["latency_ms"].map(_blank_or("{:,.0f}"))
    out["accuracy"] = interval["accuracy"]
    out["ECE"] = rows["ece"].map(_blank_or("{:.3f}"))
    out["kind"], out["method"] = rows["kind"], rows["method"]
    return out.fillna("")


def per_class_table(metrics: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """F1 per class and run (runs then baselines): the wide part of the metrics, shown apart from the compact table."""
    rows = pd.concat([metrics, baselines], ignore_index=True) if baselines is not None and len(baselines) else metrics
    out = pd.DataFrame({"run": rows["run"]})
    for col in [c for c in rows.columns if c.startswith("f1_")]:
        out[col] = rows[col].map(_blank_or("{:.3f}"))
    return out


def error_cases(
    joined: pd.DataFrame,
    names: list[str],
    label: str | None = None,
    cell: str | None = None,
    sort_by: str = "confidence",
    ascending: bool = False,
) -> pd.DataFrame:
    """Rows of the error browser: filtered by true label and by agreement cell of the first two runs, sorted by confidence."""
    df = joined.copy()
    if len(names) >= 2:
        df["agreement"] = agreement_cells(df, names[0], names[1])
    if label:
        df = df[df["label"] == label]
    if cell:
        df = df[df["agreement"] == cell]
    conf_cols = [f"confidence@{n}" for n in names]
    df["max_confidence"] = df[conf_cols].max(axis=1)
    key = "max_confidence" if sort_by == "confidence" else sort_by
    return df.sort_values(key, ascending=ascending, kind="stable")


def efficiency_frame(run_paths: list[str | Path]) -> pd.DataFrame:
    """Macro-F1 against labelled training examples for finished runs (kind, model, method, n_train_examples, macro_f1, run)."""
    from core.runs import RunDir, eval_split

    rows = []
    for p in run_paths:
        run = RunDir(Path(p))
        c, m = run.config, run.metrics
        if not c or not m or c.get("n_train_examples") is None or m.get("macro_f1") is None:
            continue
        rows.append(
            {
                "run": run.name,
                "kind": c.get("kind", "?"),
                "model": c.get("model", "?"),
                "method": c.get("method", ""),
                "n_train_examples": int(c["n_train_examples"]),
                "macro_f1": float(m["macro_f1"]),
                "eval_sha256": eval_split(c),
            }
        )
    cols = ["run", "kind", "model", "method", "n_train_examples", "macro_f1", "eval_sha256"]
    return pd.DataFrame(rows, columns=cols).sort_values(["kind", "n_train_examples"]).reset_index(drop=True)


def has_curve(efficiency: pd.DataFrame) -> bool:
    """Whether an efficiency frame spans two or more training sizes: one size draws a column of dots, not a curve
    (the Compare page and the HTML report both ask this)."""
    return bool(len(efficiency)) and efficiency["n_train_examples"].nunique() >= 2


def most_confused(confusions: pd.DataFrame, top: int = 20, search: str = "") -> pd.DataFrame:
    """The most frequent mistakes (true != pred) over runs, most examples first: run, true, pred, count; search keeps
    the pairs whose true or predicted label contains it (case-insensitive, plain text)."""
    wrong = confusions[(confusions["true"] != confusions["pred"]) & (confusions["count"] > 0)]
    if search.strip():
        needle = search.strip().lower()
        hit = wrong["true"].astype(str).str.lower().str.contains(needle, regex=False) | wrong["pred"].astype(
            str
        ).str.lower().str.contains(needle, regex=False)
        wrong = wrong[hit]
    return (
        wrong.sort_values(["count", "run", "true", "pred"], ascending=[False, True, True, True])
        .head(top)
        .reset_index(drop=True)[["run", "true", "pred", "count"]]
    )
