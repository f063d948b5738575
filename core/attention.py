"""Attention extraction, offline bertviz HTML, aggregate attention views, token saliency (gradient x input, integrated gradients).

bertviz's own HTML loads require.js, d3 and jQuery from CDNs. Here its JavaScript is wrapped with d3 v5 from the
installed mpld3 wheel, jQuery from xstatic-jquery and a ten-line require shim, so the page needs no network at all."""

from __future__ import annotations

import dataclasses
import functools
import html
import importlib.util
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import models, prompting
from core.errors import UserError
from core.runs import RunDir

MAX_HTML_BYTES = 9_500_000  # bertviz pages stay under 10 MB even for 128 tokens
RUN_PREFIX = "run:"  # model spec of a run: run:<run folder> (a fine-tuned run's classifier, or a prompt run's prompt)


@dataclass
class PromptRun:
    """What a prompting run did, to replay it on one text: its prompt settings, labels, demonstration pool and predictions."""

    config: prompting.PromptConfig
    label_names: list[str]
    train: pd.DataFrame  # the run's training split, where its demonstrations come from (empty when it cannot be read again)
    predictions: pd.DataFrame  # its predictions.csv (probabilities as the run computed them)
    notes: list[str] = field(default_factory=list)


@dataclass
class AttentionModel:
    """A loaded model ready for attention views: kind is encoder (bare), classifier (fine-tuned run), decoder, or prompt
    (the decoder of a prompt run, reading that run's prompt around the text)."""

    name: str
    model: object
    tokenizer: object
    kind: str
    label_names: list[str] = field(default_factory=list)
    prompt_run: PromptRun | None = None


@dataclass
class AttentionResult:
    """Attention weights of one text: attention is (layers, heads, tokens, tokens), rows attend to columns."""

    model_name: str
    kind: str
    tokens: list[str]
    attention: np.ndarray
    special: np.ndarray  # (tokens,) True for the tokenizer's special tokens
    prediction: str | None = None  # classifier and prompt: predicted label; decoder: predicted next token
    probabilities: dict[str, float] = field(default_factory=dict)
    input_text: str = ""  # what the model read: the text, or a prompt run's whole prompt
    notes: list[str] = field(default_factory=list)  # how the input or the probabilities were made

    @property
    def n_layers(self) -> int:
        return self.attention.shape[0]

    @property
    def n_heads(self) -> int:
        return self.attention.shape[1]


def _load_run_model(run_path: str, device: str):
    """core.training.finetune.load_run_model, explained in one sentence when fine-tuning is not available in this install."""
    try:
        from core.training.finetune import load_run_model
    except ImportError:
        raise UserError(
            "Fine-tuned run models cannot be loaded yet: core.training.finetune.load_run_model is not available."
        ) from None
    return load_run_model(run_path, device)


def _run_train_split(config: dict) -> tuple[pd.DataFrame, list[str]]:
    """The training split a prompt run drew its demonstrations from, read again and checked against its fingerprint."""
    from core import data

    dataset = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    empty = pd.DataFrame({"id": [], "text": [], "label": []})
    if not config.get("shots"):
        return empty, []
    try:
        ds, split = data.load_split(str(dataset.get("train", "")), "train")
        train = ds.splits[split]
    except Exception:  # moved, deleted, or a hub dataset offline
        return empty, [
            f"The run's training data ({dataset.get('train', '?')}) cannot be read any more, so its demonstrations are left out."
        ]
    if data.fingerprint(train) != dataset.get("train_sha256"):
        return empty, [
            f"The run's training data ({dataset.get('train', '?')}) has changed since the run, "
            "so its demonstrations are left out."
        ]
    return train, []


