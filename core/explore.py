"""Model-behaviour explorer: slices of the evaluation split with each run's metrics and where prompt and fine-tune differ,
label errors in the data (cross-validated probabilities + cleanlab), an embedding map, and robustness to perturbed text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.comparison import evaluate
from core.errors import UserError

SLICE_KINDS = ("length", "label", "negation", "numbers", "column:NAME", "regex:PATTERN")
NEGATION = re.compile(r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot|hardly)\b|n't\b", re.I)
NUMBER = re.compile(r"\d")
LENGTH_BINS = 4  # word-count quartiles of the split
MAX_COLUMN_VALUES = 20  # values of a text column shown as slices of their own; the rest make one 'other' slice
ALPHA = 0.05  # slices whose Holm-adjusted McNemar p-value is below this are listed first


@dataclass
class SliceReport:
    """Per-slice metrics (one row per slice and run) and the prompt-vs-fine-tune tests (one row per slice and pair)."""

    by: str
    table: pd.DataFrame  # slice, n, run, kind, accuracy(_low/_high), macro_f1(_low/_high)
    tests: pd.DataFrame  # slice, n, run_a, run_b, only_a_right, only_b_right, p_value, p_holm, significant


def parse_by(by: str) -> tuple[str, str]:
    """('length'|'label'|'negation'|'numbers'|'column'|'regex', argument), or one sentence about a bad --by."""
    kind, _, arg = str(by).partition(":")
    if kind in ("length", "label", "negation", "numbers") and not arg:
        return kind, ""
    if kind in ("column", "regex") and arg:
        if kind == "regex":
            try:
                re.compile(arg)
            except re.error as e:
                raise UserError(f"The regular expression '{arg}' is not valid ({e}).") from None
        return kind, arg
    raise UserError(f"Slices are by {', '.join(SLICE_KINDS)}; '{by}' is none of these.")


def word_counts(texts) -> np.ndarray:
    return np.array([len(str(t).split()) for t in texts])


def slice_labels(frame: pd.DataFrame, by: str) -> pd.Series:
    """Each row's slice name under `by` (frame: text, label and any extra columns), in the order slices should be read."""
    kind, arg = parse_by(by)
    texts = frame["text"].astype(str)
    if kind == "label":
        return frame["label"].astype(str).rename("slice")
    if kind in ("negation", "numbers", "regex"):
        pattern = NEGATION if kind == "negation" else NUMBER if kind == "numbers" else re.compile(arg, re.I)
        name = {"negation": "negation word", "numbers": "a number"}.get(kind, f"matches /{arg}/")
        hit = texts.map(lambda t: bool(pattern.search(t)))
        return pd.Series(
            np.where(
                hit,
                f"with {name}" if kind != "regex" else name,
                f"without {name}" if kind != "regex" else f"does not match /{arg}/",
            ),
            index=frame.index,
            name="slice",
        )
    if kind == "length":
        return _bins(pd.Series(word_counts(texts), index=frame.index), "words")
    if arg not in frame.columns:
        extra = [c for c in frame.columns if c not in ("id", "text", "label") and "@" not in c]
        raise UserError(f"There is no column '{arg}' to slice by; the extra columns are: {', '.join(extra) or 'none'}.")
    values = frame[arg]
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and numeric.nunique() > MAX_COLUMN_VALUES:
        return _bins(numeric, arg)
    values = values.astype(str)
    top = values.value_counts().index[:MAX_COLUMN_VALUES]
    return (
        values.where(values.isin(top), "other").map(lambda v: f"{arg} = {v}" if v != "other" else f"{arg}: other").rename("slice")
    )


def _bins(values: pd.Series, unit: str) -> pd.Series:
    """Quantile bins of a numeric column named like '5–9 words' (fewer bins when values repeat; one when all are equal)."""
    if values.nunique() <= 1:
        return pd.Series(f"{values.iloc[0]:g} {unit}" if len(values) else "", index=values.index, name="slice")
    codes, edges = pd.qcut(values, LENGTH_BINS, labels=False, retbins=True, duplicates="drop")
    edges = np.asarray(edges)
    # qcut's bins are (lo, hi], the first one closed: '3–5 words', then '>5–12 words'
    names = [f"{'' if i == 0 else '>'}{edges[i]:g}–{edges[i + 1]:g} {unit}" for i in range(len(edges) - 1)]
    return pd.Series([names[int(c)] for c in codes], index=values.index, name="slice")


