"""AppTest of the Playground: runs side by side on a typed text and on an evaluation example, saliency where a run has
it, and an example the runs disagree on opened in Compare's error browser."""

from __future__ import annotations

import pandas as pd
import pytest

from core.cli import main
from tests.scoped import scoped


@pytest.fixture
def two_runs(runs_dir, tiny_bert_dir, tiny_llama_dir):
    """A logreg run and a zero-shot prompt run on the reviews test split (tiny random models, so they disagree somewhere)."""
    assert (
        main(
            [
                "finetune",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_bert_dir),
                "--method",
                "logreg",
                "--max-train-examples",
                "48",
                "--dev",
                "none",
                "--out",
                "lr",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_llama_dir),
                "--calibrate",
                "none",
                "--out",
                "zero",
            ]
        )
        == 0
    )
    return [str(runs_dir / "lr"), str(runs_dir / "zero")]


def test_without_finished_runs_the_page_says_where_to_start(runs_dir, open_page):
    at = open_page("app_pages/playground.py")
    assert not at.exception and "No finished run yet" in at.info[0].value


def test_typed_text_shows_each_run_with_saliency_where_available(two_runs, open_page):
    at = open_page("app_pages/playground.py")
    assert not at.exception
    assert sorted(at.multiselect(key=scoped(at, "pg_runs")).value) == sorted(two_runs)
    at.text_area(key=scoped(at, "pg_text")).set_value("**bold** <b>claim</b> [link](http://x)").run()
    assert not at.exception
    assert sorted(s.value for s in at.subheader) == ["lr", "zero"]
    assert len(at.metric) == 2 and all(m.value in ("negative", "neutral", "positive") for m in at.metric)
    tables = [d.value for d in at.dataframe]
    assert all(abs(t["probability"].sum() - 1) < 1e-3 for t in tables)
    assert len([c for c in at.get("vega_lite_chart") if "attribution" in c.proto.spec]) == 1  # the classifier only
    assert any("Token saliency: not available for prompt runs" in c.value for c in at.caption)
    assert not any("<b>" in m.value or "**bold**" in m.value for m in at.markdown)  # the text is never rendered as Markdown


def test_a_disagreement_opens_in_compare_with_the_example_selected(two_runs, runs_dir, open_page):
    lr = pd.read_csv(runs_dir / "lr" / "predictions.csv", dtype={"id": str})
    zero = pd.read_csv(runs_dir / "zero" / "predictions.csv", dtype={"id": str})
    differ = lr[lr["pred"].to_numpy() != zero.set_index("id").loc[lr["id"], "pred"].to_numpy()]
    assert len(differ), "the two random models agree everywhere"
    same = lr[~lr["id"].isin(differ["id"])]
    at = open_page("app_pages/playground.py")
    if len(same):  # an example they agree on offers no link
        at.selectbox(key=scoped(at, "pg_example")).set_value(same["id"].iloc[0]).run()
        assert not at.exception and not any(b.key == scoped(at, "pg_to_compare") for b in at.button)
    example = differ["id"].iloc[0]
    at.selectbox(key=scoped(at, "pg_example")).set_value(example).run()
    assert not at.exception
    assert at.text_area(key=scoped(at, "pg_text")).value == differ["text"].iloc[0]
    assert {m.value for m in at.metric} == {
        differ["pred"].iloc[0],
        zero.set_index("id").loc[example, "pred"],
    }  # as predictions.csv
    at.button(key=scoped(at, "pg_to_compare")).click().run()
    assert not at.exception
    assert at.selectbox(key=scoped(at, "cmp_example")).value == example
    assert sorted(at.multiselect(key=scoped(at, "cmp_runs")).value) == sorted(two_runs)