def load_prompt_run(path: Path, device: str = "cpu") -> AttentionModel:
    """The decoder of a finished prompt run, with what is needed to rebuild its prompt for any text."""
    run = RunDir(path)
    config = run.config
    names = {f.name for f in dataclasses.fields(prompting.PromptConfig)}
    prompt_config = prompting.PromptConfig(**{k: v for k, v in config.items() if k in names})
    labels = [str(lab) for lab in config.get("labels") or []]
    if not labels:
        raise UserError(f"The prompt run {path.name} does not record its labels, so its prompt cannot be rebuilt.")
    try:
        predictions = run.predictions()
    except (OSError, ValueError):
        predictions = pd.DataFrame({"text": []})
    train, notes = _run_train_split(config)
    am = load_attention_model(prompt_config.model, device)
    return AttentionModel(
        name=path.name,
        model=am.model,
        tokenizer=am.tokenizer,
        kind="prompt",
        label_names=labels,
        prompt_run=PromptRun(prompt_config, labels, train, predictions, notes),
    )


def load_lora_lm_run(path: Path, device: str = "cpu") -> AttentionModel:
    """The decoder of a finished lora-lm run (its LoRA merged, eager attention), reading the zero-shot prompt it was trained
    on around the text, like a prompt run; a prompt-tuning run's soft prompt has no tokens to show and is refused."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.training import prompt_learning

    model_dir = path / "model"
    try:
        spec = json.loads((model_dir / prompt_learning.SPEC_FILE).read_text(encoding="utf-8"))
        labels = [str(lab) for lab in json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))]
        base = json.loads((model_dir / "base_model.json").read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"The saved model of {path.name} is incomplete or corrupt ({type(e).__name__}).") from e
    if spec.get("method") != "lora-lm":
        raise UserError(
            f"{path.name} learned a soft prompt, which has no tokens to show attention on; open its base model instead."
        )
    config = prompting.PromptConfig(
        model=base,
        instruction=spec["instruction"],
        query_template=spec["query_template"],
        label_words=dict(zip(labels, spec["label_words"])),
        shots=0,
        calibration="none",
        scoring="sum",
    )
    lm = models._from_pretrained(
        AutoModelForCausalLM, models._converted(models.resolve(base)), attn_implementation="eager", use_safetensors=True
    )
    with models.LOAD_LOCK:
        model = PeftModel.from_pretrained(lm, str(model_dir)).merge_and_unload()
    try:
        predictions = RunDir(path).predictions()
    except (OSError, ValueError):
        predictions = pd.DataFrame({"text": []})
    return AttentionModel(
        name=path.name,
        model=model.to(device).eval(),
        tokenizer=models.load_tokenizer(base),
        kind="prompt",
        label_names=labels,
        prompt_run=PromptRun(config, labels, pd.DataFrame({"id": [], "text": [], "label": []}), predictions),
    )


def load_attention_model(spec: str, device: str = "cpu") -> AttentionModel:
    """A bundled model, any model name/folder, or a run ('run:<folder>': classifier or prompt run), with eager attention."""
    spec = (spec or "").strip()
    if spec.startswith(RUN_PREFIX):
        path = Path(spec[len(RUN_PREFIX) :])
        if RunDir(path).config.get("kind") == "prompt":
            return load_prompt_run(path, device)
        if not (path / "model").is_dir():
            raise UserError(f"The run folder {path} holds no fine-tuned model (no model/ folder).")
        if (path / "model" / "prompt_learning.json").exists():  # prompt-tuning or lora-lm: a decoder taught to say label words
            return load_lora_lm_run(path, device)
        model, tokenizer = _load_run_model(str(path), device)
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        return AttentionModel(name=path.name, model=model, tokenizer=tokenizer, kind="classifier", label_names=labels)
    info = models.describe(spec)
    tokenizer = models.load_tokenizer(spec)
    if info.role == "decoder":
        return AttentionModel(name=info.name, model=models.load_causal_lm(spec, device), tokenizer=tokenizer, kind="decoder")
    return AttentionModel(name=info.name, model=models.load_encoder(spec, device), tokenizer=tokenizer, kind="encoder")


def clean_token(token: str) -> str:
    """A token as people read it: byte-level BPE's space and newline markers made visible."""
    return token.replace("Ġ", "␣").replace("▁", "␣").replace("Ċ", "⏎")


