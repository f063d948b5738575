"""Metrics, confusion matrices, comparisons, significance and disagreement tables."""

from __future__ import annotations

import numpy as np
import pandas as pd


def confusion(y_true: list[str], y_pred: list[str], labels: list[str]) -> np.ndarray:
    """Confusion matrix, rows = true label, columns = predicted label, in the order of labels."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


def per_class(m: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    out = {}
    for i, lab in enumerate(labels):
        tp, predicted, support = m[i, i], m[:, i].sum(), m[i, :].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[lab] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(support)}
    return out


def classification_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """accuracy, macro_f1, per_class, confusion_matrix, labels, n_examples: the metrics.json core of every run."""
    m = confusion(y_true, y_pred, labels)
    pc = per_class(m, labels)
    present = [lab for lab in labels if pc[lab]["support"] > 0]
    n = len(y_true)
    return {
        "accuracy": float(np.mean([t == p for t, p in zip(y_true, y_pred)])) if n else 0.0,
        "macro_f1": float(np.mean([pc[lab]["f1"] for lab in present])) if present else 0.0,
        "per_class": pc,
        "confusion_matrix": m.tolist(),
        "labels": list(labels),
        "n_examples": n,
    }


def predictions_frame(ids, texts, labels, probs: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """predictions.csv rows: id, text, label, pred, confidence, prob_<label> per label (probs: (N, C))."""
    probs = np.asarray(probs, dtype=float)
    pred_idx = probs.argmax(axis=1)
    df = pd.DataFrame({
        "id": list(ids),
        "text": list(texts),
        "label": list(labels),
        "pred": [label_names[i] for i in pred_idx],
        "confidence": probs.max(axis=1).round(6),
    })
    for j, lab in enumerate(label_names):
        df[f"prob_{lab}"] = probs[:, j].round(6)
    return df
