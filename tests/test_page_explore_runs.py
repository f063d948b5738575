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


def test_explore_page_shows_slices_map_and_explains_a_run_it_cannot_perturb(open_page, runs_dir):
    from tests.scoped import scoped

    make_run(runs_dir, "prompt-a", 0.95, seed=1)
    make_run(runs_dir, "ft-b", 0.3, kind="finetune", seed=2)
    at = open_page("app_pages/explore.py")
    assert not at.exception and not at.error
    assert at.title[0].value == "Explore runs"
    slices = next(d.value for d in at.dataframe if "difference" in d.value.columns)
    assert set(slices["run"]) == {"prompt-a", "ft-b"} and slices["accuracy"].str.contains(r"\[").all()
    at.selectbox(key=scoped(at, "exp_by")).set_value("label").run()
    slices = next(d.value for d in at.dataframe if "difference" in d.value.columns)
    assert (
        set(slices["slice"]) == {"negative", "neutral", "positive"} and slices["difference"].str.endswith("prompt-a better").any()
    )
    assert not at.get("vega_lite_chart")  # the map embeds the split only once its tab is open
    at.session_state[scoped(at, "exp_tab")] = "Embedding map"
    at.run()
    assert len(at.get("vega_lite_chart")) == 1  # the map
    rows = next(d.value for d in at.dataframe if "colour" in d.value.columns)
    assert len(rows) == 60 and set(rows["colour"]) == {"negative", "neutral", "positive"}
    at.selectbox(key=scoped(at, "exp_colour")).set_value("agreement of runs").run()
    rows = next(d.value for d in at.dataframe if "colour" in d.value.columns)
    assert set(rows["colour"]) <= {"all right", "all wrong", "only prompt-a right", "only ft-b right"}
    at.button(key=scoped(at, "exp_run_robustness")).click().run()
    assert any("is missing (deleted?)" in e.value for e in at.error)  # these test runs were written without one
    at.toggle(key=scoped(at, "exp_report")).set_value(True).run()
    assert not at.exception and at.get("download_button")


def test_explore_page_refuses_a_bad_regular_expression_in_one_sentence(open_page, runs_dir):
    from tests.scoped import scoped

    make_run(runs_dir, "prompt-a", 0.9, seed=1)
    at = open_page("app_pages/explore.py")
    at.selectbox(key=scoped(at, "exp_by")).set_value("regex").run()
    at.text_input(key=scoped(at, "exp_regex")).input("(refund").run()
    assert not at.exception and any("is not valid" in e.value for e in at.error)


def test_an_example_on_the_map_opens_in_compares_error_browser(open_page, runs_dir):
    from tests.scoped import scoped

    a, b = make_run(runs_dir, "prompt-a", 0.9, seed=1), make_run(runs_dir, "ft-b", 0.5, kind="finetune", seed=2)
    at = open_page("app_pages/explore.py", exp_tab="Embedding map")
    assert not at.exception
    at.selectbox(key=scoped(at, "exp_map_pick")).set_value("ex007").run()
    at.button(key=scoped(at, "exp_to_compare")).click().run()
    assert not at.exception
    assert at.selectbox(key=scoped(at, "cmp_example")).value == "ex007"
    assert sorted(at.multiselect(key=scoped(at, "cmp_runs")).value) == sorted([str(a), str(b)])


def test_the_report_carries_the_pages_label_error_caveat(runs_dir):
    from core.comparison import evaluate, report

    cmp = evaluate.compare_runs(
        [make_run(runs_dir, "a", 0.7, seed=1), make_run(runs_dir, "b", 0.8, kind="finetune", seed=2)], n_resamples=50
    )
    html = report.build_report(cmp, more_caveats=["12 of the 99 rows of the test split look mislabelled."])
    assert '<p class="caveat">Caveat: 12 of the 99 rows of the test split look mislabelled.</p>' in html


def test_the_maps_colour_survives_a_visit_to_another_tab(open_page, runs_dir):
    """The map tab runs only when open (lazy tabs), and a widget not drawn in a run loses its value."""
    from tests.scoped import scoped

    make_run(runs_dir, "prompt-a", 0.95, seed=1)
    make_run(runs_dir, "ft-b", 0.3, kind="finetune", seed=2)
    at = open_page("app_pages/explore.py", exp_tab="Embedding map")
    at.selectbox(key=scoped(at, "exp_colour")).set_value("agreement of runs").run()
    at.session_state[scoped(at, "exp_tab")] = "Slices"
    at.run()
    at.session_state[scoped(at, "exp_tab")] = "Embedding map"
    at.run()
    assert at.selectbox(key=scoped(at, "exp_colour")).value == "agreement of runs"