@dataclass
class PromptInput:
    """A prompt run's prompt around one text, as token ids within the token limit, and its label continuations."""

    ids: list[int]
    text: str
    label_ids: list[list[int]]  # token ids of each label's continuation, in label order
    notes: list[str]


def prompt_input(am: AttentionModel, text: str, max_tokens: int) -> PromptInput:
    """The prompt the run would build for text (core.prompting's own builder): with its demonstrations when they fit
    max_tokens, else zero-shot; a prompt still too long keeps its last max_tokens tokens (the query and the label slot)."""
    run = am.prompt_run
    notes = list(run.notes)
    config = run.config if len(run.train) else dataclasses.replace(run.config, shots=0)

    def build(config: prompting.PromptConfig) -> tuple[list[int], prompting.PromptParts]:
        preview = prompting.preview_prompt(config, am.tokenizer, run.train, run.label_names, text)
        words = prompting.verbalizer(config, run.label_names)
        parts = prompting.prompt_parts(config, am.tokenizer, words, preview.demos, run.label_names, text)
        ids = prompting.encode(am.tokenizer, parts.prefix, not config.use_chat_template) + prompting.encode(
            am.tokenizer, parts.query
        )
        return ids, parts

    ids, parts = build(config)
    if len(ids) > max_tokens and config.shots:
        notes.append(
            f"The run's {config.shots} demonstrations are left out: with them the prompt is {len(ids)} tokens, "
            f"over the limit of {max_tokens}."
        )
        ids, parts = build(dataclasses.replace(config, shots=0))
    if len(ids) > max_tokens:
        notes.append(f"The prompt is {len(ids)} tokens; only its last {max_tokens} are shown.")
        ids = ids[-max_tokens:]
    return PromptInput(ids, parts.text, prompting.label_token_ids(am.tokenizer, parts), notes)


def _encode(am: AttentionModel, text: str, max_tokens: int, prompt: PromptInput | None = None):
    """Tokenize one text for the model (a prompt run: its prompt around the text), refusing empty text and silly lengths."""
    import torch

    if not text or not text.strip():
        raise UserError("Type a text (or pick an example) to look at its attention.")
    if not 2 <= max_tokens <= 512:
        raise UserError("The token limit must be between 2 and 512.")
    if am.kind == "prompt":
        ids = (prompt or prompt_input(am, text, max_tokens)).ids
        specials = set(am.tokenizer.all_special_ids)
        enc = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        return enc, np.array([i in specials for i in ids], dtype=bool)
    enc = am.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens, return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    if am.kind == "decoder":
        enc.pop("token_type_ids", None)  # Llama-style models take no segment ids
    return enc, special


def label_probabilities(am: AttentionModel, text: str, prompt: PromptInput) -> tuple[dict[str, float], str]:
    """A prompt run's label-word probabilities for text: as the run computed them when text is one of the examples it
    scored, else scored here on the prompt shown (core.prompting's scorer, without calibration); and how they were made."""
    run = am.prompt_run
    hit = run.predictions[run.predictions["text"].astype(str) == text] if "text" in run.predictions else run.predictions
    columns = [f"prob_{lab}" for lab in run.label_names]
    if len(hit) and all(c in hit for c in columns):
        row = hit.iloc[0]
        how = f"as the run computed them for example {row.get('id', '?')} (calibration: {run.config.calibration})"
        return {lab: float(row[c]) for lab, c in zip(run.label_names, columns, strict=True)}, how
    rows = prompting.label_rows([[]], prompt.label_ids)  # every label read right after the prompt
    sums = prompting.score_rows(am.model, prompt.ids, rows, 1, len(run.label_names), pad_id=am.tokenizer.pad_token_id or 0)
    probs = prompting.softmax(prompting.label_scores(sums, [len(ids) for ids in prompt.label_ids], run.config.scoring))[0]
    how = "scored here on the prompt shown, without calibration (the text is not one of the run's evaluation examples)"
    return {lab: float(p) for lab, p in zip(run.label_names, probs, strict=True)}, how


