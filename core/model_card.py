"""The model card (README.md) of an exported run: data, method, metrics with 95% intervals, the verdict against the other
runs on its evaluation split, limitations, and how to load it. Every text that comes from the data or a run is escaped."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd

from core import runs
from core.comparison import evaluate, verdict
from core.errors import UserError

LIBRARY = {"transformers": "transformers", "transformers+code": "transformers", "setfit": "setfit", "peft": "peft"}
SETTINGS = (
    "model",
    "method",
    "pooling",
    "epochs",
    "learning_rate",
    "lr",
    "batch_size",
    "max_length",
    "seed",
    "lora_r",
    "lora_alpha",
    "lora_targets",
    "virtual_tokens",
    "max_train_seconds",
    "max_train_examples",
    "shots",
    "selection",
    "calibration",
    "scoring",
    "use_chat_template",
)

LOAD = {
    "transformers": """```python
from transformers import pipeline

classify = pipeline("text-classification", model="path/to/this/folder")
classify(["a text to label"], top_k=None, truncation=True)  # every label with its probability
```""",
    "transformers+code": """```python
from transformers import pipeline

classify = pipeline("text-classification", model="path/to/this/folder", trust_remote_code=True)
classify(["a text to label"], top_k=None, truncation=True)  # every label with its probability
```

`trust_remote_code=True` runs `modeling_mean_pooled.py` from this folder (about 60 lines, torch and transformers only; read
it first): the encoder was fine-tuned to be read through the mean of its token states, as sentence-transformers read it,
and no stock transformers class pools that way.""",
    "setfit": """```python
from setfit import SetFitModel

model = SetFitModel.from_pretrained("path/to/this/folder")
model.predict(["a text to label"]), model.predict_proba(["a text to label"])
```

`model_head.pkl` is SetFit's own format: a joblib **pickle** of a scikit-learn estimator, and loading a pickle can run code,
so load only an export you trust. Without pickle: `SentenceTransformer("path/to/this/folder").encode(texts)` gives the
embeddings, and `head.safetensors` holds the head (`weight` (labels x dims) and `bias`: softmax(embeddings @ weight.T + bias)
gives the probabilities; for k-NN, the training `embeddings` and their `onehot` labels).""",
    # the two long card lines below are split into adjacent literals (same text) so every source line fits 130 columns
    "peft": """```python
from peft import AutoPeftModelForCausalLM

model = AutoPeftModelForCausalLM.from_pretrained("path/to/this/folder", use_safetensors=True)"""
    """  # downloads or reads the base decoder
```

For lora-lm, `merged/` holds the decoder with the LoRA merged in: """
    """`AutoModelForCausalLM.from_pretrained("merged", use_safetensors=True)`.
The bundled SmolLM2 is the Q4_1 GGUF de-quantized, so the hub's weights that `adapter_config.json` names are close to,
but not exactly, the base the adapter was trained on; `merged/` is exact.

Fill `query_template` in `prompt.json` with the text (after the instruction, as in `example_prompt`) and score each label's
word as the continuation; the label whose word is most likely is the answer.""",
    "prompt": """Send `example_prompt` in `prompt.json` to an LLM with your text in place of the example's: the instruction, then
