"""Session state (the loaded dataset), cached model loading, and how errors are shown on a page."""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from dataclasses import dataclass

import streamlit as st

from core import data, models
from core.errors import UserError

DATASET_KEY = "dataset"
SCOPE_KEY = "dataset_scope"  # the current dataset's Scope, computed once per load
ORIGIN_KEY = "dataset_origin"  # where the current dataset came from, e.g. ("sample", "reviews")


@dataclass(frozen=True)
class Scope:
    """What page state belongs to: one dataset, named by its splits' fingerprints (as runs record them in config.json)."""

    id: str  # short hash over label names and split fingerprints
    fingerprints: dict[str, str]  # split -> sha256 (data.fingerprint), matched against runs' dataset.eval_sha256

    @classmethod
    def of(cls, ds: data.Dataset) -> Scope:
        fingerprints = {split: ds.fingerprint(split) for split in ds.split_names()}
        h = hashlib.sha256("\x1f".join(ds.label_names).encode())
        for split, sha in fingerprints.items():
            h.update(f"\x1e{split}={sha}".encode())
        return cls(h.hexdigest()[:12], fingerprints)

    def key(self, name: str) -> str:
        """name as a widget or session key of this dataset: another dataset's 'name' is another widget, with its defaults."""
        return f"{name}@{self.id}"


def current_dataset() -> data.Dataset | None:
    """The dataset chosen in the sidebar, or None."""
    return st.session_state.get(DATASET_KEY)


def current_scope() -> Scope | None:
    """The Scope of the current dataset, or None."""
    return st.session_state.get(SCOPE_KEY) if DATASET_KEY in st.session_state else None


def scoped(name: str) -> str:
    """A widget/session key scoped to the current dataset, so a dataset switch carries no value over (plain name without one)."""
    scope = current_scope()
    return scope.key(name) if scope else name


def set_dataset(ds: data.Dataset, origin: tuple | None = None) -> None:
    """Make ds the dataset every page works on (fingerprinted here, once per load)."""
    st.session_state[DATASET_KEY] = ds
    st.session_state[SCOPE_KEY] = Scope.of(ds)
    st.session_state[ORIGIN_KEY] = origin


def use_dataset(origin: tuple, load) -> None:
    """Make the dataset from origin current, calling load() only when origin differs from what is loaded; a failed
    load leaves no dataset (never the previous one under the new choice) and raises."""
    if st.session_state.get(ORIGIN_KEY) == origin and DATASET_KEY in st.session_state:
        return
    clear_dataset()
    set_dataset(load(), origin)


def clear_dataset() -> None:
    """No dataset: pages ask for one."""
    for name in (DATASET_KEY, SCOPE_KEY, ORIGIN_KEY):
        st.session_state.pop(name, None)


def require_dataset() -> data.Dataset:
    """The current dataset; without one, a hint to pick one in the sidebar and the page stops."""
    ds = current_dataset()
    if ds is None:
        st.info("Choose a dataset in the sidebar first (a bundled sample, your own file, or a Hugging Face dataset).")
        st.stop()
    if SCOPE_KEY not in st.session_state:  # a dataset put in the session by other means than set_dataset
        st.session_state[SCOPE_KEY] = Scope.of(ds)
    return ds


@st.cache_resource(show_spinner="Loading tokenizer…")
def tokenizer(name: str):
    """models.load_tokenizer, shared across sessions."""
    return models.load_tokenizer(name)


@st.cache_resource(show_spinner="Loading language model…")
def causal_lm(name: str, device: str = "cpu"):
    """models.load_causal_lm, shared across sessions."""
    return models.load_causal_lm(name, device)


@st.cache_resource(show_spinner="Loading encoder…")
def encoder(name: str, device: str = "cpu"):
    """models.load_encoder, shared across sessions."""
    return models.load_encoder(name, device)


_INLINE = re.compile(r"[\\`*\[\]<>~$|&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # emphasis, code, links, images, HTML, math
_BLOCK = re.compile(r"^(\s*)([#>+=-]|\d+(?=[.)]))", re.M)  # headings, quotes, lists and underlines at a line's start
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|www)([:.])|(@)")  # bare URLs and e-mail addresses, which GFM turns into links


def plain(value) -> str:
    """Any value as text that st.markdown / st.caption / st.error show literally: dataset text, label names, file names and
    messages quoting them are data, never Markdown, links, images or HTML (ordinary punctuation is left alone)."""
    text = re.sub(r"\r\n?", "\n", str(value))  # Markdown ends a line at a lone \r too: make it a line end the escapes below see
    text = _INLINE.sub(lambda m: "\\" + m.group(0), re.sub(r"^[ \t]+", "", text, flags=re.M))  # indent = code block
    text = _AUTOLINK.sub(lambda m: "\\@" if m.group(3) else f"{m.group(1)}\\{m.group(2)}", text)
    return _BLOCK.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)), text)


def show_error(exc: BaseException) -> None:
    """One sentence for the user: a UserError as it is; anything else as a short message, details folded away."""
    if isinstance(exc, UserError):
        st.error(plain(exc))
        return
    logging.getLogger("app").error("unexpected error\n%s", "".join(traceback.format_exception(exc)))
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    st.error(plain(f"Something went wrong ({type(exc).__name__}{': ' + first if first else ''}). Nothing saved was changed."))


def model_choice(label: str, role: str, key: str) -> str:
    """A selectbox of a role's bundled models, plus 'other…' with a text box for any HF id or folder (keys scoped to dataset)."""
    bundled = [m.key for m in models.BUNDLED.values() if m.role == role] + [
        m.key for m in models.BUNDLED.values() if m.role != role
    ]
    names = {m.key: f"{m.name} (bundled {m.role})" for m in models.BUNDLED.values()}
    choice = st.selectbox(
        label,
        bundled + ["other"],
        format_func=lambda k: names.get(k, "Other: a Hugging Face id or local folder…"),
        key=scoped(key),
    )
    if choice == "other":
        typed = st.text_input(
            "Model id or folder", key=scoped(f"{key}_other"), placeholder="e.g. distilbert-base-uncased or ./my-model"
        )
        return typed.strip()
    return choice


@st.cache_data(show_spinner="Embedding texts…", max_entries=8)
def text_embeddings(texts: tuple[str, ...], encoder_name: str):
    """Mean-pooled encoder embeddings of texts (for nearest-neighbour demonstrations), cached per text list."""
    from core import prompting

    return prompting.embed_texts(list(texts), encoder_name)


def open_in_compare(runs: list[str], split_sha: str, example_id: str) -> None:
    """Go to Compare's error browser with these runs (paths, the first two as A and B) on this evaluation split and this
    example selected (the Playground and the Explore runs page's map send an example there)."""
    st.session_state[scoped("cmp_chosen")] = list(runs)
    st.session_state[scoped("cmp_split")] = split_sha
    for key in ("cmp_runs", "cmp_run_a", "cmp_run_b", "cmp_cell", "cmp_label"):
        st.session_state.pop(scoped(key), None)  # Compare starts from these runs and this example
    st.session_state[scoped("cmp_example")] = example_id
    st.switch_page("app_pages/compare.py")
