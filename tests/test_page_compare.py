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
    assert set(metrics["run"]) == {"prompt-8shot", "finetune-lora", "majority", "stratified random"}
    assert metrics["accuracy"].str.contains(r"\[").all()
    assert list(at.dataframe[1].value.columns) == ["run", "f1_negative", "f1_neutral", "f1_positive"]  # per class, apart
    assert len(at.dataframe[2].value) == 1  # McNemar: one pair
    assert at.dataframe[3].value.to_numpy().sum() == 60  # the 2x2 agreement table
    assert len(at.get("vega_lite_chart")) >= 5  # intervals, confusions, probabilities, reliability, efficiency
    all_rows = len(at.dataframe[4].value)
    assert all_rows == 60
    at.radio(key=scoped(at, "cmp_cell")).set_value("both wrong").run()
    both_wrong = at.dataframe[4].value
    assert len(both_wrong) < all_rows and (both_wrong["agreement"] == "both wrong").all()
    at.selectbox(key=scoped(at, "cmp_label")).set_value("neutral").run()
    assert set(at.dataframe[4].value["label"]) <= {"neutral"}
    assert not at.exception


def test_compare_page_offers_only_runs_on_the_chosen_split(runs_dir):
    make_run(runs_dir, "a", 0.6, eval_sha256="split-one")
    make_run(runs_dir, "a2", 0.7, eval_sha256="split-one", seed=3)
    make_run(runs_dir, "b", 0.7, eval_sha256="split-two")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app_pages/compare.py").run()
    at.checkbox(key=scoped(at, "cmp_all_datasets")).check().run()  # none of the runs is on the dataset the sidebar loaded
    split = at.selectbox(key=scoped(at, "cmp_split"))
    assert split.value == "split-one" and split.options == [
        "reviews · split split-on · 2 run(s)",
        "reviews · split split-tw · 1 run(s)",
    ]
    runs = at.multiselect(key=scoped(at, "cmp_runs"))
    assert sorted(o.split(" · ")[0] for o in runs.options) == ["a", "a2"]  # the run on another split is not offered
    assert set(runs.value) == {str(runs_dir / "a"), str(runs_dir / "a2")}
    at.selectbox(key=scoped(at, "cmp_split")).set_value("split-two").run()
    assert len(at.multiselect(key=scoped(at, "cmp_runs")).options) == 1 and not at.exception


def test_compare_page_opens_with_the_verdict_and_flags_weak_and_budget_runs(runs_dir):
    make_run(runs_dir, "prompt-0shot", 0.0, seed=1)  # always wrong: below the majority baseline
    make_run(
        runs_dir,
        "finetune-full",
        0.85,
        kind="finetune",
        seed=2,
        config_extra={"epochs": 3.0},
        metrics_extra={"stopped_by": "max_train_seconds", "epochs_done": 1.6, "train_seconds": 120.0},
    )
    at = _open(runs_dir)
    assert not at.exception
    assert at.info[0].value.startswith(
        "**Verdict:** Fine-tuning beats prompting: the best fine-tune run 'finetune-full' reaches macro-F1"
    )
    warnings = [w.value for w in at.warning]
    assert any("'finetune-full' was stopped by its time budget after 1.6 of 3 epochs" in w for w in warnings)
    assert any("'prompt-0shot' does not beat the majority baseline" in w for w in warnings)
    assert any("Only 60 evaluation examples" in w for w in warnings)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["prompt-0shot", "warnings"] == "below majority" and table.loc["finetune-full", "warnings"] == "time budget"
    assert table.loc["majority", "kind"] == "baseline" and table.loc["finetune-full", "train s"] == "120"


def test_the_efficiency_chart_waits_for_runs_of_two_sizes(runs_dir):
    """Two runs of one size drew a chart of one column of dots against an empty log axis."""

    def efficiency_charts(at):
        return [c for c in at.get("vega_lite_chart") if "labelled training examples" in c.proto.spec]

    make_run(runs_dir, "lora-a", 0.8, kind="finetune", seed=1, n_train_examples=256)
    make_run(runs_dir, "lora-b", 0.7, kind="finetune", seed=2, n_train_examples=256)
    at = _open(runs_dir)
    assert not efficiency_charts(at) and any("drawn once runs differ in size" in c.value for c in at.caption)
    make_run(runs_dir, "prompt-8", 0.6, seed=3, n_train_examples=8)
    at = _open(runs_dir)
    assert len(efficiency_charts(at)) == 1
