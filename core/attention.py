"""Attention extraction, offline bertviz HTML, aggregate attention views, and token saliency (gradient x input, integrated gradients).

bertviz's own HTML loads require.js, d3 and jQuery from CDNs. Here its JavaScript is wrapped with d3 v5 from the
installed mpld3 wheel, jQuery from xstatic-jquery and a ten-line require shim, so the page needs no network at all."""

from __future__ import annotations

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

from core import models
from core.errors import UserError

MAX_HTML_BYTES = 9_500_000  # bertviz pages stay under 10 MB even for 128 tokens
RUN_PREFIX = "run:"  # model spec of a fine-tuned run: run:<run folder>


@dataclass
class AttentionModel:
    """A loaded model ready for attention views: kind is encoder (bare), classifier (fine-tuned run) or decoder."""

    name: str
    model: object
    tokenizer: object
    kind: str
    label_names: list[str] = field(default_factory=list)


@dataclass
class AttentionResult:
    """Attention weights of one text: attention is (layers, heads, tokens, tokens), rows attend to columns."""

    model_name: str
    kind: str
    tokens: list[str]
    attention: np.ndarray
    special: np.ndarray  # (tokens,) True for the tokenizer's special tokens
    prediction: str | None = None  # classifier: predicted label; decoder: predicted next token
    probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.attention.shape[0]

    @property
    def n_heads(self) -> int:
        return self.attention.shape[1]


def _load_run_model(run_path: str, device: str):
    """core.finetune.load_run_model, explained in one sentence when fine-tuning is not available in this install."""
    try:
        from core.finetune import load_run_model
    except ImportError:
        raise UserError("Fine-tuned run models cannot be loaded yet: core.finetune.load_run_model is not available.") from None
    return load_run_model(run_path, device)


def load_attention_model(spec: str, device: str = "cpu") -> AttentionModel:
    """A bundled model, any model name/folder, or a fine-tuned run ('run:<folder>'), with eager attention."""
    spec = (spec or "").strip()
    if spec.startswith(RUN_PREFIX):
        path = Path(spec[len(RUN_PREFIX):])
        if not (path / "model").is_dir():
            raise UserError(f"The run folder {path} holds no fine-tuned model (no model/ folder).")
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


def _encode(am: AttentionModel, text: str, max_tokens: int):
    """Tokenize one text for the model, refusing empty text and silly lengths."""
    if not text or not text.strip():
        raise UserError("Type a text (or pick an example) to look at its attention.")
    if not 2 <= max_tokens <= 512:
        raise UserError("The token limit must be between 2 and 512.")
    enc = am.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens, return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    if am.kind == "decoder":
        enc.pop("token_type_ids", None)  # Llama-style models take no segment ids
    return enc, special


def extract_attention(am: AttentionModel, text: str, max_tokens: int = 128) -> AttentionResult:
    """Run the model once on text and return every layer's attention weights (plus its prediction when it has one)."""
    import torch

    enc, special = _encode(am, text, max_tokens)
    device = next(am.model.parameters()).device
    with torch.no_grad():
        out = am.model(**{k: v.to(device) for k, v in enc.items()}, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise UserError(f"Model {am.name} returns no attention weights; it must be loaded with eager attention.")
    attention = torch.stack(out.attentions)[:, 0].float().cpu().numpy()  # (layers, 1, heads, T, T) -> (layers, heads, T, T)
    tokens = [clean_token(t) for t in am.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())]
    result = AttentionResult(model_name=am.name, kind=am.kind, tokens=tokens, attention=attention, special=special)
    if am.kind == "classifier":
        probs = torch.softmax(out.logits[0].float(), -1).cpu().numpy()
        result.probabilities = {lab: float(p) for lab, p in zip(am.label_names, probs, strict=True)}
        result.prediction = am.label_names[int(probs.argmax())]
    elif am.kind == "decoder":
        probs = torch.softmax(out.logits[0, -1].float(), -1)
        top = torch.topk(probs, 5)
        result.probabilities = {clean_token(am.tokenizer.convert_ids_to_tokens(int(i))): float(p) for p, i in zip(top.values, top.indices, strict=True)}
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
        raise UserError(f"Layer {layer}, head {head} does not exist: this model has {result.n_layers} layers and {result.n_heads} heads.")
    labels = [f"{i} {t}" for i, t in enumerate(result.tokens)]
    m = result.attention[layer, head]  # (T, T)
    q, k = np.meshgrid(range(len(labels)), range(len(labels)), indexing="ij")
    return pd.DataFrame({"query": [labels[i] for i in q.ravel()], "key": [labels[j] for j in k.ravel()], "weight": m.ravel().round(4)})


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
    return ("<!DOCTYPE html><html><head><style>html,body{margin:0;height:100%;overflow:hidden}"
            "iframe{border:0;width:100%;height:100%}</style></head>"
            f'<body><iframe sandbox="allow-scripts" srcdoc="{html.escape(page, quote=True)}"></iframe></body></html>')


