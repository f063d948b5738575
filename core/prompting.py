"""Zero-/few-shot classification by prompting a causal LM: templates, verbalizers, demo selection, label scoring
with a shared prefix KV cache, calibration, and free-text answers for inspection.

How a prompt is built (token level, so the fast and the naive scorer see exactly the same ids):

    prefix  = [chat head] + instruction + demonstrations           (shared by every query unless selection is nearest)
    query   = query template with the text filled in [+ chat tail]
    label   = " " + label word (no space when the query ends in whitespace), scored by log-likelihood

The prefix is run through the model once; its keys/values are expanded to the batch size and reused for every batch
of queries (right-padded, so positions after the prefix are identical for every row). Every query is one row: the
first token of every label is read at the last query position, and the later tokens of multi-token label words are
teacher-forced as a token trie appended to the same row (each trie token attends to the prefix, the query and its own
ancestors, at the position it would have in its own label's sequence), so a query costs its own tokens plus the
distinct label-word prefixes, not labels x query. With nearest-neighbour selection every query has its own
demonstrations, so nothing is shared: each row carries its whole prompt.
"""

from __future__ import annotations

import inspect
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from core import distributed, endpoints, models
from core.comparison import evaluate
from core.errors import UserError
from core.settings import SEED, check_fields, device_name, number, setting

SELECTIONS = ("random", "balanced", "nearest")
CALIBRATIONS = ("none", "contextual", "pmi")
AUTO = "auto"  # calibration and/or template chosen by macro-F1 on a stratified slice of the training data
TEMPLATE_CHOICES = ("custom", AUTO)  # custom: the instruction and templates as given
SCORINGS = ("sum", "mean")
SCORING_MODES = ("echo", "chat-logprobs", "generate")  # how an endpoint model is scored (core.endpoints)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
QUANTIZE = ("4bit", "8bit")
BACKENDS = ("transformers", "vllm")
CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. 2021: averaged content-free inputs for contextual calibration
MAX_SHOTS = 64
CHAT_SENTINEL = "\u241fPROMPT\u241f"  # stands for the user message while the chat template is rendered

# Defaults chosen on the bundled samples (60 test rows, SmolLM2): zero-shot "Text/Answer" without calibration scored
# 0.30 on reviews and 0.32 on support_intents (below or at the majority rate); "Category:" with contextual calibration
# scored 0.60 and 0.50, and 0.45 and 0.62 at 4 shots.
DEFAULT_INSTRUCTION = "Classify each text as one of: {labels}."
DEFAULT_EXAMPLE_TEMPLATE = "Text: {text}\nCategory: {label}\n\n"
DEFAULT_QUERY_TEMPLATE = "Text: {text}\nCategory:"

# The candidates of --template auto: the default wording first (it wins ties), then three common alternatives.
TEMPLATES = {
    "category": {
        "instruction": DEFAULT_INSTRUCTION,
        "example_template": DEFAULT_EXAMPLE_TEMPLATE,
        "query_template": DEFAULT_QUERY_TEMPLATE,
        "use_chat_template": False,
    },
    "answer": {
        "instruction": "Read the text and answer with one of: {labels}.",
        "example_template": "Text: {text}\nAnswer: {label}\n\n",
        "query_template": "Text: {text}\nAnswer:",
        "use_chat_template": False,
    },
    "plain": {
        "instruction": "",
        "example_template": "{text}\nLabel: {label}\n\n",
        "query_template": "{text}\nLabel:",
        "use_chat_template": False,
    },
    "chat": {
        "instruction": DEFAULT_INSTRUCTION,
        "example_template": DEFAULT_EXAMPLE_TEMPLATE,
        "query_template": DEFAULT_QUERY_TEMPLATE,
        "use_chat_template": True,
    },
}
AUTO_CALIBRATIONS = ("contextual", "pmi", "none")  # in tie-break order (contextual was the fixed default before auto)
# What `python -m core search --method prompt` tunes (core/search.py; the format of finetune.SEARCH_SPACE): one of the
# TEMPLATES wordings, a calibration, the number of demonstrations and how they are chosen.
SEARCH_SPACE = {
    "template": list(TEMPLATES),
    "calibration": list(CALIBRATIONS),
    "shots": [0, 1, 2, 4, 8],
    "selection": list(SELECTIONS),
}
SLICE_PER_CLASS = 16  # training rows per class scored to choose template and calibration ...
SLICE_MAX = 128  # ... but no more than this in all (77 labels: 1 per class), and never more than half of a class

Progress = Callable[[int, int], None]  # (examples scored, examples in all)


def unescape(template: str) -> str:
    """Templates typed on a command line spell newlines as \\n and tabs as \\t."""
    return template.replace("\\n", "\n").replace("\\t", "\t")


def parse_label_words(pairs: list[str] | dict) -> dict[str, str]:
    """LABEL=WORD pairs (as --label-words takes them) as a dict; a dict (the pages') is kept as it is, never re-split at
    '=' (a label may contain one). An empty word is refused either way."""
    if isinstance(pairs, dict):
        empty = [label for label, word in pairs.items() if not str(word).strip()]
        if empty:
            raise UserError(f"The label word for '{empty[0]}' is empty.")
        return {str(label): str(word) for label, word in pairs.items()}
    out = {}
    for pair in pairs:
        label, sep, word = str(pair).partition("=")
        if not sep or not label.strip() or not word.strip():
            raise UserError(f"'{pair}' is not LABEL=WORD; write e.g. --label-words negative=bad positive=good.")
        out[label.strip()] = word.strip()
    return out


