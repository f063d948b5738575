"""AppTests of the model-behaviour explorer: label errors on the Data page (and Compare's caveat), the Explore runs page."""

from __future__ import annotations

from tests.compare_fixtures import make_run


def test_data_page_lists_suspected_label_errors_and_compare_counts_them_in_its_caveats(open_page, runs_dir):
    make_run(runs_dir, "prompt-a", 0.7, seed=1)
    make_run(runs_dir, "ft-b", 0.8, kind="finetune", seed=2)
    at = open_page("app_pages/data.py", data_label_errors=True)
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "suspected_label" in d.value.columns)
    assert 0 < len(table) <= 20 and (table["label"] != table["suspected_label"]).all()
    assert list(table.columns)[:6] == ["rank", "split", "id", "text", "label", "suspected_label"]
    assert any(c.value.startswith("train: ") and " of 462 rows" in c.value for c in at.caption)
    assert at.get("download_button")
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    assert any("of the 99 rows of the test split" in w.value and "look mislabelled" in w.value for w in at.warning)


def test_compare_has_no_label_error_caveat_before_the_data_page_looked(runs_dir, open_page):
    make_run(runs_dir, "prompt-a", 0.7, seed=1)
    make_run(runs_dir, "ft-b", 0.8, kind="finetune", seed=2)
    at = open_page("app_pages/compare.py")
    assert not at.exception and not any("look mislabelled" in w.value for w in at.warning)