def extract_attention(am: AttentionModel, text: str, max_tokens: int = 128) -> AttentionResult:
    """Run the model once on text and return every layer's attention weights (plus its prediction when it has one)."""
    import torch

    prompt = prompt_input(am, text, max_tokens) if am.kind == "prompt" and text.strip() else None
    enc, special = _encode(am, text, max_tokens, prompt)
    device = next(am.model.parameters()).device
    with torch.no_grad():
        out = am.model(**{k: v.to(device) for k, v in enc.items()}, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise UserError(f"Model {am.name} returns no attention weights; it must be loaded with eager attention.")
    attention = torch.stack(out.attentions)[:, 0].float().cpu().numpy()  # (layers, 1, heads, T, T) -> (layers, heads, T, T)
    tokens = [clean_token(t) for t in am.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())]
    result = AttentionResult(
        model_name=am.name, kind=am.kind, tokens=tokens, attention=attention, special=special, input_text=text
    )
    if am.kind == "classifier":
        probs = torch.softmax(out.logits[0].float(), -1).cpu().numpy()
        result.probabilities = {lab: float(p) for lab, p in zip(am.label_names, probs, strict=True)}
        result.prediction = am.label_names[int(probs.argmax())]
    elif am.kind == "prompt":
        result.probabilities, how = label_probabilities(am, text, prompt)
        result.prediction = max(result.probabilities, key=result.probabilities.get)
        result.input_text, result.notes = prompt.text, [*prompt.notes, f"Label-word probabilities {how}."]
    elif am.kind == "decoder":
        probs = torch.softmax(out.logits[0, -1].float(), -1)
        top = torch.topk(probs, 5)
        result.probabilities = {
            clean_token(am.tokenizer.convert_ids_to_tokens(int(i))): float(p)
            for p, i in zip(top.values, top.indices, strict=True)
        }
        result.prediction = next(iter(result.probabilities))
    return result


def head_entropy(result: AttentionResult) -> pd.DataFrame:
    """Mean entropy (bits) of each head's attention rows: layer, head, entropy (low = a focused head)."""
    p = np.clip(result.attention, 1e-12, 1.0)
    entropy = -(p * np.log2(p)).sum(-1).mean(-1)  # (layers, heads, T, T) -> (layers, heads)
    layers, heads = np.meshgrid(range(result.n_layers), range(result.n_heads), indexing="ij")
    return pd.DataFrame({"layer": layers.ravel(), "head": heads.ravel(), "entropy": entropy.ravel()})


def special_attention(result: AttentionResult) -> pd.DataFrame:
    """Share of attention going to special tokens and to the first token, per layer (mean over heads and rows)."""
    to_special = result.attention[..., result.special].sum(-1).mean((1, 2))  # (layers, heads, T, S) -> (layers,)
    to_first = result.attention[..., 0].mean((1, 2))  # (layers, heads, T) -> (layers,)
    rows = [{"layer": layer, "target": "special tokens", "share": float(s)} for layer, s in enumerate(to_special)]
    rows += [{"layer": layer, "target": "first token", "share": float(f)} for layer, f in enumerate(to_first)]
    return pd.DataFrame(rows)


def attention_frame(result: AttentionResult, layer: int, head: int) -> pd.DataFrame:
    """One head's matrix as long rows (query, key, weight), tokens labelled 'position token' so repeats stay apart."""
    if not (0 <= layer < result.n_layers and 0 <= head < result.n_heads):
        raise UserError(
            f"Layer {layer}, head {head} does not exist: this model has {result.n_layers} layers and {result.n_heads} heads."
        )
    labels = [f"{i} {t}" for i, t in enumerate(result.tokens)]
    m = result.attention[layer, head]  # (T, T)
    q, k = np.meshgrid(range(len(labels)), range(len(labels)), indexing="ij")
    return pd.DataFrame(
        {"query": [labels[i] for i in q.ravel()], "key": [labels[j] for j in k.ravel()], "weight": m.ravel().round(4)}
    )