def extra_columns(frame: pd.DataFrame, text_col: str, label_col: str | None = None) -> pd.DataFrame | None:
    """A file's columns beside its text, label and split columns, with the text column named 'text' (for column:NAME
    slices, matched to the evaluation rows on text); None when it has none."""
    from core.data import SPLIT_COLUMNS

    extra = [c for c in frame.columns if c not in (text_col, label_col) and str(c).lower() not in SPLIT_COLUMNS]
    return frame[[text_col, *extra]].rename(columns={text_col: "text"}).astype({"text": str}) if extra else None


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def family_pairs(names: list[str], kinds: dict[str, str]) -> list[tuple[str, str]]:
    """(prompt run, fine-tuned run) pairs; every pair when the runs are all of one family."""
    prompts = [n for n in names if kinds.get(n) == "prompt"]
    others = [n for n in names if kinds.get(n) != "prompt"]
    if prompts and others:
        return [(a, b) for a in prompts for b in others]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def slice_report(
    joined: pd.DataFrame,
    kinds: dict[str, str],
    labels: list[str],
    by: str,
    extra: pd.DataFrame | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> SliceReport:
    """Each run's accuracy and macro-F1 with 95% bootstrap intervals on every slice of the joined evaluation rows, and
    McNemar's test of each prompt/fine-tune pair on each slice (Holm-adjusted over all tests); slices with a significant
    difference first, smallest p first. extra: more columns per evaluation text (a 'text' column) for column:NAME slices."""
    names = evaluate.run_names(joined)
    frame = joined
    if extra is not None and len(extra):
        cols = ["text"] + [c for c in extra.columns if c not in joined.columns and c not in ("id", "label")]
        frame = joined.merge(extra[cols].drop_duplicates("text"), on="text", how="left")
    groups = slice_labels(frame, by)
    order = list(dict.fromkeys(sorted(groups.unique(), key=_natural))) if parse_by(by)[0] == "length" else list(pd.unique(groups))
    if parse_by(by)[0] == "label":
        order = [lab for lab in labels if lab in set(groups)] + [g for g in order if g not in labels]
    rows, tests = [], []
    for name in order:
        part = frame[groups.to_numpy() == name]
        y_true = part["label"].tolist()
        for run in names:
            ci = evaluate.bootstrap_metrics(y_true, part[f"pred@{run}"].tolist(), labels, n_resamples=n_resamples, seed=seed)
            ci = ci.set_index("metric")
            rows.append(
                {
                    "slice": name,
                    "n": len(part),
                    "run": run,
                    "kind": kinds.get(run, "?"),
                    **{
                        f"{m}{s}": float(ci.loc[m, c])
                        for m in ("accuracy", "macro_f1")
                        for s, c in (("", "value"), ("_low", "low"), ("_high", "high"))
                    },
                }
            )
        for a, b in family_pairs(names, kinds):
            test = evaluate.mcnemar_test(part[f"correct@{a}"], part[f"correct@{b}"])
            tests.append(
                {
                    "slice": name,
                    "n": len(part),
                    "run_a": a,
                    "run_b": b,
                    "only_a_right": test["only_a_right"],
                    "only_b_right": test["only_b_right"],
                    "p_value": test["p_value"],
                }
            )
    table = pd.DataFrame(rows)
    tests = pd.DataFrame(tests, columns=["slice", "n", "run_a", "run_b", "only_a_right", "only_b_right", "p_value"])
    tests["p_holm"] = holm(tests["p_value"]) if len(tests) else []
    tests["significant"] = tests["p_holm"] < ALPHA
    if len(tests):  # significant slices first (smallest p first), the rest in their natural order
        best = tests.groupby("slice", sort=False)["p_holm"].min()
        rank = {s: (0, best[s], i) if best[s] < ALPHA else (1, 0.0, i) for i, s in enumerate(order)}
        order = sorted(order, key=rank.get)
        table = table.assign(_o=table["slice"].map(order.index)).sort_values(["_o"], kind="stable").drop(columns="_o")
        tests = tests.assign(_o=tests["slice"].map(order.index)).sort_values(["_o", "p_holm"], kind="stable").drop(columns="_o")
    return SliceReport(by=by, table=table.reset_index(drop=True), tests=tests.reset_index(drop=True))


def _natural(name: str):
    """Sort key that orders '3–5 words' before '>5–12 words' before '>12–40 words' by their first number."""
    m = re.search(r"[\d.]+", name)
    return float(m.group(0)) if m else float("inf")


def format_slices(report: SliceReport) -> pd.DataFrame:
    """The slice table as people read it: slice, n, run, accuracy and macro-F1 as 'value [low, high]', and for each slice
    its most significant prompt-vs-fine-tune difference ('a vs b: p = ... (Holm)', marked * when significant)."""
    t = report.table
    if t.empty:
        return pd.DataFrame(columns=["slice", "n", "run", "accuracy", "macro_f1", "difference"])
    out = pd.DataFrame({"slice": t["slice"], "n": t["n"], "run": t["run"]})
    for m in ("accuracy", "macro_f1"):
        out[m] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(t[m], t[f"{m}_low"], t[f"{m}_high"], strict=True)]
    diff = {}
    for s, g in report.tests.groupby("slice", sort=False):
        top = g.sort_values("p_holm", kind="stable").iloc[0]
        better = top["run_a"] if top["only_a_right"] > top["only_b_right"] else top["run_b"]
        star = " *" if top["significant"] else ""
        diff[s] = f"{top['run_a']} vs {top['run_b']}: p = {top['p_holm']:.3g}{star}" + (f", {better} better" if star else "")
    out["difference"] = t["slice"].map(diff).fillna("")
    return out