@dataclass
class PromptConfig:
    """Everything that decides a prompting run; its fields' metadata make the CLI flags and the page form's defaults."""

    model: str = setting(
        models.DECODER, "--model", help="causal LM: bundled 'smollm2' (default), a Hugging Face id or a local folder"
    )
    instruction: str = setting(
        DEFAULT_INSTRUCTION,
        "--instruction",
        type=unescape,
        help="first line; {labels} = the label words, joined by ', ' ('\\n' = newline)",
    )
    example_template: str = setting(
        DEFAULT_EXAMPLE_TEMPLATE, "--example-template", type=unescape, help="one demonstration, with {text} and {label}"
    )
    query_template: str = setting(
        DEFAULT_QUERY_TEMPLATE,
        "--query-template",
        type=unescape,
        help="the text to classify, with {text}; the label word is scored right after it",
    )
    use_chat_template: bool = setting(
        False,
        "--chat",
        action="store_true",
        help="wrap the prompt in the model's chat template (user turn); the label is the reply",
    )
    label_words: dict[str, str] = setting(
        {},
        "--label-words",
        nargs="+",
        action="extend",
        metavar="LABEL=WORD",
        help="what the model should say for a label (others say their name)",
    )
    shots: int = setting(
        0,
        "--shots",
        type=number(int, 0, MAX_SHOTS),
        nargs="+",
        metavar="K",
        help="demonstrations per prompt (0 = zero-shot); several values make a grid",
    )
    selection: str = setting(
        "balanced",
        "--selection",
        choices=SELECTIONS,
        help="how demonstrations are chosen: random, balanced (classes as equal as possible) "
        "or nearest (most similar train texts)",
    )
    calibration: str = setting(
        AUTO,
        "--calibrate",
        choices=(AUTO, *CALIBRATIONS),
        help="calibration of label probabilities; auto (default) picks the best by macro-F1 on a slice of the training data",
    )
    template: str = setting(
        "custom",
        "--template",
        choices=TEMPLATE_CHOICES,
        help="custom: the instruction and templates given; auto: the best of a few built-in wordings on a training slice",
    )
    scoring: str = setting(
        "sum",
        "--scoring",
        choices=SCORINGS,
        help="label log-likelihood: sum over its tokens, or mean (length-normalised, for multi-token label words)",
    )
    seed: int = setting(
        0, "--seed", type=SEED, nargs="+", metavar="S", help="seed of demonstration choice and order; several values make a grid"
    )
    batch_size: int = setting(8, "--batch-size", type=number(int, 1, 512), help="rows per forward pass (on CPU, 8 beat 32)")
    max_eval_examples: int | None = setting(
        None,
        "--max-eval-examples",
        type=number(int, 1),
        help="score a fixed random subset of this many evaluation rows (default: all)",
    )
    max_demo_chars: int = setting(
        500, type=number(int, 20)
    )  # demonstrations longer than this are cut, so the shared prefix stays short
    embedding_model: str = models.ENCODER  # encoder for nearest-neighbour selection (mean-pooled embeddings)
    device: str = setting("auto", "--device", type=device_name, help="auto, cpu, cuda or mps")
    precision: str = setting(
        "auto",
        "--precision",
        choices=PRECISIONS,
        help="weights of a local model: auto (bf16 on a GPU that has it, else fp32), fp32, bf16 or fp16 (GPU only)",
    )
    quantize: str | None = setting(
        None,
        "--quantize",
        choices=QUANTIZE,
        help="load a local model in 4 or 8 bits through bitsandbytes (GPU only, bitsandbytes installed)",
    )
    backend: str = setting(
        "transformers",
        "--backend",
        choices=BACKENDS,
        help="local scoring engine: transformers, or vLLM's offline engine (GPU only, vllm installed)",
    )
    # endpoint models (--model openai:MODEL@URL, core.endpoints)
    api_key_env: str | None = setting(
        None,
        "--api-key-env",
        metavar="NAME",
        help="endpoint models: the environment variable that holds the API key (the key itself is never saved)",
    )
    scoring_mode: str = setting(
        AUTO,
        "--scoring-mode",
        choices=(AUTO, *SCORING_MODES),
        help="endpoint models: echo (prompt log-probabilities), chat-logprobs (top log-probabilities of the "
        "answer's first token) or generate (answer parsed to a label); auto probes the server once",
    )
    concurrency: int = setting(4, "--concurrency", type=number(int, 1, 256), help="endpoint models: requests in flight at once")
    rate_limit: float | None = setting(
        None,
        "--rate-limit",
        type=number(float, 0.01),
        help="endpoint models: at most this many requests per second (default: no limit)",
    )
    timeout: float = setting(
        60.0, "--timeout", type=number(float, 1, 3600), help="endpoint models: seconds to wait for one answer"
    )
    retries: int = setting(
        4,
        "--retries",
        type=number(int, 0, 20),
        help="endpoint models: retries with exponential backoff after a 429, a 5xx, a timeout or a dropped connection",
    )
    price_input: float | None = setting(
        None,
        "--price-input",
        type=number(float, 0),
        help="endpoint models: USD per million prompt tokens (turns tokens into cost_usd)",
    )
    price_output: float | None = setting(
        None, "--price-output", type=number(float, 0), help="endpoint models: USD per million completion tokens"
    )

    def __post_init__(self):
        self.label_words = parse_label_words(self.label_words)  # LABEL=WORD pairs, as --label-words takes them
        if "{text}" not in self.query_template:
            raise UserError("The query template must contain {text}, where the text to classify goes.")
        if self.shots and ("{text}" not in self.example_template or "{label}" not in self.example_template):
            raise UserError("The example template must contain {text} and {label} when the prompt has demonstrations.")
        check_fields(self)
        if self.backend == "vllm" and self.quantize:
            raise UserError(
                "--quantize is for the transformers backend; vLLM loads quantized checkpoints (AWQ, GPTQ) by their model name."
            )
        endpoints.check_config(self)

    @property
    def method(self) -> str:
        """Short name for the runs table, such as '8-shot balanced' or 'zero-shot'."""
        base = "zero-shot" if self.shots == 0 else f"{self.shots}-shot {self.selection}"
        return base if self.calibration == "none" else f"{base} +{self.calibration}"

    def to_dict(self) -> dict:
        """Plain dict for config.json."""
        return asdict(self)


# ---- templates and verbalizer ----------------------------------------------------------------


def default_word(label: str) -> str:
    """The word a label is answered with unless given: its name, underscores as spaces ('card_arrival' -> 'card arrival')."""
    return " ".join(str(label).replace("_", " ").split()) or str(label)


def is_opaque(word: str) -> bool:
    """A label word that carries no meaning for a language model: a number ('0', '1.5'), an id like 'LABEL_3' or
    'class-2', or a code with fewer than two letters ('A', 'B2', '-')."""
    w = word.strip()
    return bool(
        re.fullmatch(r"[-+]?\d+([.,]\d+)?", w) or re.fullmatch(r"[^\W\d_]+[ _-]?\d+", w) or len(re.findall(r"[^\W\d_]", w)) < 2
    )


def opaque_labels(config: PromptConfig, label_names: list[str]) -> list[str]:
    """Labels whose word (given or default) is opaque, in label order."""
    return [lab for lab, word in zip(label_names, verbalizer(config, label_names)) if is_opaque(word)]


def opaque_warning(config: PromptConfig, label_names: list[str]) -> str:
    """The CLI's one-sentence warning when label words are numbers or codes ('' when none is)."""
    opaque = opaque_labels(config, label_names)
    if not opaque:
        return ""
    shown = ", ".join(opaque[:5]) + (f" and {len(opaque) - 5} more" if len(opaque) > 5 else "")
    example = " ".join(f"{lab}=WORD" for lab in opaque[:2])
    return (
        f"warning: the label words {shown} are numbers or codes, which the model cannot read as meanings; "
        f"give label words that mean something with --label-words {example} (e.g. 0=negative)."
    )


def verbalizer(config: PromptConfig, label_names: list[str]) -> list[str]:
    """The word each label is answered with, in label order; refuses unknown labels and two labels with one word."""
    unknown = sorted(set(config.label_words) - set(label_names))
    if unknown:
        raise UserError(f"Label words were given for labels the dataset does not have: {', '.join(unknown)}.")
    words = [str(config.label_words.get(lab, default_word(lab))).strip() for lab in label_names]
    seen: dict[str, str] = {}
    for lab, word in zip(label_names, words):
        if word.lower() in seen:
            raise UserError(
                f"Labels '{seen[word.lower()]}' and '{lab}' have the same label word '{word}', so they cannot be told apart."
            )
        seen[word.lower()] = lab
    return words