# ---- offline bertviz ---------------------------------------------------------------------------------------------


def _package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"The attention view needs the package {package.split('.')[0]}, which is not installed.")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise UserError(f"The installed package {package} lacks {relative}; reinstall it.")
    return path


def _inline_js(source: str) -> str:
    """JavaScript safe to inline: no '</script' and no literal http(s):// (namespace strings are escaped, not changed)."""
    source = re.sub(r"(https?):\/\/", r"\1:\\/\\/", source)
    return source.replace("</script", "<\\/script")


def script_json(value) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' written as \\u escapes, so a token like '</script>' stays data."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def sandboxed(page: str) -> str:
    """A page wrapped in an iframe sandboxed without same-origin: its scripts run but cannot reach the app or its cookies."""
    return (
        "<!DOCTYPE html><html><head><style>html,body{margin:0;height:100%;overflow:hidden}"
        "iframe{border:0;width:100%;height:100%}</style></head>"
        f'<body><iframe sandbox="allow-scripts" srcdoc="{html.escape(page, quote=True)}"></iframe></body></html>'
    )


@functools.lru_cache(maxsize=1)
def offline_libraries() -> str:
    """d3 v5 (mpld3 wheel), jQuery (xstatic-jquery) and a require shim that hands them to bertviz, as inline scripts."""
    d3 = _package_file("mpld3", "js/d3.v5.min.js").read_text(encoding="utf-8")
    jquery = _package_file("xstatic.pkg.jquery", "data/jquery.min.js").read_text(encoding="utf-8")
    shim = (
        "(function(){var mods={d3:window.d3,jquery:window.jQuery};"
        "window.requirejs=window.require=function(deps,cb){cb.apply(null,deps.map(function(d){return mods[d];}));};"
        "window.require.config=function(){};})();"
    )
    return "".join(f"<script>{_inline_js(js)}</script>" for js in (d3, jquery, shim))


@functools.lru_cache(maxsize=2)
def _bertviz_js(view: str) -> str:
    """bertviz's head_view.js or model_view.js without its require.config (CDN paths)."""
    source = _package_file("bertviz", f"{view}_view.js").read_text(encoding="utf-8")
    return re.sub(r"require\.config\(\{.*?\}\);", "", source, count=1, flags=re.S)


_THOUSANDTHS = np.array(["0"] + [f"{k / 1000:.3f}".rstrip("0").lstrip("0") for k in range(1, 1000)] + ["1"])
_WRITTEN_BYTES = np.array([len(s) + 1 for s in _THOUSANDTHS])  # bytes per weight as written, with its comma


def bytes_per_value(values: np.ndarray) -> float:
    """Mean bytes one weight of values takes in compact_array's output (about 2 for zeros, 5 for '.123')."""
    return float(_WRITTEN_BYTES[np.rint(np.clip(values, 0, 1) * 1000).astype(int)].mean()) if values.size else 1.0


def compact_array(values: np.ndarray) -> str:
    """A nested JS array of weights rounded to 3 decimals, written short ('.123', '0', '1')."""
    codes = np.rint(np.clip(values, 0, 1) * 1000).astype(int)
    if codes.ndim == 1:
        return "[" + ",".join(_THOUSANDTHS[codes]) + "]"
    return "[" + ",".join(compact_array(sub) for sub in codes / 1000) + "]"


def choose_layers(n_layers: int, bytes_per_layer: float, budget_bytes: int = MAX_HTML_BYTES) -> list[int]:
    """Evenly spaced layers (always the first and last) whose weights fit the byte budget (libraries take ~0.4 MB)."""
    fit = max(1, int((budget_bytes - 500_000) / bytes_per_layer))
    if fit >= n_layers:
        return list(range(n_layers))
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, fit)})


