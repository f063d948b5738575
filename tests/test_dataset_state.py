"""Page state belongs to the dataset: a switch in the sidebar (or an upload) never carries a value over, every page
starts on "all labels" and "its runs", and the Compare selection survives other pages (AppTests through streamlit_app.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import data
from core.runs import RunDir, evaluated_on, of_dataset
from tests.compare_fixtures import REVIEWS_TEST, make_run
from tests.scoped import scoped
from ui.state import Scope

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = data.load_sample("reviews")
SUPPORT = data.load_sample("support_intents")
SUPPORT_TEST = SUPPORT.fingerprint("test")


@pytest.fixture
def app():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)


def switch(at: AppTest, sample: str) -> AppTest:
    """Choose another bundled sample in the sidebar (set as state: AppTest drops sidebar widgets under st.navigation)."""
    at.session_state["ds_sample"] = sample
    return at.run()


def rows_caption(at: AppTest) -> str:
    """'N of M rows' (without the page range the Data page adds when the table has several pages)."""
    return next(c.value.split(" · ")[0] for c in at.caption if re.match(r"\d+ of \d+ rows", c.value))


def pets_csv(n: int = 40) -> bytes:
    return (
        "text,label\n"
        + "\n".join(f"text number {i} about {'cats' if i % 2 else 'dogs'},{'cat' if i % 2 else 'dog'}" for i in range(n))
    ).encode()


# ---- core helpers ------------------------------------------------------------------------------


def test_scope_names_a_dataset_by_its_labels_and_splits():
    reviews = data.load_sample("reviews")
    a, b = Scope.of(reviews), Scope.of(data.load_sample("reviews"))
    assert a == b and a.key("x") == b.key("x") != Scope.of(SUPPORT).key("x")
    assert a.fingerprints["test"] == REVIEWS_TEST == reviews.fingerprint("test")
    relabelled = data.Dataset(reviews.name, reviews.source, reviews.splits, list(reversed(reviews.label_names)))
    assert Scope.of(relabelled).id != a.id


def test_runs_of_a_dataset_are_those_evaluated_on_one_of_its_splits(runs_dir):
    from core.runs import RunRegistry

    make_run(runs_dir, "on-reviews", 0.7)
    make_run(runs_dir, "on-support", 0.7, eval_sha256=SUPPORT_TEST)
    listing = RunRegistry(runs_dir).list()
    assert list(of_dataset(listing, Scope.of(SUPPORT).fingerprints.values())["name"]) == ["on-support"]
    assert of_dataset(listing, ["nothing"]).empty
    unknown = pd.concat([listing, listing.iloc[:1].assign(name="broken", eval_sha256="")])
    assert set(of_dataset(unknown, [SUPPORT_TEST], keep_unknown=True)["name"]) == {"on-support", "broken"}
    assert evaluated_on({"dataset": {"eval_sha256": SUPPORT_TEST}}, [SUPPORT_TEST])
    assert not evaluated_on({"dataset": "corrupt"}, [SUPPORT_TEST]) and not evaluated_on({}, [SUPPORT_TEST])


# ---- a switch on every page ----------------------------------------------------------------------


def test_data_page_after_a_switch_shows_every_row_of_the_new_dataset(app):
    at = app.run()
    at.multiselect(key=scoped(at, "data_labels")).set_value(["negative"]).run()
    at.text_input(key=scoped(at, "data_search")).input("battery").run()
    assert rows_caption(at) != "660 of 660 rows"
    switch(at, "support_intents")
    assert not at.exception
    assert rows_caption(at) == "679 of 679 rows"  # was "0 of 679 rows": the old labels stayed in the filter
    assert at.multiselect(key=scoped(at, "data_labels")).value == SUPPORT.label_names
    assert at.text_input(key=scoped(at, "data_search")).value == ""
    assert any(c.value.startswith("**support_intents**") for c in at.sidebar.caption)


def test_prompting_label_words_after_a_switch_are_the_new_labels(app, runs_dir):
    from core.prompting import default_word

    def words(at) -> list[str]:
        return next(e.value["word"].tolist() for e in at.dataframe if list(e.value.columns) == ["label", "word"])

    at = app.run()
    at.switch_page("app_pages/prompting.py").run()
    at.text_input(key=scoped(at, "pr_shots")).set_value("0").run()
    assert words(at) == [default_word(lab) for lab in REVIEWS.label_names]
    switch(
        at, "support_intents"
    )  # (AppTest cannot type into a data editor; the table is keyed per dataset, so edits stay behind)
    assert not at.exception
    assert words(at) == [default_word(lab) for lab in SUPPORT.label_names]  # were "negative/neutral/positive" words kept
    assert at.text_input(key=scoped(at, "pr_shots")).value == "4"


def test_prompting_job_box_belongs_to_the_dataset_that_started_it(app, runs_dir):
    at = app.run()
    at.switch_page("app_pages/prompting.py").run()
    RunDir(runs_dir / "reviews-job").create({"kind": "prompt"})  # queued, as a job just launched
    at.session_state[scoped(at, "prompt_job")] = ["reviews-job"]  # as the Run button leaves it
    at.run()
    assert any("reviews-job" in s.value for s in at.subheader) and at.get("progress")
    switch(at, "support_intents")
    assert not at.exception and not at.get("progress") and not any("reviews-job" in s.value for s in at.subheader)
    switch(at, "reviews")
    assert any("reviews-job" in s.value for s in at.subheader) and at.get("progress")


@pytest.mark.parametrize(
    ("page", "kind", "name", "value", "default"),
    [
        ("app_pages/tokenization.py", "number_input", "tok_max_length", 128, 64),
        ("app_pages/finetune.py", "number_input", "ft_epochs", 1.0, 3.0),
        ("app_pages/runs.py", "text_input", "runs_filter", "lora", ""),
        ("app_pages/attention.py", "slider", "att_max_tokens", 32, 64),
    ],
)
def test_other_pages_start_from_their_defaults_after_a_switch(app, runs_dir, page, kind, name, value, default):
    make_run(runs_dir, "on-reviews", 0.7)  # so the Runs page has a widget past its empty-state message
    at = app.run()
    at.switch_page(page).run()
    getattr(at, kind)(key=scoped(at, name)).set_value(value).run()
    assert getattr(at, kind)(key=scoped(at, name)).value == value
    switch(at, "support_intents")
    assert not at.exception
    assert getattr(at, kind)(key=scoped(at, name)).value == default


def test_attention_text_is_the_new_dataset_s_example_after_a_switch(app, runs_dir):
    at = app.run()
    at.switch_page("app_pages/attention.py").run()
    assert at.text_area(key=scoped(at, "att_text")).value == data.load_sample("reviews").splits["train"]["text"].iloc[0]
    switch(at, "support_intents")
    assert at.text_area(key=scoped(at, "att_text")).value == SUPPORT.splits["train"]["text"].iloc[0]


def test_compare_and_runs_list_only_the_runs_of_the_current_dataset(app, runs_dir):
    for name in ("rev-a", "rev-b"):
        make_run(runs_dir, name, 0.7)
    for name in ("sup-a", "sup-b"):
        make_run(runs_dir, name, 0.7, eval_sha256=SUPPORT_TEST, labels=SUPPORT.label_names)
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    assert {Path(p).name for p in at.multiselect(key=scoped(at, "cmp_runs")).value} == {"rev-a", "rev-b"}
    assert {o.split(" · ")[0] for o in at.multiselect(key=scoped(at, "cmp_runs")).options} == {"rev-a", "rev-b"}
    switch(at, "support_intents")
    assert not at.exception
    assert {Path(p).name for p in at.multiselect(key=scoped(at, "cmp_runs")).value} == {"sup-a", "sup-b"}
    assert set(at.dataframe[0].value["run"]) >= {"sup-a", "sup-b"}
    at.checkbox(key=scoped(at, "cmp_all_datasets")).check().run()
    assert len(at.selectbox(key=scoped(at, "cmp_split")).options) == 2  # every dataset's splits; runs offered from the chosen one
    assert {o.split(" · ")[0] for o in at.multiselect(key=scoped(at, "cmp_runs")).options} == {"sup-a", "sup-b"}
    at.switch_page("app_pages/runs.py").run()
    assert set(at.dataframe[0].value["name"]) == {"sup-a", "sup-b"}


def test_compare_selection_survives_other_pages_and_is_what_the_report_holds(app, runs_dir):
    paths = [str(make_run(runs_dir, f"run-{i}", 0.5 + i / 10, seed=i)) for i in range(3)]
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    at.multiselect(key=scoped(at, "cmp_runs")).set_value([paths[0], paths[2]]).run()
    assert set(at.dataframe[0].value["run"]) >= {"run-0", "run-2"} and "run-1" not in set(at.dataframe[0].value["run"])
    at.switch_page("app_pages/data.py").run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    assert at.multiselect(key=scoped(at, "cmp_runs")).value == [paths[0], paths[2]]  # was reset to the first two runs
    shown = set(at.dataframe[0].value["run"])
    assert {"run-0", "run-2"} <= shown and "run-1" not in shown  # metrics, and the report built from the same comparison
    switch(at, "support_intents")
    switch(at, "reviews")
    at.switch_page("app_pages/compare.py").run()
    assert at.multiselect(key=scoped(at, "cmp_runs")).value == [paths[0], paths[2]]  # kept per dataset


# ---- uploads and fresh sessions ------------------------------------------------------------------


def test_an_upload_in_a_fresh_session_shows_all_its_rows(app):
    at = app.run()  # a fresh session opens on the reviews sample
    assert rows_caption(at) == "660 of 660 rows"
    at.session_state["ds_kind"] = "File"
    at.run()
    at.get("file_uploader")[0].set_value(("pets.csv", pets_csv(), "text/csv"))
    at.run()
    assert not at.exception
    assert rows_caption(at) == "40 of 40 rows"  # was "0 of 40 rows": the reviews labels stayed in the filter
    assert at.multiselect(key=scoped(at, "data_labels")).value == ["cat", "dog"]
    fresh = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    fresh.session_state["ds_kind"] = "File"
    fresh.run()
    fresh.get("file_uploader")[0].set_value(("pets.csv", pets_csv(), "text/csv"))
    fresh.run()
    assert rows_caption(fresh) == "40 of 40 rows"


def test_a_file_that_cannot_be_read_leaves_no_old_dataset_behind(app):
    at = app
    at.session_state["ds_kind"] = "File"
    at.run()
    at.get("file_uploader")[0].set_value(("pets.csv", pets_csv(), "text/csv"))
    at.run()
    assert any(c.value.startswith("**pets.csv**") for c in at.sidebar.caption)
    at.get("file_uploader")[0].set_value(("one.csv", b"text,label\nonly one class,a\nanother,a\n", "text/csv"))
    at.run()
    assert not at.exception and at.sidebar.error
    assert not any("pets.csv" in c.value for c in at.sidebar.caption)  # the caption named the previous file
    assert any("Choose a dataset" in i.value for i in at.info)


def test_hugging_face_source_before_loading_shows_no_other_dataset(app):
    at = app.run()
    at.session_state["ds_kind"] = "Hugging Face"
    at.run()
    assert not at.exception
    assert not any("reviews" in c.value for c in at.sidebar.caption)
    assert any("Choose a dataset" in i.value for i in at.info)
