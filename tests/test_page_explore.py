"""AppTests for the entry point and the Data and Tokenization pages (through streamlit_app.py)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.scoped import scoped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)


def test_app_opens_on_data_page_with_reviews_sample(app):
    at = app.run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Data"
    summary = next(c.value for c in at.sidebar.caption if "labels ·" in c.value)
    assert "reviews" in summary and "3 labels" in summary
    assert len(at.get("vega_lite_chart")) == 2  # label distribution + token-length histogram
    assert any("660 of 660 rows" in c.value for c in at.caption)
    assert any("No exact or near-duplicate" in s.value for s in at.success)


def test_data_page_search_filters_rows(app):
    at = app.run()
    at.text_input(key=scoped(at, "data_search")).input("refund").run()
    caption = next(c.value for c in at.caption if " of 660 rows" in c.value)
    assert 0 < int(caption.split()[0]) < 660


def test_choosing_another_sample_changes_dataset(app):
    # AppTest drops sidebar widgets on a rerun under st.navigation, so the choice is made before the first run
    app.session_state["ds_sample"] = "support_intents"
    at = app.run()
    assert not at.exception
    assert any("7 labels" in c.value for c in at.sidebar.caption)
    assert any("679 of 679 rows" in c.value for c in at.caption)


def test_tokenization_page_shows_both_tokenizers(app):
    at = app.run()
    at.switch_page("app_pages/tokenization.py").run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader][:2] == ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"]
    counts = [c.value for c in at.caption if " tokens (" in c.value]
    assert len(counts) == 2
    assert any("added by the template" in c.value for c in at.caption)
    card = at.dataframe[0].value  # the bundled models: name, role, size, tokenizer, licence
    assert list(card["name"]) == ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"] and set(card["licence"]) == {"Apache-2.0"}
    assert list(card["layers"]) == [6, 30] and list(card["heads"]) == [12, 9]
    stats = at.dataframe[-1].value
    assert {"tokens_per_word", "unknown_rate", "truncated_share"} <= set(stats.columns) and len(stats) == 9


def test_tokenization_unknown_tokenizer_is_one_sentence(app, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = app.run()
    at.switch_page("app_pages/tokenization.py").run()
    at.text_input(key=scoped(at, "tok_other")).input("no-such-owner/no-such-tokenizer").run()
    assert not at.exception
    assert any("not in the Hugging Face cache" in e.value for e in at.error)


def test_file_source_without_upload_asks_for_a_dataset(app):
    app.session_state["ds_kind"] = "File"
    at = app.run()
    assert not at.exception
    assert any("Choose a dataset in the sidebar" in i.value for i in at.info)


def test_tokenization_chat_message_is_made_of_the_loaded_dataset(open_page):
    """It was a review's sentiment whatever the dataset (banking77's 77 intents included)."""
    from core import data

    at = open_page("app_pages/tokenization.py", ds_sample="finance_news")
    assert not at.exception
    message = at.text_area(key=scoped(at, "tok_chat_msg")).value
    ds = data.load_sample("finance_news")
    assert ", ".join(ds.label_names) in message and ds.splits["train"]["text"].iloc[0] in message and "review" not in message


def test_tokenization_counts_the_datasets_tokens_once_across_edits(open_page, monkeypatch):
    """Every rerun (an edit of the text or chat message) tokenized every row again: ~20 s at 60,000 rows."""
    from core import tokens

    calls = []
    real = tokens.token_stats
    monkeypatch.setattr(tokens, "token_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = open_page("app_pages/tokenization.py")
    at.text_area(key=scoped(at, "tok_chat_msg")).input("Classify this: hello").run()
    assert not at.exception and len(calls) == 1 and len(at.dataframe[-1].value) == 9
