"""AppTests of the Data page with a large, many-label dataset: 77 labels, more rows than one browse page."""

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import data
from ui.state import DATASET_KEY

ROOT = Path(__file__).resolve().parent.parent
LABELS = [f"intent_{i:02d}_{'card' if i % 3 else 'transfer'}" for i in range(77)]


def many_labels() -> data.Dataset:
    """77 labels with 2 to 40 train rows each (unequal, so sorting by count matters), 10 test rows per label."""
    frames = {}
    for split, per in (("train", lambda i: 2 + (i * 7) % 39), ("test", lambda i: 10)):
        rows = [(f"{split} text {k} about {lab} number {k * 31 % 97}", lab) for i, lab in enumerate(LABELS) for k in range(per(i))]
        frames[split] = pd.DataFrame(rows, columns=["text", "label"])
    frames["test"].loc[0, "text"] = frames["train"].loc[0, "text"]  # one leaked text
    return data.finish("many", "many.csv", frames, LABELS, "text", "label", [])


@pytest.fixture
def at():
    import streamlit as st

    st.cache_data.clear()
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    app.session_state["ds_kind"] = "Hugging Face"  # the sidebar leaves a dataset put in the session alone
    app.session_state[DATASET_KEY] = many_labels()
    return app.run()


def test_data_page_with_77_labels_works_and_pages_the_table(at):
    assert not at.exception and not at.error
    ds = many_labels()
    total = sum(map(len, ds.splits.values()))
    assert total > 1000
    caption = next(c.value for c in at.caption if f" of {total} rows" in c.value)
    assert caption.startswith(f"{total} of {total} rows") and "showing 1–200" in caption
    browse = next(d.value for d in at.dataframe if list(d.value.columns) == ["id", "split", "label", "text"])
    assert len(browse) == 200  # one page, not every row
    at.number_input(key="data_page").set_value(3).run()
    caption = next(c.value for c in at.caption if f" of {total} rows" in c.value)
    assert "showing 401–600" in caption
    leak = next(d.value for d in at.dataframe if "splits" in d.value.columns)
    assert leak.set_index("splits").loc["test / train", "exact"] == 1


def test_data_page_search_still_filters_all_rows(at):
    at.text_input(key="data_search").input("intent_05_").run()
    total = sum(map(len, many_labels().splits.values()))
    caption = next(c.value for c in at.caption if f" of {total} rows" in c.value)
    assert int(caption.split()[0]) == 2 + (5 * 7) % 39 + 10
