"""The shared sidebar: choose the dataset every page works on."""

from __future__ import annotations

import streamlit as st

from core import data
from ui.state import ORIGIN_KEY, clear_dataset, current_dataset, plain, show_error, use_dataset


@st.cache_data(show_spinner=False, max_entries=8)
def _load_sample(name: str) -> data.Dataset:
    return data.load_sample(name)


@st.cache_data(show_spinner="Reading file…", max_entries=4)
def _load_upload(raw: bytes, filename: str, text_col: str | None, label_col: str | None, seed: int) -> data.Dataset:
    return data.load_upload(raw, filename, text_col, label_col, seed)


@st.cache_data(show_spinner="Loading from the Hugging Face hub…", max_entries=4)
def _load_hub(name: str, text_col: str | None, label_col: str | None) -> data.Dataset:
    return data.load_hub(name, text_col, label_col)


def upload_limit_mb() -> int:
    """What the uploader promises: PFT_MAX_UPLOAD_MB, never more than the server accepts (server.maxUploadSize, which
    scripts/run.sh sets from PFT_MAX_UPLOAD_MB), so a too-big file gets the uploader's one sentence, not an HTTP 413."""
    return max(1, int(min(data.MAX_FILE_MB, st.get_option("server.maxUploadSize"))))


def dataset_sidebar() -> None:
    """Source choice (sample / file / hub), column mapping when needed, and a one-line summary of what is loaded."""
    with st.sidebar:
        st.caption("**Prompt it, or fine-tune it?** Classify one dataset both ways, then compare on the same split.")
        st.header("Dataset")
        kind = st.radio("Source", ["Sample", "File", "Hugging Face"], horizontal=True, key="ds_kind")
        try:
            if kind == "Sample":
                samples = data.list_samples()
                default = samples.index("reviews") if "reviews" in samples else 0
                name = st.selectbox("Sample dataset", samples, index=default, key="ds_sample")
                if name:
                    use_dataset(("sample", name), lambda: _load_sample(name))
            elif kind == "File":
                upload = st.file_uploader(
                    "CSV, TSV, JSONL or Parquet",
                    type=["csv", "tsv", "jsonl", "json", "parquet"],
                    key="ds_upload",
                    max_upload_size=upload_limit_mb(),
                )
                with st.expander("Columns (detected when unambiguous)"):
                    text_col = st.text_input("Text column", key="ds_text_col").strip() or None
                    label_col = st.text_input("Label column", key="ds_label_col").strip() or None
                if upload is None:
                    clear_dataset()
                else:
                    use_dataset(
                        ("file", upload.file_id, text_col, label_col),
                        lambda: _load_upload(upload.getvalue(), upload.name, text_col, label_col, 0),
                    )
            else:
                hub = st.text_input("Dataset name", key="ds_hub", placeholder="e.g. imdb (needs network or cache)")
                if st.button("Load", key="ds_hub_load") and hub.strip():
                    use_dataset(("hub", hub.strip()), lambda: _load_hub(hub.strip(), None, None))
                elif (st.session_state.get(ORIGIN_KEY) or ("",))[0] != "hub":
                    clear_dataset()  # nothing loaded from the hub yet: no other source's dataset under this choice
        except Exception as e:  # shown, never raised: the rest of the app keeps working
            show_error(e)
        ds = current_dataset()
        if ds is not None:
            sizes = ", ".join(f"{s} {len(ds.splits[s])}" for s in ds.split_names())
            st.caption(f"**{plain(ds.name)}** · {len(ds.label_names)} labels · {sizes}")
            for note in ds.notes:
                st.caption(f"ℹ️ {plain(note)}")
