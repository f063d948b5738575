"""AppTests with a large, many-label dataset: the Data page (77 labels, more rows than one browse page) and Compare."""

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import data
from tests.scoped import preload, scoped

ROOT = Path(__file__).resolve().parent.parent
LABELS = [f"intent_{i:02d}_{'card' if i % 3 else 'transfer'}" for i in range(77)]


def many_labels() -> data.Dataset:
    """77 labels with 2 to 40 train rows each (unequal, so sorting by count matters), 10 test rows per label."""
    frames = {}
    for split, per in (("train", lambda i: 2 + (i * 7) % 39), ("test", lambda i: 10)):
        rows = [
            (f"{split} text {k} about {lab} number {k * 31 % 97}", lab) for i, lab in enumerate(LABELS) for k in range(per(i))
        ]
        frames[split] = pd.DataFrame(rows, columns=["text", "label"])
    frames["test"].loc[0, "text"] = frames["train"].loc[0, "text"]  # one leaked text
    return data.finish("many", "many.csv", frames, LABELS, "text", "label", [])


@pytest.fixture
def at():
    import streamlit as st

    st.cache_data.clear()
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    preload(app, many_labels())
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
    at.number_input(key=scoped(at, "data_page")).set_value(3).run()
    caption = next(c.value for c in at.caption if f" of {total} rows" in c.value)
    assert "showing 401–600" in caption
    leak = next(d.value for d in at.dataframe if "splits" in d.value.columns)
    assert leak.set_index("splits").loc["test / train", "exact"] == 1


def test_data_page_search_still_filters_all_rows(at):
    at.text_input(key=scoped(at, "data_search")).input("intent_05_").run()
    total = sum(map(len, many_labels().splits.values()))
    caption = next(c.value for c in at.caption if f" of {total} rows" in c.value)
    assert int(caption.split()[0]) == 2 + (5 * 7) % 39 + 10


def test_data_page_charts_and_class_table_stay_readable_at_77_labels(at):
    assert len(at.get("vega_lite_chart")) == 2  # labels per split + token lengths
    table = next(d.value for d in at.dataframe if "share" in d.value.columns)
    assert len(table) == 77 and list(table["total"]) == sorted(table["total"], reverse=True)
    at.text_input(key=scoped(at, "data_class_search")).input("_05_").run()
    table = next(d.value for d in at.dataframe if "share" in d.value.columns)
    assert list(table["label"]) == ["intent_05_card"]
    head = next(c.value for c in at.caption if "label column" in c.value)
    assert "77 labels:" in head and "and 65 more" in head and "intent_76" not in head  # not all 77 names in one paragraph
    examples = at.multiselect(key=scoped(at, "data_example_classes"))
    assert examples.value == LABELS[:12] and len([m for m in at.markdown if m.value.startswith("**intent_")]) == 12
    examples.set_value([LABELS[40]]).run()
    assert [m.value for m in at.markdown if m.value.startswith("**intent_")] == [f"**{LABELS[40]}**"]


def test_compare_shows_most_confused_pairs_for_77_labels(runs_dir):
    from tests.compare_fixtures import make_run

    make_run(runs_dir, "a", 0.5, seed=1, n=231, labels=LABELS)
    make_run(runs_dir, "b", 0.6, seed=2, n=231, labels=LABELS)
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    app.switch_page("app_pages/compare.py").run()
    assert not app.exception
    assert "Most confused label pairs" in [s.value for s in app.subheader]
    assert "Confusion matrices (one colour scale)" not in [s.value for s in app.subheader]
    pairs = next(d.value for d in app.dataframe if list(d.value.columns) == ["run", "true", "pred", "count"])
    assert (
        0 < len(pairs) <= 25
        and (pairs["true"] != pairs["pred"]).all()
        and list(pairs["count"]) == sorted(pairs["count"], reverse=True)
    )
    app.text_input(key=scoped(app, "cmp_confused_search")).input("intent_07_").run()
    pairs = next(d.value for d in app.dataframe if list(d.value.columns) == ["run", "true", "pred", "count"])
    assert len(pairs) and pairs.apply(lambda r: "intent_07_" in r["true"] or "intent_07_" in r["pred"], axis=1).all()


def test_length_chart_counts_tokens_of_a_sample_of_a_large_dataset():
    """Above 10,000 texts the length chart is drawn from a seeded sample of 10,000, and its caption says so."""
    import streamlit as st

    st.cache_data.clear()
    frames = {
        s: pd.DataFrame(
            {
                "text": [f"{s} row {i} says {'yes' if i % 2 else 'no'}" for i in range(n)],
                "label": ["a" if i % 2 else "b" for i in range(n)],
            }
        )
        for s, n in (("train", 9000), ("test", 1500))
    }
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    preload(app, data.finish("big", "big.csv", frames, ["a", "b"], "text", "label", []))
    at = app.run()
    assert not at.exception
    assert any("longest" in c.value and "(a random 10,000 of 10,500 texts)" in c.value for c in at.caption)


def test_empty_pages_suggest_commands_for_the_loaded_dataset(runs_dir, at):
    """The hints said `--train reviews --eval reviews` whatever dataset was loaded."""
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    hint = at.info[0].value
    assert "on this dataset" in hint and "python -m core efficiency --train many.csv --eval many.csv" in hint
    at.switch_page("app_pages/prompting.py").run()
    assert any("python -m core prompt --train many.csv --eval many.csv" in i.value for i in at.info)