def load_joined(paths: list) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """(joined predictions, run name -> kind, labels) of one or more finished runs on one evaluation split."""
    runs = [evaluate.load_run_result(p) for p in paths]
    if not runs:
        raise UserError("Name at least one run.")
    if len(runs) == 1:
        r = runs[0]
        cols = ["id", "pred", "confidence"] + [c for c in r.predictions.columns if c.startswith("prob_")]
        joined = r.predictions[["id", "text", "label"]].merge(
            r.predictions[cols].rename(columns={c: f"{c}@{r.name}" for c in cols if c != "id"}), on="id"
        )
        joined[f"correct@{r.name}"] = joined[f"pred@{r.name}"] == joined["label"]
    else:
        joined = evaluate.join_predictions(runs)
    names = evaluate.run_names(joined)
    labels = list(runs[0].labels)
    for r in runs[1:]:
        labels += [lab for lab in r.labels if lab not in labels]
    return joined, {n: str(r.config.get("kind", "?")) for n, r in zip(names, runs, strict=True)}, labels


# ---- label errors: cross-validated probabilities from a cheap model, ranked by cleanlab -------------------------------

CV_FOLDS = 5
MANY_LABEL_ERRORS = 0.02  # share of the evaluation split suspected mislabelled above which the comparison gets a caveat