@functools.lru_cache(maxsize=1)
def offline_libraries() -> str:
    """d3 v5 (mpld3 wheel), jQuery (xstatic-jquery) and a require shim that hands them to bertviz, as inline scripts."""
    d3 = _package_file("mpld3", "js/d3.v5.min.js").read_text(encoding="utf-8")
    jquery = _package_file("xstatic.pkg.jquery", "data/jquery.min.js").read_text(encoding="utf-8")
    shim = ("(function(){var mods={d3:window.d3,jquery:window.jQuery};"
            "window.requirejs=window.require=function(deps,cb){cb.apply(null,deps.map(function(d){return mods[d];}));};"
            "window.require.config=function(){};})();")
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


def bertviz_html(result: AttentionResult, view: str = "head", layers: list[int] | None = None, heads: list[int] | None = None,
                 budget_bytes: int = MAX_HTML_BYTES, dark: bool = False) -> str:
    """A self-contained bertviz head or model view (no network), bounded to budget_bytes by choosing layers when needed."""
    if view not in ("head", "model"):
        raise UserError("The bertviz view must be 'head' or 'model'.")
    heads = sorted(set(heads)) if heads else list(range(result.n_heads))
    if any(not 0 <= h < result.n_heads for h in heads) or (layers and any(not 0 <= la < result.n_layers for la in layers)):
        raise UserError(f"Choose layers below {result.n_layers} and heads below {result.n_heads}.")
    per_layer = len(heads) * len(result.tokens) ** 2 * bytes_per_value(result.attention[:, heads])
    layers = sorted(set(layers)) if layers else choose_layers(result.n_layers, per_layer, budget_bytes)
    if len(layers) * per_layer > budget_bytes - 500_000:
        raise UserError(f"{len(layers)} layers x {len(heads)} heads of {len(result.tokens)} tokens is too large to draw; choose fewer layers or heads.")
    weights = result.attention[np.ix_(layers, heads)]  # (layers, heads, T, T) selected
    tokens = [t.replace("␣", " ") for t in result.tokens]
    vis_id = f"bertviz-{uuid.uuid4().hex}"
    params = {"attention": [{"name": None, "attn": "__ATTN__", "left_text": tokens, "right_text": tokens}],
              "default_filter": "0", "root_div_id": vis_id, "include_layers": layers}
    if view == "head":
        params.update(layer=layers[0], heads=list(range(len(heads))))
        controls = 'Layer: <select id="layer"></select>'
    else:
        params.update(display_mode="dark" if dark else "light", include_heads=heads, total_heads=result.n_heads)
        controls = ""
    params_js = script_json(params).replace('"__ATTN__"', compact_array(weights))
    script = _inline_js(_bertviz_js(view)).replace("PYTHON_PARAMS", params_js, 1)  # the second one is in a comment
    body = (f'<div id="{vis_id}" style="font-family:Helvetica,Arial,sans-serif;"><span style="user-select:none">{controls}</span>'
            f"<div id='vis'></div></div>")
    note = "" if view == "model" or heads == list(range(result.n_heads)) else f"<p style='font:12px sans-serif'>heads shown: {heads}</p>"
    style = "body{margin:0;background:#fff}" if not dark else "body{margin:0;background:#111;color:#eee}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style>{offline_libraries()}</head>"
            f"<body>{note}{body}<script>{script}</script></body></html>")


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
    """The IG baseline: the vocabulary's mean embedding at every position (zero or pad vectors put RMSNorm models on a singular path)."""
    mean_vec = am.model.get_input_embeddings().weight.float().mean(0)  # (V, D) -> (D,)
    return mean_vec.expand_as(embeds).clone()  # (1, T, D)


def saliency(am: AttentionModel, text: str, method: str = "integrated gradients", steps: int = 32, target_word: str | None = None,
             max_tokens: int = 128, batch_size: int = 8) -> Saliency:
    """Attribute log p(target) to input tokens; target = predicted class (classifier) or next token / a label word (decoder)."""
    import torch

    if am.kind == "encoder":
        raise UserError("Saliency needs an output to explain: pick a fine-tuned run (classifier) or a decoder, not the bare encoder.")
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
            a = alphas[start:start + batch_size].view(-1, 1, 1)  # (b, 1, 1)
            path = (baseline + a * (embeds - baseline)).requires_grad_(True)  # (b, T, D)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(_target_logprob(am, path, mask.expand(len(a), -1), target).sum(), path)
            total += grad.sum(0)
        scores = ((embeds - baseline)[0] * total / steps).sum(-1)  # (T, D) -> (T,)
    tokens = [clean_token(t) for t in am.tokenizer.convert_ids_to_tokens(ids[0].tolist())]
    return Saliency(tokens=tokens, scores=scores.detach().cpu().numpy(), method=method, target=target_name,
                    output=f_input, baseline_output=f_baseline)