def fill(template: str, text: str, label: str = "") -> str:
    """A template with {label} and then {text} filled in (a text containing '{label}' stays as it is)."""
    return template.replace("{label}", label).replace("{text}", text)


def cut(text: str, max_chars: int) -> str:
    """text, cut at a word boundary with an ellipsis when longer than max_chars."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] + "…"


@dataclass
class PromptParts:
    """A prompt as strings: shared prefix (chat head, instruction, demos), the query, and the label continuations."""

    prefix: str
    query: str
    continuations: list[str]  # what is scored after the query, one per label

    @property
    def text(self) -> str:
        return self.prefix + self.query


def chat_frame(tokenizer) -> tuple[str, str]:
    """The chat template's text before and after the user message (with the assistant turn opened)."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("This model's tokenizer has no chat template; turn the chat template off.")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": CHAT_SENTINEL}], tokenize=False, add_generation_prompt=True
    )
    head, _, tail = rendered.partition(CHAT_SENTINEL)
    return head, tail


def render_prefix(config: PromptConfig, words: list[str], demos: pd.DataFrame, label_names: list[str], head: str = "") -> str:
    """Chat head + instruction + demonstrations (demos: rows with text and label)."""
    instruction = config.instruction.replace("{labels}", ", ".join(words)).strip()
    prefix = head + (instruction + "\n\n" if instruction else "")
    word_of = dict(zip(label_names, words))
    for text, label in zip(demos["text"], demos["label"]):
        prefix += fill(config.example_template, cut(str(text), config.max_demo_chars), word_of[label])
    return prefix


def continuation(query: str, word: str) -> str:
    """The label word as it follows the query: after a space unless the query already ends in whitespace."""
    return word if not query or query[-1].isspace() else " " + word


def prompt_parts(
    config: PromptConfig, tokenizer, words: list[str], demos: pd.DataFrame, label_names: list[str], text: str
) -> PromptParts:
    """The full prompt for one text with the given demonstrations."""
    head, tail = chat_frame(tokenizer) if config.use_chat_template else ("", "")
    query = fill(config.query_template, text) + tail
    return PromptParts(render_prefix(config, words, demos, label_names, head), query, [continuation(query, w) for w in words])


def domain_premise(config: PromptConfig, tokenizer) -> str:
    """PMI's domain-conditional query: the query template's text after {text} (e.g. 'Answer:'), plus any chat tail."""
    tail = chat_frame(tokenizer)[1] if config.use_chat_template else ""
    return config.query_template.split("{text}", 1)[1].lstrip() + tail


def encode(tokenizer, text: str, special: bool = False) -> list[int]:
    """Token ids of a piece of the prompt (special tokens only for the very start of a plain prompt)."""
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def label_token_ids(tokenizer, parts: PromptParts) -> list[list[int]]:
    """Token ids of each label continuation."""
    return [encode(tokenizer, c) for c in parts.continuations]


def check_label_words(config: PromptConfig, tokenizer, label_names: list[str]) -> list[str]:
    """Warnings about the verbalizer: opaque label words, multi-token words, and labels whose words start with the same token."""
    words = verbalizer(config, label_names)
    parts = prompt_parts(config, tokenizer, words, pd.DataFrame({"text": [], "label": []}), label_names, "x")
    ids = label_token_ids(tokenizer, parts)
    warnings = [
        f"Label word '{word}' ({lab}) is a number or code, not a word: the model cannot tell what it means."
        for lab, word in zip(label_names, words)
        if is_opaque(word)
    ]
    for lab, word, tok in zip(label_names, words, ids):
        if len(tok) > 1:
            pieces = " + ".join(repr(tokenizer.decode([t])) for t in tok)
            hint = "" if config.scoring == "mean" else "; longer words score lower unless scoring is 'mean'"
            warnings.append(f"Label word '{word}' ({lab}) is {len(tok)} tokens ({pieces}): scored token by token{hint}.")
    firsts: dict[int, str] = {}
    for lab, tok in zip(label_names, ids):
        if tok and tok[0] in firsts:
            warnings.append(
                f"Labels '{firsts[tok[0]]}' and '{lab}' start with the same token {tokenizer.decode([tok[0]])!r}: "
                "only their later tokens tell them apart."
            )
        elif tok:
            firsts[tok[0]] = lab
    return warnings


# ---- demonstration selection -----------------------------------------------------------------


def select_demonstrations(train: pd.DataFrame, shots: int, selection: str, seed: int, label_names: list[str]) -> list[int]:
    """Row positions of the demonstrations in train for random or class-balanced selection, in prompt order (seeded)."""
    if shots == 0:
        return []
    if shots > len(train):
        raise UserError(f"{shots} shots were asked for, but the training split has only {len(train)} rows.")
    rng = np.random.default_rng(seed)
    if selection == "random":
        return [int(i) for i in rng.choice(len(train), size=shots, replace=False)]
    if selection != "balanced":
        raise UserError("Nearest-neighbour demonstrations depend on the query; use nearest_demonstrations.")
    labels = train["label"].to_numpy()
    pools = {lab: list(rng.permutation(np.flatnonzero(labels == lab))) for lab in label_names if (labels == lab).any()}
    chosen: list[int] = []
    while len(chosen) < shots:  # one per class per round, classes in random order each round
        for lab in rng.permutation(list(pools)):
            if pools[lab] and len(chosen) < shots:
                chosen.append(int(pools[lab].pop()))
    return [int(i) for i in rng.permutation(chosen)]  # shuffled so no class always sits next to the query