def cv_probabilities(x: np.ndarray, y: np.ndarray, n_labels: int, folds: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """(N, n_labels) out-of-fold class probabilities of a logistic regression on features x (scikit-learn's
    cross_val_predict, stratified folds): every row's probabilities come from a model that never saw it."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from core.training.embeddings_clf import LOGREG_C

    counts = np.bincount(y, minlength=n_labels)
    k = int(min(folds, max(2, counts.max())))
    if len(y) < 2 * k or (counts > 0).sum() < 2:
        raise UserError(f"Looking for label errors needs at least {2 * k} rows over two or more labels; there are {len(y)}.")
    with warnings.catch_warnings():  # a class smaller than the folds is fine: its rows are scored by folds that lack it
        warnings.simplefilter("ignore", UserWarning)
        probs = cross_val_predict(
            LogisticRegression(C=LOGREG_C, max_iter=2000, random_state=seed),
            x,
            y,
            cv=StratifiedKFold(k, shuffle=True, random_state=seed),
            method="predict_proba",
        )
    out = np.zeros((len(y), n_labels))
    out[:, np.flatnonzero(counts)] = probs  # predict_proba columns follow the classes present
    return out


def rank_label_issues(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Positions of rows whose given label looks wrong (cleanlab's find_label_issues: confident learning), least
    likely label first (self-confidence: the out-of-fold probability of the given label)."""
    from cleanlab.filter import find_label_issues

    present = np.flatnonzero(np.bincount(y, minlength=probs.shape[1]))
    remap = np.full(probs.shape[1], -1)
    remap[present] = np.arange(len(present))  # cleanlab wants every class it is given to occur among the labels
    sub = probs[:, present] / np.clip(probs[:, present].sum(1, keepdims=True), 1e-12, None)
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, which deadlocks when the caller has other threads (a
    # Streamlit page runs in a script thread; torch keeps its own): the forked worker waits on a lock it copied held
    return find_label_issues(labels=remap[y], pred_probs=sub, return_indices_ranked_by="self_confidence", n_jobs=1)


def label_issues(
    ds,
    splits: list[str] | None = None,
    encoder: str | None = None,
    folds: int = CV_FOLDS,
    seed: int = 0,
    embeddings: np.ndarray | None = None,
) -> pd.DataFrame:
    """Rows of the dataset's splits (default: all) whose label looks wrong, most suspicious first: rank, split, id, text,
    label, suspected_label, label_probability (out-of-fold probability of the given label), suspected_probability.
    Features: the bundled encoder's mean-pooled embeddings (or embeddings given in the rows' order)."""
    from core import prompting

    splits = splits or ds.split_names()
    unknown = [s for s in splits if s not in ds.splits]
    if unknown:
        raise UserError(f"{ds.name} has no split '{unknown[0]}'; its splits are: {', '.join(ds.split_names())}.")
    rows = pd.concat([ds.splits[s][["id", "text", "label"]].assign(split=s) for s in splits], ignore_index=True)
    index = {lab: i for i, lab in enumerate(ds.label_names)}
    y = rows["label"].map(index).to_numpy(dtype=int)
    if embeddings is None:
        embeddings = prompting.embed_texts(rows["text"].tolist(), **({"encoder_name": encoder} if encoder else {}))
    probs = cv_probabilities(np.asarray(embeddings), y, len(ds.label_names), folds, seed)
    ranked = rank_label_issues(y, probs)
    best = probs.argmax(1)
    out = rows.iloc[ranked][["split", "id", "text", "label"]].reset_index(drop=True)
    out["suspected_label"] = [ds.label_names[best[i]] for i in ranked]
    out["label_probability"] = probs[ranked, y[ranked]].round(4)
    out["suspected_probability"] = probs[ranked, best[ranked]].round(4)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def label_error_caveat(issues: pd.DataFrame, split: str, n_rows: int) -> str | None:
    """A caveat for a comparison on `split` when more than MANY_LABEL_ERRORS of its n_rows look mislabelled."""
    count = int((issues["split"] == split).sum()) if len(issues) else 0
    if not n_rows or count / n_rows <= MANY_LABEL_ERRORS:
        return None
    return (
        f"{count} of the {n_rows} rows of the {split} split ({count / n_rows:.0%}) look mislabelled (cleanlab on "
        "cross-validated probabilities); differences smaller than that share may be label noise, not the runs."
    )


# ---- embedding map: the evaluation split in two dimensions -------------------------------------------------------------

MAP_COLOURS = 10  # categories coloured on the map; the rest share one grey 'other' (77 labels stay readable)


def projection_methods() -> list[str]:
    """'pca', and 'umap' when umap-learn is installed."""
    import importlib.util

    return ["pca"] + (["umap"] if importlib.util.find_spec("umap") else [])


def project(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) coordinates of (N, H) embeddings: scikit-learn's PCA, or UMAP (cosine) when umap-learn is installed."""
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) < 3:
        raise UserError(f"A map needs at least 3 examples; there are {len(x)}.")
    if method == "umap":
        if "umap" not in projection_methods():
            raise UserError("UMAP needs the umap-learn package (pip install umap-learn); PCA works without it.")
        import umap

        return umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(x)
    if method != "pca":
        raise UserError(f"The map is projected by {' or '.join(projection_methods())}, not '{method}'.")
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x)


