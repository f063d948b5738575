"""Entry point: page config, the shared sidebar (dataset picker), and navigation over the pages."""

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import streamlit as st  # noqa: E402

from core.cli import reconcile  # noqa: E402
from core.models import import_transformers  # noqa: E402
from ui.sidebar import dataset_sidebar  # noqa: E402

# A local file: a Material or emoji page_icon makes the browser fetch the favicon from a CDN, which air-gapped demos lack.
st.set_page_config(
    page_title="Prompt it, or fine-tune it?", page_icon=str(Path(__file__).parent / "assets" / "favicon.png"), layout="wide"
)

pages = {
    "Explore": [
        st.Page("app_pages/data.py", title="Data", icon=":material/table_chart:", default=True),
        st.Page("app_pages/tokenization.py", title="Tokenization", icon=":material/text_fields:"),
    ],
    "Classify": [
        st.Page("app_pages/prompting.py", title="Prompting", icon=":material/chat:"),
        st.Page("app_pages/finetune.py", title="Fine-tune", icon=":material/model_training:"),
        st.Page("app_pages/continual.py", title="Continual", icon=":material/timeline:"),
        st.Page("app_pages/runs.py", title="Runs", icon=":material/folder_open:"),
    ],
    "Decide": [
        st.Page("app_pages/compare.py", title="Compare", icon=":material/balance:"),
        st.Page("app_pages/attention.py", title="Attention", icon=":material/visibility:"),
        st.Page("app_pages/explore.py", title="Explore runs", icon=":material/travel_explore:"),
    ],
    "Use": [
        st.Page("app_pages/apply.py", title="Apply", icon=":material/label:"),
        st.Page("app_pages/playground.py", title="Playground", icon=":material/keyboard:"),
    ],
}
reconcile()  # runs whose process died are marked failed (and empty .ckpt-* folders dropped) before any page lists them
dataset_sidebar()
page = st.navigation(pages)
import_transformers()  # before any page imports from it in a thread of its own
page.run()
