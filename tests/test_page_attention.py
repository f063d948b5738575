"""AppTest of the Attention page with the tiny models (handed over the way the Compare page does)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.scoped import scoped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clear_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def test_attention_page_shows_two_tiny_models_side_by_side(runs_dir, tiny_bert_dir, tiny_llama_dir):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.session_state["attention_text"] = "the movie was great and i loved it"
    at.session_state["attention_models"] = [str(tiny_bert_dir), str(tiny_llama_dir)]
    at.switch_page("app_pages/attention.py").run()
    assert not at.exception
    assert at.text_area(key=scoped(at, "att_text")).value == "the movie was great and i loved it"
    assert at.selectbox(key=scoped(at, "att_left")).value == str(tiny_bert_dir)
    assert any("2 layers × 4 heads" in m.value for m in at.markdown)
    assert any("predicted next token" in c.value for c in at.caption)
    # per model: heatmap, entropy, special tokens; plus saliency for the decoder
    assert len(at.get("vega_lite_chart")) == 7
    assert any("bare encoder has none" in i.value for i in at.info)
    assert any("bertviz head view, drawn offline" in c.value for c in at.caption)
    at.number_input(key=scoped(at, "att_r_layer")).set_value(0).run()
    at.radio(key=scoped(at, "att_r_method")).set_value("integrated gradients").run()
    assert not at.exception
    assert any("integrated gradients for log p" in c.value for c in at.caption)


def test_attention_page_explains_a_model_that_cannot_load(runs_dir, tiny_bert_dir, tmp_path):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.session_state["attention_text"] = "hello"
    at.session_state["attention_models"] = [str(tiny_bert_dir), f"run:{tmp_path}"]
    at.switch_page("app_pages/attention.py").run()
    assert not at.exception
    assert any("holds no fine-tuned model" in e.value for e in at.error)