def embed_texts(texts: list[str], encoder_name: str = models.ENCODER, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Mean-pooled, L2-normalised encoder embeddings, (N, hidden)."""
    import torch

    tokenizer, encoder = models.load_tokenizer(encoder_name), models.load_encoder(encoder_name, device)
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt"
            ).to(device)
            hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state  # (B, T, H)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, H)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def nearest_demonstrations(train_emb: np.ndarray, query_emb: np.ndarray, shots: int) -> np.ndarray:
    """(N, shots) train row positions most similar to each query, least similar first so the closest sits next to the query."""
    if shots > len(train_emb):
        raise UserError(f"{shots} shots were asked for, but the training split has only {len(train_emb)} rows.")
    sims = query_emb @ train_emb.T  # (N, n_train) cosine similarities
    top = np.argsort(-sims, axis=1, kind="stable")[:, :shots]  # (N, shots), most similar first
    return top[:, ::-1].copy()


# ---- scoring ---------------------------------------------------------------------------------


@dataclass
class ScoredRow:
    """One forward-pass row: its tokens and where to read which target (position, token id, example index, label index).

    parents is None for a plain left-to-right row; otherwise parents[i] is the position token i follows (-1: whatever
    precedes the row), so one row can hold a query followed by a token trie of label words: each trie token sees the
    prefix, the query and its own ancestors only, at the position it would have in its own label's sequence."""

    tokens: list[int]
    reads: list[tuple[int, int, int, int]]
    parents: list[int] | None = None


def label_rows(rows: list[list[int]], label_ids: list[list[int]]) -> list[ScoredRow]:
    """One row per query: the query, then a token trie of every label word but its last token (teacher forcing).

    The first token of every label is read at the query's last position; token j at the trie node of tokens[:j].
    Labels that share leading tokens share trie nodes, so a row costs query + distinct label-prefix tokens."""
    if any(not ids for ids in label_ids):
        raise UserError("A label word turned into no tokens at all; choose another word.")
    out = []
    for n, r in enumerate(rows):
        tokens, parents, node = list(r), list(range(-1, len(r) - 1)), {}  # node: label-token prefix -> position
        reads = []
        for c, ids in enumerate(label_ids):
            at = len(r) - 1
            for j, t in enumerate(ids):
                reads.append((at, t, n, c))
                if j == len(ids) - 1:
                    break
                key = tuple(ids[: j + 1])
                if key not in node:
                    node[key] = len(tokens)
                    tokens.append(t)
                    parents.append(at)
                at = node[key]
        out.append(ScoredRow(tokens, reads, None if len(tokens) == len(r) else parents))
    return out


def _tree_mask(rows: list[ScoredRow], lead: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """For a batch of rows (after `lead` tokens that start every row): (B, T, T) may-attend among the row's own
    tokens (ancestors and itself; padding sees itself only) and (B, T) depth of each token (its position)."""
    B = len(rows)
    allowed = np.zeros((B, T, T), dtype=bool)
    depth = np.tile(np.arange(T), (B, 1))
    for b, r in enumerate(rows):
        parents = r.parents if r.parents is not None else list(range(-1, len(r.tokens) - 1))
        full = list(range(-1, lead - 1)) + [p + lead if p >= 0 else lead - 1 for p in parents]
        for k, p in enumerate(full):
            if p >= 0:
                allowed[b, k] = allowed[b, p]
                depth[b, k] = depth[b, p] + 1
            else:
                depth[b, k] = 0
            allowed[b, k, k] = True
        for k in range(len(full), T):
            allowed[b, k, k] = True
    return allowed, depth


def _cache_kwarg(base) -> str:
    """transformers 5 renames past_key_values to cache in some models; use whichever this model's forward takes."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def prefix_cache(model, prefix_ids: list[int]) -> list[tuple] | None:
    """Keys/values of the prefix, one (key, value) pair per layer, each (1, kv_heads, P, head_dim); None for no prefix."""
    import torch

    if not prefix_ids:
        return None
    base = model.base_model
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = base(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def _expanded_cache(model, past: list[tuple], batch: int):
    """A fresh DynamicCache holding the prefix for every row (expanded views: the prefix tensors are never written)."""
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in past], config=model.config
    )


def score_rows(
    model,
    prefix_ids: list[int],
    rows: list[ScoredRow],
    n_examples: int,
    n_labels: int,
    batch_size: int = 16,
    pad_id: int = 0,
    progress: Progress | None = None,
    counted: int | None = None,
) -> np.ndarray:
    """Summed log-probabilities (n_examples, n_labels) of the targets in rows, each row following the shared prefix.

    The prefix minus its last token is cached once; that last token starts every row, so even an empty row has a
    position to read from. Rows are sorted by length and right-padded per batch (dynamic padding). progress gets
    (examples whose rows are all scored, examples) after every batch, counting the examples numbered below counted
    (default: all; the others are calibration rows)."""
    import torch

    if not prefix_ids and any(not r.tokens for r in rows):
        raise UserError("The prompt is empty; give an instruction or a query template with some text in it.")
    base, head = model.base_model, model.get_output_embeddings()
    device = next(model.parameters()).device
    past = prefix_cache(model, prefix_ids[:-1])
    lead = prefix_ids[-1:]  # re-run with every row
    P = len(prefix_ids) - len(lead)
    kwarg = _cache_kwarg(base)
    out = np.zeros((n_examples, n_labels))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].tokens))
    counted = n_examples if counted is None else counted
    pending = np.zeros(n_examples, dtype=int)  # rows still to score per example
    for r in rows:
        pending[list({n for *_, n, _ in r.reads})] += 1
    present = pending[:counted] > 0  # examples these rows belong to (all of them unless the rows are one shard)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            seqs = [lead + r.tokens for r in batch]
            B, T = len(seqs), max(len(s) for s in seqs)
            ids = torch.full((B, T), pad_id, dtype=torch.long)
            for b, s in enumerate(seqs):
                ids[b, : len(s)] = torch.tensor(s)
            if any(r.parents is not None for r in batch):  # label tries: a 4D additive mask and positions by depth
                allowed, depth = _tree_mask(batch, len(lead), T)
                full = np.ones((B, 1, T, P + T), dtype=bool)
                full[:, 0, :, P:] = allowed
                dtype = next(model.parameters()).dtype
                mask = torch.zeros(full.shape, dtype=dtype).masked_fill_(torch.from_numpy(~full), torch.finfo(dtype).min)
                position_ids = P + torch.from_numpy(depth)
            else:
                mask = torch.zeros((B, P + T), dtype=torch.long)
                mask[:, :P] = 1
                for b, s in enumerate(seqs):
                    mask[b, P : P + len(s)] = 1
                position_ids = (P + torch.arange(T)).unsqueeze(0).expand(B, T)  # (B, T): right padding keeps positions aligned
            extra = {kwarg: _expanded_cache(model, past, B)} if past else {}
            hidden = base(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=position_ids.to(device),
                use_cache=bool(past),
                **extra,
            ).last_hidden_state  # (B, T, H)
            shift = len(lead)  # row positions are offset by the lead token
            reads = [(b, pos + shift, tok, n, c) for b, r in enumerate(batch) for pos, tok, n, c in r.reads]
            where = torch.tensor([[b, p] for b, p, *_ in reads])  # (M, 2)
            unique, inverse = torch.unique(where, dim=0, return_inverse=True)  # each (row, position) through the head once
            logp = torch.log_softmax(head(hidden[unique[:, 0], unique[:, 1]]).float(), dim=-1)  # (U, V)
            picked = logp[inverse, torch.tensor([t for *_, t, _, _ in reads])].double().cpu().numpy()  # (M,)
            np.add.at(out, (np.array([n for *_, n, _ in reads]), np.array([c for *_, c in reads])), picked)
            for r in batch:
                pending[list({n for *_, n, _ in r.reads})] -= 1
            if progress:
                progress(int((present & (pending[:counted] == 0)).sum()), int(present.sum()))
    return out


def score_rows_naive(model, prefix_ids: list[int], queries: list[list[int]], label_ids: list[list[int]]) -> np.ndarray:
    """Reference scorer (n_queries, n_labels): the whole prompt + label re-encoded for every query and every label."""
    import torch

    device = next(model.parameters()).device
    out = np.zeros((len(queries), len(label_ids)))
    with torch.inference_mode():
        for n, q in enumerate(queries):
            for c, ids in enumerate(label_ids):
                full = prefix_ids + q + ids
                logits = model(input_ids=torch.tensor([full], device=device)).logits[0]  # (T, V)
                logp = torch.log_softmax(logits.float(), dim=-1)
                start = len(prefix_ids) + len(q) - 1
                out[n, c] = sum(float(logp[start + j, t]) for j, t in enumerate(ids))
    return out


# ---- calibration -----------------------------------------------------------------------------


def label_scores(sum_logp: np.ndarray, label_lengths: list[int], scoring: str) -> np.ndarray:
    """(N, C) scores: summed log-probs, or their mean per label token."""
    return sum_logp if scoring == "sum" else sum_logp / np.asarray(label_lengths, dtype=float)[None, :]


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) scores."""
    z = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def contextual_calibrate(probs: np.ndarray, content_free_probs: np.ndarray) -> np.ndarray:
    """Zhao et al. 2021: divide each (N, C) row by the content-free label probabilities (N or 1, C), renormalise."""
    q = probs / np.clip(content_free_probs, 1e-12, None)
    return q / q.sum(axis=-1, keepdims=True)


def pmi_calibrate(scores: np.ndarray, domain_scores: np.ndarray) -> np.ndarray:
    """PMI-style: softmax of log p(label | prompt) - log p(label | domain premise); scores (N, C), domain (N or 1, C)."""
    return softmax(scores - domain_scores)


# ---- a whole run ----------------------------------------------------------------------------


@dataclass
class PromptResult:
    """What a prompting run produced: per-example predictions with probabilities, metrics, and what the model saw."""

    predictions: pd.DataFrame  # predictions.csv: id, text, label, pred, confidence, prob_<label>...
    metrics: dict  # metrics.json
    demos: pd.DataFrame  # order, id, label, text (shared demos; for nearest, those of the first query)
    warnings: list[str]
    prefix_tokens: int
    example_prompt: str  # full prompt of the first evaluation example
    config: PromptConfig | None = None  # the config that ran ('auto' resolved)
    auto: dict | None = None  # what 'auto' chose and every candidate's score on the training slice
    calibrated: dict[str, np.ndarray] = field(default_factory=dict)  # calibration -> (N, C) probabilities


def eval_subset(eval_df: pd.DataFrame, max_examples: int | None) -> pd.DataFrame:
    """The evaluation rows to score: all, or a fixed random subset (same for every seed, so seeds stay comparable)."""
    if max_examples is None or max_examples >= len(eval_df):
        return eval_df.reset_index(drop=True)
    return eval_df.sample(n=max_examples, random_state=0).sort_index().reset_index(drop=True)


def demo_table(train: pd.DataFrame, positions) -> pd.DataFrame:
    """The demonstrations in prompt order."""
    rows = train.iloc[list(positions)]
    return pd.DataFrame(
        {
            "order": range(1, len(rows) + 1),
            "id": rows["id"].tolist() if "id" in rows else list(positions),
            "label": rows["label"].tolist(),
            "text": rows["text"].tolist(),
        }
    )


def build_prefixes(
    config: PromptConfig, train: pd.DataFrame, texts: list[str], words: list[str], label_names: list[str], head: str = ""
) -> tuple[list[str], pd.DataFrame]:
    """Each query's prefix (chat head, instruction, demonstrations: one shared prefix, or each query's nearest
    neighbours) and the demonstrations table (for nearest, those of the first query)."""
    if config.selection == "nearest" and config.shots > 0:
        device = models.choose_device(config.device)
        train_emb = embed_texts(train["text"].astype(str).tolist(), config.embedding_model, device=device)
        per_query = nearest_demonstrations(train_emb, embed_texts(texts, config.embedding_model, device=device), config.shots)
        prefixes = [render_prefix(config, words, train.iloc[list(p)], label_names, head) for p in per_query]
        return prefixes, demo_table(train, per_query[0]) if len(per_query) else demo_table(train, [])
    positions = select_demonstrations(train, config.shots, config.selection, config.seed, label_names)
    return [render_prefix(config, words, train.iloc[positions], label_names, head)] * len(texts), demo_table(train, positions)


def calibrate_all(
    scores: np.ndarray, n: int, nearest: bool, wanted: list[str], calibration_inputs: dict[str, list]
) -> dict[str, np.ndarray]:
    """Calibration -> (n, C) probabilities from label scores of the n queries followed by the calibration rows of each
    wanted calibration (once, or once per query with nearest selection), in the order of calibration_inputs."""
    C, M = scores.shape[1], sum(len(calibration_inputs[c]) for c in wanted)
    main, extra_scores = scores[:n], scores[n:]
    extra_scores = extra_scores.reshape(n, M, C) if nearest and M else extra_scores.reshape(1, M, C)
    calibrated, start = {"none": softmax(main)}, 0
    for c in wanted:  # each calibration reads its own content-free / domain rows
        own = extra_scores[:, start : start + len(calibration_inputs[c])]
        start += len(calibration_inputs[c])
        calibrated[c] = (
            contextual_calibrate(calibrated["none"], softmax(own).mean(axis=1))
            if c == "contextual"
            else pmi_calibrate(main, own[:, 0, :])
        )
    return calibrated


def load_model(config: PromptConfig):
    """Tokenizer and causal LM of the config (cached per process), on the chosen device, in the config's precision
    (core.endpoints.local_options refuses in one sentence what this machine cannot do)."""
    device = models.choose_device(config.device)
    options = endpoints.local_options(config, device)
    if config.backend == "vllm":  # vLLM's engine scores the same token ids (core.vllm_backend)
        from core import vllm_backend

        if distributed.shard()[1] > 1:
            raise UserError("--backend vllm scores on one GPU in one process; run it without torchrun.")
        return models.load_tokenizer(config.model), vllm_backend.engine(config.model, options.get("precision", "fp32"))
    return models.load_tokenizer(config.model), models.load_causal_lm(config.model, device, attention="sdpa", **options)


def run_prompting(
    config: PromptConfig,
    train: pd.DataFrame,
    eval_df: pd.DataFrame,
    label_names: list[str],
    progress: Progress | None = None,
    all_calibrations: bool = False,
) -> PromptResult:
    """Classify eval_df by prompting: build prompts, score every label, calibrate, and compute the run's metrics.

    'auto' calibration or template is first resolved on a slice of train (choose_prompt); all_calibrations also scores
    the content-free and domain inputs of every calibration, so PromptResult.calibrated holds each one's probabilities."""
    if endpoints.is_endpoint(config.model):  # an OpenAI-compatible server scores the prompts (same prompts, same outputs)
        return run_endpoint(config, train, eval_df, label_names, progress, all_calibrations)
    started = time.perf_counter()
    choice = None
    if AUTO in (config.calibration, config.template):
        config, choice = choose_prompt(config, train, label_names)
    tokenizer, model = load_model(config)
    words = verbalizer(config, label_names)
    warnings = check_label_words(config, tokenizer, label_names)
    eval_df = eval_subset(eval_df, config.max_eval_examples)
    texts = eval_df["text"].astype(str).tolist()
    special = not config.use_chat_template
    nearest = config.selection == "nearest" and config.shots > 0
    head = chat_frame(tokenizer)[0] if config.use_chat_template else ""
    prefixes, demos = build_prefixes(config, train, texts, words, label_names, head)
    tail = chat_frame(tokenizer)[1] if config.use_chat_template else ""
    first = prompt_parts(config, tokenizer, words, demos, label_names, texts[0] if texts else "x")
    label_ids = label_token_ids(tokenizer, first)
    queries = [encode(tokenizer, fill(config.query_template, t) + tail) for t in texts]
    calibration_inputs = {
        "contextual": [fill(config.query_template, cf) + tail for cf in CONTENT_FREE],
        "pmi": [domain_premise(config, tokenizer)],
    }
    wanted = [c for c in CALIBRATIONS if c != "none" and (all_calibrations or c == config.calibration)]
    extra_texts = [t for c in wanted for t in calibration_inputs[c]]
    extra = [encode(tokenizer, t) for t in extra_texts]
    N, C = len(texts), len(label_names)
    if nearest:  # every query has its own prefix: whole prompts per row, nothing cached
        prefix_ids: list[int] = []
        query_rows = [encode(tokenizer, p, special) + q for p, q in zip(prefixes, queries)]
        extra_rows = [encode(tokenizer, p, special) + e for p in prefixes for e in extra]  # (N*M) rows
    else:
        prefix_ids = encode(tokenizer, prefixes[0], special) if texts else []
        query_rows, extra_rows = queries, extra
    n_rows = len(query_rows) + len(extra_rows)
    rank, world = distributed.shard()
    report = (lambda done, total: progress(round(done * N / total) if total else N, N)) if progress and rank == 0 else None
    if config.backend == "vllm":  # vLLM's engine scores every row (load_model refuses it under torchrun)
        sums = model.score(prefix_ids, query_rows + extra_rows, label_ids, report)
    else:
        rows = label_rows(query_rows + extra_rows, label_ids)
        sums = score_rows(
            model, prefix_ids, rows[rank::world], n_rows, C, config.batch_size, tokenizer.pad_token_id or 0, report, counted=N
        )
    if world > 1:  # every process scored every world-th row; summing gives each the whole table
        sums = distributed.all_sum(sums)
    scores = label_scores(sums, [len(ids) for ids in label_ids], config.scoring)
    calibrated = calibrate_all(scores, N, nearest, wanted, calibration_inputs)
    probs = calibrated[config.calibration]
    seconds = time.perf_counter() - started
    predictions = evaluate.predictions_frame(eval_df["id"], texts, eval_df["label"], probs, label_names)
    metrics = evaluate.classification_metrics(predictions["label"].tolist(), predictions["pred"].tolist(), label_names)
    metrics.update(
        seconds=round(seconds, 3),
        examples_per_second=round(N / seconds, 3) if seconds else None,
        trainable_params=0,
        total_params=model.total_params if config.backend == "vllm" else int(sum(p.numel() for p in model.parameters())),
        prefix_tokens=len(prefix_ids),
        calibration=config.calibration,
        scoring=config.scoring,
        world_size=world,
    )
    if choice:
        metrics["auto"] = choice
    example = (prefixes[0] + first.query) if texts else ""
    return PromptResult(predictions, metrics, demos, warnings, len(prefix_ids), example, config, choice, calibrated)


def score_texts(
    config: PromptConfig, train: pd.DataFrame, texts: list[str], label_names: list[str], progress: Progress | None = None
) -> np.ndarray:
    """(N, C) label probabilities of unlabelled texts under a run's prompt (its template, label words, demonstrations drawn
    from train, calibration), exactly as run_prompting scores an evaluation split: the one call core.predict makes.
    An endpoint in generate mode gives answers, not probabilities: 1 at the label answered, 0 elsewhere, and a row of NaN
    where the answer named no label."""
    frame = pd.DataFrame({"id": range(len(texts)), "text": texts, "label": label_names[0]})  # a label only for the unused metrics
    result = run_prompting(replace(config, max_eval_examples=None), train, frame, label_names, progress)
    if result.calibrated:
        return result.calibrated[result.config.calibration]
    answered = np.full((len(texts), len(label_names)), np.nan)
    for i, pred in enumerate(result.predictions["pred"]):
        if pred in label_names:
            answered[i] = 0.0
            answered[i, label_names.index(pred)] = 1.0
    return answered


# ---- auto: template and calibration chosen on a training slice -------------------------------


def selection_slice(train: pd.DataFrame, label_names: list[str], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(slice, rest) of train: up to SLICE_PER_CLASS rows of every class (SLICE_MAX in all, at most half of a class), seeded."""
    present = [lab for lab in label_names if (train["label"] == lab).sum() >= 2]
    per_class = min(SLICE_PER_CLASS, max(1, SLICE_MAX // max(len(present), 1)))
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for lab in present:
        rows = np.flatnonzero((train["label"] == lab).to_numpy())
        picked += rng.choice(rows, size=min(per_class, len(rows) // 2), replace=False).tolist()
    chosen = np.zeros(len(train), dtype=bool)
    chosen[picked] = True
    return train[chosen].reset_index(drop=True), train[~chosen].reset_index(drop=True)


def choose_prompt(config: PromptConfig, train: pd.DataFrame, label_names: list[str]) -> tuple[PromptConfig, dict]:
    """Resolve 'auto' calibration/template: score each candidate template once on a stratified slice of the training data
    (demonstrations drawn from the rest of it) and read every calibration from that one pass. The choice follows the
    one-standard-error rule: the earliest candidate (the default wording and contextual calibration come first) whose
    macro-F1 is within one binomial standard error of the best, since a slice of a few dozen rows cannot tell smaller
    differences from noise. Returns the resolved config and the record of the choice. The evaluation split is never read."""
    calibrations = AUTO_CALIBRATIONS if config.calibration == AUTO else (config.calibration,)
    own = {k: getattr(config, k) for k in TEMPLATES["category"]}
    names = list(TEMPLATES) if config.template == AUTO else ["custom"]
    if "chat" in names and (endpoints.is_endpoint(config.model) or not getattr(load_model(config)[0], "chat_template", None)):
        names.remove("chat")
    slice_df, rest = selection_slice(train, label_names, config.seed)
    record = {
        "requested": {"calibration": config.calibration, "template": config.template},
        "slice_rows": len(slice_df),
        "slice_classes": int(slice_df["label"].nunique()) if len(slice_df) else 0,
        "seed": config.seed,
        "candidates": [],
    }
    if record["slice_classes"] < 2 or len(rest) < config.shots:
        resolved = replace(config, calibration=calibrations[0], template="custom")
        record.update(
            template="custom" if config.template != AUTO else "category",
            calibration=resolved.calibration,
            note="the training data is too small for a selection slice, so the defaults are used",
        )
        if config.template == AUTO:
            resolved = replace(resolved, **TEMPLATES["category"])
        return resolved, record
    y = slice_df["label"].tolist()
    scored = []  # (macro-F1, template name, config), in candidate order
    for name in names:
        wording = own if name == "custom" else TEMPLATES[name]
        candidate = replace(config, **wording, calibration=calibrations[0], template="custom", max_eval_examples=None)
        result = run_prompting(candidate, rest, slice_df, label_names, all_calibrations=len(calibrations) > 1)
        for c in calibrations:
            pred = [label_names[i] for i in result.calibrated[c].argmax(axis=1)]
            m = evaluate.classification_metrics(y, pred, label_names)
            record["candidates"].append(
                {"template": name, "calibration": c, "macro_f1": round(m["macro_f1"], 4), "accuracy": round(m["accuracy"], 4)}
            )
            scored.append((m["macro_f1"], name, replace(candidate, calibration=c, max_eval_examples=config.max_eval_examples)))
    top = max(f1 for f1, _, _ in scored)
    standard_error = math.sqrt(top * (1 - top) / len(slice_df))
    chosen = next(item for item in scored if item[0] >= top - standard_error)
    record.update(
        template=chosen[1],
        calibration=chosen[2].calibration,
        slice_macro_f1=round(chosen[0], 4),
        best_slice_macro_f1=round(top, 4),
        standard_error=round(standard_error, 4),
    )
    return chosen[2], record


def describe_choice(record: dict) -> str:
    """One line for the CLI and the page: what auto chose, on how many training rows, against what."""
    if record.get("note"):
        return f"auto: template '{record['template']}', calibration {record['calibration']} ({record['note']})."
    others = ", ".join(f"{c['template']}/{c['calibration']} {c['macro_f1']:.3f}" for c in record["candidates"])
    return (
        f"auto: template '{record['template']}', calibration {record['calibration']} (macro-F1 {record['slice_macro_f1']:.3f} "
        f"on {record['slice_rows']} training rows, best {record['best_slice_macro_f1']:.3f} ± {record['standard_error']:.3f}: "
        f"the first candidate within one standard error wins; candidates: {others})."
    )


# ---- preview and free-text answers ------------------------------------------------------------


@dataclass
class PromptPreview:
    """The exact prompt for one example, what it costs in tokens, and the demonstrations in it."""

    text: str  # prefix + query, ready for the label word
    n_tokens: int
    prefix_tokens: int
    continuations: list[str]
    demos: pd.DataFrame
    warnings: list[str]


def preview_prompt(
    config: PromptConfig,
    tokenizer,
    train: pd.DataFrame,
    label_names: list[str],
    text: str,
    train_embeddings: np.ndarray | None = None,
) -> PromptPreview:
    """Build the prompt one example would get (nearest selection needs train_embeddings, else they are computed)."""
    words = verbalizer(config, label_names)
    if config.selection == "nearest" and config.shots > 0:
        emb = (
            train_embeddings
            if train_embeddings is not None
            else embed_texts(train["text"].astype(str).tolist(), config.embedding_model)
        )
        positions = nearest_demonstrations(emb, embed_texts([text], config.embedding_model), config.shots)[0]
    else:
        positions = select_demonstrations(train, config.shots, config.selection, config.seed, label_names)
    demos = demo_table(train, positions)
    parts = prompt_parts(config, tokenizer, words, demos, label_names, text)
    special = not config.use_chat_template
    prefix_n = len(encode(tokenizer, parts.prefix, special)) if parts.prefix else 0
    total = prefix_n + len(encode(tokenizer, parts.query))
    return PromptPreview(
        parts.text, total, prefix_n, parts.continuations, demos, check_label_words(config, tokenizer, label_names)
    )


def parse_label(answer: str, words: list[str], label_names: list[str]) -> str | None:
    """The label whose word appears first in a free-text answer (case-insensitive, whole word), or None."""
    best: tuple[int, str] | None = None
    for lab, word in zip(label_names, words):
        m = re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", answer.lower())
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), lab)
    return best[1] if best else None


def generate_answer(
    config: PromptConfig, tokenizer, model, prompt: str, label_names: list[str], max_new_tokens: int = 10
) -> tuple[str, str | None]:
    """Greedy free-text continuation of a prompt (for inspection) and the label parsed from it."""
    import torch

    special = not config.use_chat_template
    device = next(model.parameters()).device
    ids = torch.tensor([encode(tokenizer, prompt, special)], device=device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    return answer, parse_label(answer, verbalizer(config, label_names), label_names)


def grid_run_names(base: str, shots: list[int], seeds: list[int]) -> list[tuple[str, int, int]]:
    """(run name, shots, seed) for each run of a grid; a single run keeps the base name."""
    if len(shots) == 1 and len(seeds) == 1:
        return [(base, shots[0], seeds[0])]
    return [(f"{base}-{k}shot-seed{s}", k, s) for k in shots for s in seeds]


# ---- runs on the page: grids, seed variance ---------------------------------------------------


def template_id(config: dict) -> str:
    """A short stable name for a prompt's wording (instruction, templates, chat, label words), e.g. 'tpl-3fa2'."""
    import hashlib

    key = "\x1f".join(
        str(config.get(k, "")) for k in ("instruction", "example_template", "query_template", "use_chat_template", "label_words")
    )
    return "tpl-" + hashlib.sha1(key.encode()).hexdigest()[:4]


def prompt_runs_table(root, eval_sha256: str) -> pd.DataFrame:
    """Finished prompt runs under root on one evaluation split (the run registry's listing, core.runs.comparable):
    settings and scores, one row per run."""
    from pathlib import Path

    from core.runs import RunDir, RunRegistry, comparable

    rows = []
    for path in comparable(RunRegistry(root).list(kind="prompt"), eval_sha256)["path"] if Path(root).is_dir() else []:
        run = RunDir(Path(path))
        config, metrics = run.config, run.metrics or {}
        tpl = template_id(config)
        rows.append(
            {
                "run": run.name,
                "template": tpl,
                "shots": config.get("shots", 0),
                "seed": config.get("seed", 0),
                "selection": config.get("selection"),
                "calibration": config.get("calibration"),
                "scoring": config.get("scoring"),
                "variant": f"{tpl} · {config.get('selection')} · {config.get('calibration')}",
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "n_examples": metrics.get("n_examples"),
                "examples_per_second": metrics.get("examples_per_second"),
                "model": config.get("model"),
                "query_template": config.get("query_template", ""),
                "instruction": config.get("instruction", ""),
                "created": run.status.get("created", 0),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "run",
            "template",
            "shots",
            "seed",
            "selection",
            "calibration",
            "scoring",
            "variant",
            "accuracy",
            "macro_f1",
            "n_examples",
            "examples_per_second",
            "model",
            "query_template",
            "instruction",
            "created",
        ],
    )


def seed_variance(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant and shot count: runs (seeds), mean, std, min and max accuracy and mean macro-F1."""
    if table.empty:
        return pd.DataFrame(
            columns=[
                "variant",
                "shots",
                "seeds",
                "accuracy_mean",
                "accuracy_std",
                "accuracy_min",
                "accuracy_max",
                "macro_f1_mean",
            ]
        )
    g = table.groupby(["variant", "shots"], sort=True)
    out = g.agg(
        seeds=("seed", "nunique"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        accuracy_min=("accuracy", "min"),
        accuracy_max=("accuracy", "max"),
        macro_f1_mean=("macro_f1", "mean"),
    ).reset_index()
    out["accuracy_std"] = out["accuracy_std"].fillna(0.0)
    return out.round(4)


# ---- endpoint models: the same prompts, scored by an OpenAI-compatible server (core.endpoints) -------------


def run_endpoint(
    config, train: pd.DataFrame, eval_df: pd.DataFrame, label_names: list[str], progress=None, all_calibrations: bool = False
):
    """run_prompting for an endpoint model: the same prompts, scored by the server in the probed mode (core.endpoints:
    the client, the cache and the request bodies)."""
    top = not endpoints.METERS
    if top:
        endpoints.METERS.append(endpoints.Meter())
    try:
        return _run_endpoint(config, train, eval_df, label_names, progress, all_calibrations, endpoints.METERS[-1])
    finally:
        if top:
            endpoints.METERS.pop()


def _run_endpoint(config, train, eval_df, label_names, progress, all_calibrations, meter):
    started = time.perf_counter()
    endpoint = endpoints.parse_spec(config.model, config.api_key_env)
    client = endpoints.Client(endpoint, config, meter)
    mode = endpoints.probe(client) if config.scoring_mode == AUTO else config.scoring_mode
    config = replace(config, scoring_mode=mode)
    notes = []
    if mode == "generate" and config.calibration == AUTO:
        config = replace(config, calibration="none")
        notes.append("calibration is none: the generate mode gives no label probabilities")
    choice = None
    if AUTO in (config.calibration, config.template):
        config, choice = choose_prompt(config, train, label_names)
    words = verbalizer(config, label_names)
    eval_df = eval_subset(eval_df, config.max_eval_examples)
    texts = eval_df["text"].astype(str).tolist()
    N, C = len(texts), len(label_names)
    prefixes, demos = build_prefixes(config, train, texts, words, label_names)
    queries = [fill(config.query_template, t) for t in texts]
    nearest = config.selection == "nearest" and config.shots > 0
    unparsed, answers = 0, None
    if mode == "generate":
        responses = endpoints.run_requests(
            client, [("chat", endpoints.chat_body(p + q, mode)) for p, q in zip(prefixes, queries)], list(range(N)), N, progress
        )
        answers = [endpoints.answer_text(r) for r in responses]
        preds = [parse_label(a, words, label_names) for a in answers]
        unparsed = sum(p is None for p in preds)
        predictions = evaluate.predictions_frame(eval_df["id"], texts, eval_df["label"], np.zeros((N, C)), label_names)
        predictions["pred"] = [p if p is not None else endpoints.UNPARSED for p in preds]
        predictions[["confidence", *[f"prob_{lab}" for lab in label_names]]] = np.nan  # no probabilities in this mode
        predictions["answer"] = answers
        calibrated = {}
    else:
        calibration_inputs = {
            "contextual": [fill(config.query_template, cf) for cf in CONTENT_FREE],
            "pmi": [config.query_template.split("{text}", 1)[1].lstrip()],
        }
        wanted = [c for c in CALIBRATIONS if c != "none" and (all_calibrations or c == config.calibration)]
        extra = [t for c in wanted for t in calibration_inputs[c]]
        rows = [p + q for p, q in zip(prefixes, queries)]
        rows += [p + e for p in prefixes for e in extra] if nearest else [(prefixes[0] if prefixes else "") + e for e in extra]
        owners = list(range(N)) + [None] * (len(rows) - N)
        if mode == "echo":
            pairs = [(r, continuation(r, w)) for r in rows for w in words]
            responses = endpoints.run_requests(
                client,
                [("completions", endpoints.echo_body(r, c)) for r, c in pairs],
                [o for o in owners for _ in words],
                N,
                progress,
            )
            try:
                scored = [endpoints.echo_score(resp, r, c) for resp, (r, c) in zip(responses, pairs)]
            except (ValueError, KeyError, TypeError, IndexError):
                raise UserError(
                    f"The endpoint at {endpoint.base_url} stopped giving prompt log-probabilities; "
                    "rerun with --scoring-mode chat-logprobs or generate."
                ) from None
            sums = np.array([s for s, _ in scored]).reshape(len(rows), C)
            lengths = [n for _, n in scored[:C]]
        else:
            responses = endpoints.run_requests(
                client, [("chat", endpoints.chat_body(r, mode)) for r in rows], owners, N, progress
            )
            try:
                sums = np.array([endpoints.chat_scores(resp, words) for resp in responses]).reshape(len(rows), C)
            except (ValueError, KeyError, TypeError, IndexError):
                raise UserError(
                    f"The endpoint at {endpoint.base_url} stopped giving top log-probabilities; "
                    "rerun with --scoring-mode generate."
                ) from None
            lengths = [1] * C
        scores = label_scores(sums, lengths, config.scoring)
        calibrated = calibrate_all(scores, N, nearest, wanted, calibration_inputs)
        predictions = evaluate.predictions_frame(
            eval_df["id"], texts, eval_df["label"], calibrated[config.calibration], label_names
        )
    seconds = time.perf_counter() - started
    metrics = evaluate.classification_metrics(predictions["label"].tolist(), predictions["pred"].tolist(), label_names)
    metrics.update(
        seconds=round(seconds, 3),
        examples_per_second=round(N / seconds, 3) if seconds else None,
        trainable_params=0,
        total_params=None,
        prefix_tokens=None,
        calibration=config.calibration,
        scoring=config.scoring,
        world_size=1,
        **meter.metrics(config.price_input, config.price_output),
        scoring_mode=mode,
        unparsed=unparsed,
        endpoint=endpoint.record(),
    )
    if notes:
        metrics["notes"] = notes
    if choice:
        metrics["auto"] = choice
    example = (prefixes[0] + queries[0]) if texts else ""
    warnings = [
        f"Label word '{w}' ({lab}) is a number or code, not a word: the model cannot tell what it means."
        for lab, w in zip(label_names, words)
        if is_opaque(w)
    ]
    if mode == "generate" and unparsed:
        warnings.append(f"{unparsed} of {N} answers named no label; they count as wrong (pred {endpoints.UNPARSED}).")
    return PromptResult(predictions, metrics, demos, warnings, 0, example, config, choice, calibrated)


def endpoint_prompt(config, train: pd.DataFrame, label_names: list[str], text: str) -> str:
    """The exact prompt an endpoint gets for one text (the echo mode scores the label word right after it; the chat
    modes send it as the user message)."""
    words = verbalizer(config, label_names)
    prefixes, _ = build_prefixes(config, train, [text], words, label_names)
    return prefixes[0] + fill(config.query_template, text)


def endpoint_answer(config, prompt: str, label_names: list[str]) -> tuple[str, str | None]:
    """The endpoint's free-text answer to a prompt (a chat completion, cached like every request) and the label parsed from it."""
    client = endpoints.Client(endpoints.parse_spec(config.model, config.api_key_env), config, endpoints.Meter())
    answer = endpoints.answer_text(client.request("chat", endpoints.chat_body(prompt, "generate")))
    return answer, parse_label(answer, verbalizer(config, label_names), label_names)