def agreement_of_runs(joined: pd.DataFrame, names: list[str]) -> pd.Series:
    """Per example: 'all right', 'all wrong', 'only RUN right' (one run right), or 'k of n right'."""
    right = joined[[f"correct@{n}" for n in names]].to_numpy(bool)  # (N, R)
    k = right.sum(1)
    out = [
        (
            "all right"
            if c == len(names)
            else "all wrong"
            if c == 0
            else f"only {names[int(np.flatnonzero(row)[0])]} right"
            if c == 1
            else f"{c} of {len(names)} right"
        )
        for c, row in zip(k, right, strict=True)
    ]
    return pd.Series(out, index=joined.index, name="agreement")


def colour_options(names: list[str]) -> list[str]:
    """What the map can be coloured by: the true label, each run's prediction and correctness, and the runs' agreement."""
    return (
        ["label"]
        + [f"{what} of {n}" for n in names for what in ("prediction", "correct")]
        + (["agreement of runs"] if len(names) > 1 else [])
    )


def map_frame(joined: pd.DataFrame, coords: np.ndarray, colour: str) -> pd.DataFrame:
    """x, y, id, text, label, every run's pred@/correct@ columns, and 'colour' (at most MAP_COLOURS categories + 'other')."""
    names = evaluate.run_names(joined)
    cols = ["id", "text", "label"] + [c for n in names for c in (f"pred@{n}", f"correct@{n}")]
    frame = joined[cols].assign(x=coords[:, 0].round(4), y=coords[:, 1].round(4))
    if colour == "label":
        values = frame["label"].astype(str)
    elif colour == "agreement of runs":
        values = agreement_of_runs(joined, names)
    elif colour.startswith(("prediction of ", "correct of ")):
        what, _, run = colour.partition(" of ")
        if run not in names:
            raise UserError(f"There is no run '{run}' on this map; the runs are: {', '.join(names)}.")
        values = (
            frame[f"pred@{run}"].astype(str)
            if what == "prediction"
            else frame[f"correct@{run}"].map({True: "right", False: "wrong"})
        )
    else:
        raise UserError(f"The map is coloured by one of: {', '.join(colour_options(names))}; not '{colour}'.")
    top = values.value_counts().index[:MAP_COLOURS]
    frame["colour"] = values.where(values.isin(top), "other")
    return frame


def in_box(frame: pd.DataFrame, selection: dict | None) -> pd.DataFrame:
    """The map's rows inside a brushed box ({'x': [lo, hi], 'y': [lo, hi]}, as Altair reports an interval); all without one."""
    if not selection or "x" not in selection or "y" not in selection:
        return frame
    (x0, x1), (y0, y1) = sorted(selection["x"]), sorted(selection["y"])
    return frame[frame["x"].between(x0, x1) & frame["y"].between(y0, y1)]


# ---- robustness: predictions on perturbed texts ---------------------------------------------------------------------

PERTURBATIONS = ("typos", "case", "punctuation", "irrelevant sentence", "negation", "numbers")
IRRELEVANT = "By the way, the weather was mild that day."
SENTIMENT_WORDS = {"positive", "negative", "pos", "neg", "good", "bad"}
_BE = re.compile(r"\b(is|was|are|were|am|do|does|did|can|will|would|should|could|has|have|had)\b(?! not\b)", re.I)


def is_sentiment(labels: list[str]) -> bool:
    """Whether the label names look like sentiment (negation should flip them): positive/negative and the like."""
    return len({str(lab).lower() for lab in labels} & SENTIMENT_WORDS) >= 2