def bertviz_html(
    result: AttentionResult,
    view: str = "head",
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    budget_bytes: int = MAX_HTML_BYTES,
    dark: bool = False,
) -> str:
    """A self-contained bertviz head or model view (no network), bounded to budget_bytes by choosing layers when needed."""
    if view not in ("head", "model"):
        raise UserError("The bertviz view must be 'head' or 'model'.")
    heads = sorted(set(heads)) if heads else list(range(result.n_heads))
    if any(not 0 <= h < result.n_heads for h in heads) or (layers and any(not 0 <= la < result.n_layers for la in layers)):
        raise UserError(f"Choose layers below {result.n_layers} and heads below {result.n_heads}.")
    per_layer = len(heads) * len(result.tokens) ** 2 * bytes_per_value(result.attention[:, heads])
    layers = sorted(set(layers)) if layers else choose_layers(result.n_layers, per_layer, budget_bytes)
    if len(layers) * per_layer > budget_bytes - 500_000:
        raise UserError(
            f"{len(layers)} layers x {len(heads)} heads of {len(result.tokens)} tokens is too large to draw; "
            "choose fewer layers or heads."
        )
    weights = result.attention[np.ix_(layers, heads)]  # (layers, heads, T, T) selected
    tokens = [t.replace("␣", " ") for t in result.tokens]
    vis_id = f"bertviz-{uuid.uuid4().hex}"
    params = {
        "attention": [{"name": None, "attn": "__ATTN__", "left_text": tokens, "right_text": tokens}],
        "default_filter": "0",
        "root_div_id": vis_id,
        "include_layers": layers,
    }
    if view == "head":
        params.update(layer=layers[0], heads=list(range(len(heads))))
        controls = 'Layer: <select id="layer"></select>'
    else:
        params.update(display_mode="dark" if dark else "light", include_heads=heads, total_heads=result.n_heads)
        controls = ""
    params_js = script_json(params).replace('"__ATTN__"', compact_array(weights))
    script = _inline_js(_bertviz_js(view)).replace("PYTHON_PARAMS", params_js, 1)  # the second one is in a comment
    body = (
        f'<div id="{vis_id}" style="font-family:Helvetica,Arial,sans-serif;"><span style="user-select:none">{controls}</span>'
        f"<div id='vis'></div></div>"
    )
    note = (
        ""
        if view == "model" or heads == list(range(result.n_heads))
        else f"<p style='font:12px sans-serif'>heads shown: {heads}</p>"
    )
    style = "body{margin:0;background:#fff}" if not dark else "body{margin:0;background:#111;color:#eee}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style>{offline_libraries()}</head>"
        f"<body>{note}{body}<script>{script}</script></body></html>"
    )


# ---- saliency ------------------------------------------------------------------------------------------------------


@dataclass
class Saliency:
    """Per-token attributions for one scalar output: log-probability of `target` (the predicted class or next token)."""

    tokens: list[str]
    scores: np.ndarray  # (tokens,)
    method: str  # "integrated gradients" | "gradient x input"
    target: str
    output: float  # f(input)
    baseline_output: float  # f(mean embedding everywhere); IG scores sum to output - baseline_output

    def frame(self) -> pd.DataFrame:
        """position, token, score rows for charts."""
        return pd.DataFrame({"position": range(len(self.tokens)), "token": self.tokens, "score": self.scores})


def _target_logprob(am: AttentionModel, embeds, attention_mask, target: int):
    """log p(target) for each row of a batch of input embeddings: class for classifiers, next token for decoders."""
    import torch

    out = am.model(inputs_embeds=embeds, attention_mask=attention_mask)
    logits = out.logits if am.kind == "classifier" else out.logits[:, -1]  # (B, C) or (B, T, V) -> (B, V)
    return torch.log_softmax(logits.float(), -1)[:, target]  # (B,)


