"""AppTest of the Compare page through the app's entry point, on run directories written by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.compare_fixtures import make_run
from tests.scoped import scoped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clear_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def _open(runs_dir) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    return at


def test_compare_page_without_runs_explains_how_to_make_them(runs_dir):
    at = _open(runs_dir)
    assert any("at least two finished runs" in i.value for i in at.info)


def test_compare_page_shows_metrics_tests_charts_and_filters(runs_dir):
    make_run(runs_dir, "prompt-8shot", 0.55, seed=1, n_train_examples=8)
    make_run(runs_dir, "finetune-lora", 0.85, kind="finetune", seed=2, n_train_examples=256)
    at = _open(runs_dir)
    assert len(at.multiselect(key=scoped(at, "cmp_runs")).value) == 2
    metrics = at.dataframe[0].value
    assert set(metrics["run"]) == {"prompt-8shot", "finetune-lora"} and metrics["accuracy"].str.contains(r"\[").all()
    assert len(at.dataframe[1].value) == 1  # McNemar: one pair
    assert at.dataframe[2].value.to_numpy().sum() == 60  # the 2x2 agreement table
    assert len(at.get("vega_lite_chart")) >= 5  # intervals, confusions, probabilities, reliability, efficiency
    all_rows = len(at.dataframe[3].value)
    assert all_rows == 60
    at.radio(key=scoped(at, "cmp_cell")).set_value("both wrong").run()
    both_wrong = at.dataframe[3].value
    assert len(both_wrong) < all_rows and (both_wrong["agreement"] == "both wrong").all()
    at.selectbox(key=scoped(at, "cmp_label")).set_value("neutral").run()
    assert set(at.dataframe[3].value["label"]) <= {"neutral"}
    assert not at.exception


def test_compare_page_refuses_mismatched_splits(runs_dir):
    make_run(runs_dir, "a", 0.6, eval_sha256="split-one")
    make_run(runs_dir, "b", 0.7, eval_sha256="split-two")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app_pages/compare.py").run()
    at.checkbox(key=scoped(at, "cmp_all_datasets")).check().run()  # neither run is on the dataset the sidebar loaded
    at.multiselect(key=scoped(at, "cmp_runs")).set_value([str(runs_dir / "a"), str(runs_dir / "b")]).run()
    assert not at.exception
    assert any("different splits" in e.value for e in at.error)