def perturb(text: str, kind: str, rng: np.random.Generator) -> str:
    """One perturbed text: 'typos' swaps two adjacent letters in about one word in five (at least one), 'case' upper-cases,
    'punctuation' removes it, 'irrelevant sentence' appends one, 'negation' puts 'not' after the first auxiliary verb
    (or 'not' before the text), 'numbers' changes every digit."""
    if kind == "typos":
        words = text.split(" ")
        long = [i for i, w in enumerate(words) if sum(ch.isalpha() for ch in w) >= 3]
        for i in rng.choice(long, size=max(1, len(long) // 5), replace=False) if long else []:
            w = words[i]
            j = int(rng.integers(0, len(w) - 1))
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        return " ".join(words)
    if kind == "case":
        return text.upper()
    if kind == "punctuation":
        return re.sub(r"[^\w\s]", "", text)
    if kind == "irrelevant sentence":
        return f"{text.rstrip()} {IRRELEVANT}"
    if kind == "negation":
        new, n = _BE.subn(lambda m: f"{m.group(1)} not", text, count=1)
        return new if n else f"Not: {text}"
    if kind == "numbers":
        return re.sub(r"\d", lambda m: str((int(m.group(0)) + int(rng.integers(1, 10))) % 10), text)
    raise UserError(f"Perturbations are {', '.join(PERTURBATIONS)}; '{kind}' is none of these.")


def perturbed(texts: list[str], kind: str, seed: int = 0) -> list[str]:
    """Every text perturbed by kind, seeded (the same texts and seed give the same perturbations)."""
    rng = np.random.default_rng(seed)
    return [perturb(str(t), kind, rng) for t in texts]


def robustness(
    predictors: dict, rows: pd.DataFrame, kinds: list[str] | None = None, seed: int = 0, sentiment: bool = False
) -> pd.DataFrame:
    """For each run (predictors: name -> f(list of texts) -> list of labels) and perturbation: how many texts it changed,
    the share of those whose prediction stayed the same, accuracy before and after, and for negation on sentiment-like
    labels the share whose prediction flipped (as a negated sentiment should)."""
    kinds = list(kinds or PERTURBATIONS)
    texts, labels = rows["text"].astype(str).tolist(), rows["label"].astype(str).tolist()
    out = []
    for name, predict in predictors.items():
        before = np.asarray(predict(texts), dtype=object)
        for kind in kinds:
            new = perturbed(texts, kind, seed)
            changed = np.array([a != b for a, b in zip(texts, new, strict=True)])
            after = before.copy()
            if changed.any():
                after[changed] = predict([t for t, c in zip(new, changed, strict=True) if c])
            same = before[changed] == after[changed]
            row = {
                "run": name,
                "perturbation": kind,
                "changed texts": int(changed.sum()),
                "unchanged predictions": float(same.mean()) if changed.any() else np.nan,
                "accuracy": float(np.mean(before == np.asarray(labels, dtype=object))),
                "accuracy perturbed": float(np.mean(after == np.asarray(labels, dtype=object))),
            }
            if kind == "negation" and sentiment:
                row["flipped (expected)"] = float(1 - same.mean()) if changed.any() else np.nan
            out.append(row)
    return pd.DataFrame(out)


def run_predictor(path, device: str = "auto"):
    """f(texts) -> predicted labels of a finished run (core.predict's predictor: any run kind, its exact prompt or model)."""
    from core import predict

    predictor = predict.load_predictor(path, device)
    return lambda texts: predict.labels_of(predictor.score(list(texts)), predictor.label_names)


def format_robustness(table: pd.DataFrame) -> pd.DataFrame:
    """Shares as percentages (one decimal), for the page, the CLI and the report."""
    out = table.copy()
    for col in ("unchanged predictions", "accuracy", "accuracy perturbed", "flipped (expected)"):
        if col in out:
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
    return out


def report_sections(
    slices: SliceReport | None = None, robustness_table: pd.DataFrame | None = None
) -> list[tuple[str, pd.DataFrame, str]]:
    """The explorer's sections of the HTML report (core.comparison.report.build_report's sections)."""
    out = []
    if slices is not None:
        out.append(
            (
                f"Slices by {slices.by}",
                format_slices(slices),
                "Accuracy and macro-F1 with 95% bootstrap intervals on each slice of the evaluation split; difference: "
                f"McNemar's test of a prompt and a fine-tuned run on the slice's rows, Holm-adjusted over all slices and "
                f"pairs (* below {ALPHA}), significant slices first.",
            )
        )
    if robustness_table is not None and len(robustness_table):
        out.append(
            (
                "Robustness to perturbed text",
                format_robustness(robustness_table),
                "Unchanged predictions: the share of perturbed texts whose prediction stayed the same; flipped (expected): "
                "for negation on sentiment labels, the share whose prediction changed.",
            )
        )
    return out