def _baseline_embeddings(am: AttentionModel, embeds):
    """IG baseline: the vocabulary's mean embedding at each position (zero/pad vectors put RMSNorm models on a singular path)."""
    mean_vec = am.model.get_input_embeddings().weight.float().mean(0)  # (V, D) -> (D,)
    return mean_vec.expand_as(embeds).clone()  # (1, T, D)


def saliency(
    am: AttentionModel,
    text: str,
    method: str = "integrated gradients",
    steps: int = 32,
    target_word: str | None = None,
    max_tokens: int = 128,
    batch_size: int = 8,
) -> Saliency:
    """Attribute log p(target) to input tokens; target = predicted class (classifier) or next token / a label word (decoder)."""
    import torch

    if am.kind == "encoder":
        raise UserError(
            "Saliency needs an output to explain: pick a fine-tuned run (classifier) or a decoder, not the bare encoder."
        )
    if method not in ("integrated gradients", "gradient x input"):
        raise UserError("The saliency method must be 'integrated gradients' or 'gradient x input'.")
    if not 2 <= steps <= 256:
        raise UserError("Integrated gradients needs between 2 and 256 steps.")
    enc, _ = _encode(am, text, max_tokens)
    device = next(am.model.parameters()).device
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    with torch.no_grad():
        embeds = am.model.get_input_embeddings()(ids).float()  # (1, T, D)
        if am.kind == "classifier":
            logits = am.model(input_ids=ids, attention_mask=mask).logits[0]
            target, target_name = int(logits.argmax()), am.label_names[int(logits.argmax())]
        elif am.kind == "prompt" and not target_word:  # the label word the model prefers (its first token)
            last = am.model(input_ids=ids, attention_mask=mask).logits[0, -1]
            target = max((label[0] for label in prompt_input(am, text, max_tokens).label_ids), key=lambda t: float(last[t]))
            target_name = clean_token(am.tokenizer.convert_ids_to_tokens(target))
        elif target_word:
            word_ids = am.tokenizer(" " + target_word.strip(), add_special_tokens=False)["input_ids"]
            if not word_ids:
                raise UserError(f"The label word '{target_word}' has no tokens.")
            target, target_name = word_ids[0], clean_token(am.tokenizer.convert_ids_to_tokens(word_ids[0]))
        else:
            target = int(am.model(input_ids=ids, attention_mask=mask).logits[0, -1].argmax())
            target_name = clean_token(am.tokenizer.convert_ids_to_tokens(target))
        baseline = _baseline_embeddings(am, embeds)
        f_input = float(_target_logprob(am, embeds, mask, target)[0])
        f_baseline = float(_target_logprob(am, baseline, mask, target)[0])
    if method == "gradient x input":
        x = embeds.clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(_target_logprob(am, x, mask, target).sum(), x)
        scores = (grad * embeds)[0].sum(-1)  # (1, T, D) -> (T,)
    else:
        alphas = (torch.arange(steps, device=device, dtype=torch.float32) + 0.5) / steps  # midpoint rule on [0, 1]
        total = torch.zeros_like(embeds[0])  # (T, D)
        for start in range(0, steps, batch_size):
            a = alphas[start : start + batch_size].view(-1, 1, 1)  # (b, 1, 1)
            path = (baseline + a * (embeds - baseline)).requires_grad_(True)  # (b, T, D)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(_target_logprob(am, path, mask.expand(len(a), -1), target).sum(), path)
            total += grad.sum(0)
        scores = ((embeds - baseline)[0] * total / steps).sum(-1)  # (T, D) -> (T,)
    tokens = [clean_token(t) for t in am.tokenizer.convert_ids_to_tokens(ids[0].tolist())]
    return Saliency(
        tokens=tokens,
        scores=scores.detach().cpu().numpy(),
        method=method,
        target=target_name,
        output=f_input,
        baseline_output=f_baseline,
    )