each demonstration (`example_template` filled with its text and label word), then `query_template` filled with the text.
The run scored every label word as the continuation of that prompt and took the most likely (`scoring`: sum or mean of
the word's token log-probabilities); `calibration` says how the probabilities were corrected (contextual: divided by the
average probabilities the model gives the `content_free_inputs`, then renormalised; pmi: each label's log-probability
minus its log-probability after a domain-only premise). With a chat API that returns text only, ask for one of the label
words and map it back with `label_words`.""",
}


def card(run: runs.RunDir, fmt: str, how_to_load: str, labels: list[str], base: str) -> str:
    """README.md for the export of run in format fmt (how_to_load: that format in one line; base: the base model's hub
    id, or a local path, which the card never names as base_model)."""
    c, m = run.config, run.metrics or {}
    preds = run.predictions()
    front = {
        "library_name": LIBRARY.get(fmt),
        "pipeline_tag": "text-classification",
        "tags": ["prompt-or-finetune", str(c.get("kind")), str(c.get("method") or "").split(" ")[0] or "run"],
        "metrics": ["accuracy", "f1"],
    }
    if "/" in base and not base.startswith(("/", ".", "~")) and not Path(base).exists():  # a hub id, never a local path
        front["base_model"] = base
    yaml = "\n".join(f"{k}: {json.dumps(v)}" for k, v in front.items() if v is not None)
    parts = [
        f"---\n{yaml}\n---\n",
        f"# {md_text(run.name)}\n",
        f"Exported by prompt-or-finetune from the run `{run.name}` as {how_to_load}.\n",
        "## How to use it\n",
        LOAD[fmt] + "\n",
        "## Data\n",
        data_section(c, m, labels, preds),
        "## Method and settings\n",
        settings_section(c, m),
        "## Metrics on the evaluation split (95% bootstrap intervals)\n",
        metrics_section(preds, labels),
        "## Verdict against the other runs on this split\n",
        verdict_section(run),
        "## Limitations\n",
        limitations_section(run, fmt, labels, preds),
    ]
    return "\n".join(parts)


def data_section(c: dict, m: dict, labels: list[str], preds: pd.DataFrame) -> str:
    ds = c.get("dataset") if isinstance(c.get("dataset"), dict) else {}
    counts = preds["label"].value_counts()
    rows = "\n".join(f"| {md_text(lab)} | {int(counts.get(lab, 0))} |" for lab in labels)
    return (
        f"- dataset: {md_text(ds.get('name', '?'))}\n"
        f"- training data: {md_text(ds.get('train', '?'))} (split {md_text(ds.get('train_split') or '-')}), "
        f"{c.get('n_train_examples', '?')} rows used\n"
        f"- evaluation data: {md_text(ds.get('eval', '?'))} (split {md_text(ds.get('eval_split') or '-')}), {len(preds)} rows, "
        f"fingerprint `{str(ds.get('eval_sha256', ''))[:12]}`\n"
        f"- labels ({len(labels)}), with their evaluation rows:\n\n| label | rows |\n|---|---|\n{rows}\n"
    )


def settings_section(c: dict, m: dict) -> str:
    method = str(c.get("method") or "")
    shown = [
        key
        for key in SETTINGS
        if key in c
        and c[key] not in (None, 0, 0.0, "")
        and (not key.startswith("lora_") or "lora" in method)
        and (key != "virtual_tokens" or method == "prompt-tuning")
    ]
    lines = [f"- {key}: {md_text(json.dumps(c[key]) if isinstance(c[key], (list, dict)) else c[key])}" for key in shown]
    for key in ("trainable_params", "total_params", "train_seconds", "stopped_by"):
        if m.get(key) is not None:
            lines.append(f"- {key}: {md_text(m[key])}")
    if c.get("command"):
        lines.append(f"\nReproduce the run:\n\n```\n{str(c['command']).replace('```', '')}\n```")
    return "\n".join(lines) + "\n"


def metrics_section(preds: pd.DataFrame, labels: list[str]) -> str:
    ci = evaluate.bootstrap_metrics(preds["label"].tolist(), preds["pred"].tolist(), labels)
    rows = [f"| {md_text(r.metric)} | {r.value:.3f} | {r.low:.3f} – {r.high:.3f} |" for r in ci.itertuples()]
    return "| metric | value | 95% interval |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def verdict_section(run: runs.RunDir) -> str:
    sha = runs.eval_split(run.config)
    others = runs.comparable(runs.RunRegistry(run.path.parent).list(), sha) if sha else pd.DataFrame(columns=["name"])
    others = others[others["name"] != run.name]
    if others.empty:
        return "There are no other finished runs on this evaluation split to compare with, so there is no verdict.\n"
    try:
        cmp = evaluate.compare_runs([run.path, *others["path"].tolist()])
        headline, caveats = verdict.verdict(cmp)
    except UserError as e:  # e.g. a run that became unreadable since it was listed: the export stands without a verdict
        return f"The runs on this split could not be compared ({md_text(e)}), so there is no verdict.\n"
    lines = [md_text(headline), ""] + [f"- {md_text(c)}" for c in caveats]
    table = cmp.metrics.sort_values("macro_f1", ascending=False)
    lines += ["", "| run | method | macro-F1 (95% interval) | accuracy |", "|---|---|---|---|"]
    lines += [
        f"| {md_text(r.run)} | {md_text(r.method)} | {r.macro_f1:.3f} ({r.macro_f1_low:.3f} – {r.macro_f1_high:.3f}) | "
        f"{r.accuracy:.3f} |"
        for r in table.itertuples()
    ]
    return "\n".join(lines) + "\n"


def limitations_section(run: runs.RunDir, fmt: str, labels: list[str], preds: pd.DataFrame) -> str:
    c, m = run.config, run.metrics or {}
    out = []
    if len(preds) < verdict.MIN_EVAL_EXAMPLES:
        out.append(
            f"Only {len(preds)} evaluation examples (fewer than {verdict.MIN_EVAL_EXAMPLES}): the intervals above are "
            "wide and a difference of a few points may be noise."
        )
    out += verdict.run_warnings(run.name, c, m)
    if m.get("below_majority") and not any("majority" in w for w in out):
        out.append("This run does not beat always answering the most frequent label on macro-F1.")
    if c.get("kind") == "prompt" or fmt == "peft":
        from core import prompting

        opaque = [lab for lab in labels if prompting.is_opaque(prompting.default_word(lab))] if not c.get("label_words") else []
        if opaque:
            out.append(f"The labels {', '.join(opaque[:5])} were said as they are (numbers or codes), not as meaningful words.")
        out.append(
            "The model answers with label words; a word that the model rarely says for its meaning pulls its "
            "predictions away from that label."
        )
    if c.get("max_eval_examples"):
        out.append(f"Scored on a random subset of {c['max_eval_examples']} evaluation rows, not the whole split.")
    out.append(
        "The labels it can give are only these, as spelt in the training data; new data from another source, time "
        "or wording may score lower than the evaluation split."
    )
    return "\n".join(f"- {md_text(o)}" for o in out) + "\n"


# ---- text from the data in the card ----------------------------------------------------------


def md_text(value) -> str:
    """Dataset or run text made inert in Markdown and HTML, on one line: <, > and & become entities (no tags), and the
    characters of Markdown links, images, emphasis, code and tables are backslash-escaped."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    return re.sub(r"([\\`*_\[\]()!|~])", r"\\\1", text)
