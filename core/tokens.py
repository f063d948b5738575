"""Tokenization views and dataset-level token statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class TokenView:
    """One text as a tokenizer cuts it: a row per token (id, token string, text span, special flag)."""

    model: str
    tokens: pd.DataFrame  # columns: index, id, token, start, end, piece, special
    n_tokens: int
    n_special: int
    n_unknown: int


def tokenize_view(tokenizer, text: str, model: str = "", add_special_tokens: bool = True) -> TokenView:
    """Tokenize text with character offsets; each row carries the exact substring it covers."""
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids = enc["input_ids"]
    offsets = enc["offset_mapping"]
    special_ids = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    rows = []
    for i, (tid, tok, (s, e)) in enumerate(zip(ids, tokens, offsets)):
        special = tid in special_ids and (s, e) == (0, 0)
        rows.append(
            {
                "index": i,
                "id": int(tid),
                "token": tok,
                "start": int(s),
                "end": int(e),
                "piece": "" if special else text[s:e],
                "special": bool(special),
            }
        )
    df = pd.DataFrame(rows, columns=["index", "id", "token", "start", "end", "piece", "special"])
    unk = tokenizer.unk_token_id
    return TokenView(
        model=model,
        tokens=df,
        n_tokens=len(df),
        n_special=int(df["special"].sum()),
        n_unknown=int((df["id"] == unk).sum()) if unk is not None else 0,
    )


def is_byte_fallback(token: str) -> bool:
    """True for byte-fallback pieces such as <0xE2> (SentencePiece) — the BPE analogue of [UNK]."""
    return token.startswith("<0x") and token.endswith(">") and len(token) == 6


def token_lengths(tokenizer, texts: list[str], batch_size: int = 512) -> np.ndarray:
    """Number of tokens (with special tokens) of each text, batched through the fast tokenizer."""
    out = []
    for i in range(0, len(texts), batch_size):
        out += [len(ids) for ids in tokenizer(list(texts[i : i + batch_size]), add_special_tokens=True)["input_ids"]]
    return np.asarray(out, dtype=int)


def token_stats(
    tokenizer, df: pd.DataFrame, max_length: int = 128, group_cols: tuple[str, ...] = ("split", "label")
) -> pd.DataFrame:
    """Per group: texts, mean/median/p95/max tokens, tokens per word (fertility), [UNK]/byte-fallback rate, share truncated."""
    enc = tokenizer(list(df["text"]), add_special_tokens=True)["input_ids"]
    unk = tokenizer.unk_token_id
    special = set(tokenizer.all_special_ids)
    vocab_tokens = None
    rows = []
    lengths = np.array([len(x) for x in enc])
    words = df["text"].str.split().str.len().clip(lower=1).to_numpy()
    content = np.array([sum(1 for t in ids if t not in special) for ids in enc])
    unknown = np.array([sum(1 for t in ids if t == unk) for ids in enc]) if unk is not None else np.zeros(len(enc), int)
    if hasattr(tokenizer, "convert_ids_to_tokens"):
        vocab_tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in enc]
        fallback = np.array([sum(1 for t in toks if is_byte_fallback(str(t))) for toks in vocab_tokens])
    else:
        fallback = np.zeros(len(enc), int)
    frame = df.assign(_len=lengths, _words=words, _content=content, _unk=unknown + fallback)
    keys = [c for c in group_cols if c in frame]
    groups = frame.groupby(keys, sort=False) if keys else [((), frame)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(keys, key)),
                "texts": len(g),
                "mean_tokens": round(float(g["_len"].mean()), 1),
                "median_tokens": float(g["_len"].median()),
                "p95_tokens": float(np.percentile(g["_len"], 95)),
                "max_tokens": int(g["_len"].max()),
                "tokens_per_word": round(float(g["_content"].sum() / g["_words"].sum()), 3),
                "unknown_rate": round(float(g["_unk"].sum() / max(1, g["_content"].sum())), 5),
                "truncated_share": round(float((g["_len"] > max_length).mean()), 4),
            }
        )
    return pd.DataFrame(rows)


def render_chat_template(tokenizer, user_message: str, system: str | None = None) -> tuple[str, int]:
    """The decoder's chat template applied to one user message (with generation prompt), and its token count."""
    if not getattr(tokenizer, "chat_template", None):
        return user_message, len(tokenizer(user_message)["input_ids"])
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_message}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, len(tokenizer(text, add_special_tokens=False)["input_ids"])
