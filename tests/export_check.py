"""Run as `python -I tests/export_check.py EXPORT_DIR PREDICTIONS_CSV` from a folder outside the repository: loads an export
with transformers' pipeline or SetFit only (never `core`), labels the run's evaluation texts and prints one JSON line:
whether core was imported, the predicted labels, and the largest difference from predictions.csv's probabilities."""

import json
import sys

import numpy as np
import pandas as pd

export_dir, predictions_csv = sys.argv[1], sys.argv[2]
record = json.load(open(f"{export_dir}/export.json", encoding="utf-8"))
fmt, labels = record["format"], record["labels"]
preds = pd.read_csv(predictions_csv, dtype={"label": str, "pred": str}, keep_default_na=False)
texts = preds["text"].tolist()
if fmt.startswith("transformers"):
    from transformers import pipeline

    classify = pipeline("text-classification", model=export_dir, trust_remote_code=fmt == "transformers+code", device="cpu")
    out = classify(texts, top_k=None, truncation=True)
    probs = np.array([[{d["label"]: d["score"] for d in row}[lab] for lab in labels] for row in out])
    pred = [row[0]["label"] for row in out]
else:
    from setfit import SetFitModel

    model = SetFitModel.from_pretrained(export_dir)
    probs = np.asarray(model.predict_proba(texts), dtype=float)
    pred = [str(p) for p in model.predict(texts)]
saved = preds[[f"prob_{lab}" for lab in labels]].to_numpy(dtype=float)
print(
    json.dumps(
        {
            "core_imported": any(name == "core" or name.startswith("core.") for name in sys.modules),
            "pred": pred,
            "expected": preds["pred"].tolist(),
            "max_diff": float(np.abs(probs - saved).max()),
        }
    )
)
