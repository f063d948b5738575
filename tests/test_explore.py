"""core.explore: slices of the evaluation split (metrics, intervals, prompt-vs-fine-tune tests) checked by hand."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from core import explore
from core.errors import UserError
from tests.compare_fixtures import make_run


def joined_frame(texts, labels, preds: dict[str, list[str]]) -> pd.DataFrame:
    """A joined predictions frame (as evaluate.join_predictions makes) from texts, true labels and each run's predictions."""
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": labels})
    for run, pred in preds.items():
        frame[f"pred@{run}"] = pred
        frame[f"confidence@{run}"] = 0.9
        frame[f"correct@{run}"] = frame[f"pred@{run}"] == frame["label"]
    return frame


def test_negation_slices_match_hand_computed_metrics_and_list_the_significant_slice_first():
    # 10 plain rows first, then 30 with 'not': the prompt run is wrong on 20 of the negated rows, the fine-tune on none
    texts = [f"a fine day number {i}" for i in range(10)] + [f"it is not good {i}" for i in range(30)]
    labels = ["pos", "neg"] * 5 + ["neg"] * 30
    prompt = labels[:10] + ["pos"] * 20 + ["neg"] * 10
    report = explore.slice_report(
        joined_frame(texts, labels, {"p": prompt, "f": labels}),
        {"p": "prompt", "f": "finetune"},
        ["neg", "pos"],
        "negation",
        n_resamples=200,
    )
    assert report.table["slice"].iloc[0] == "with negation word"  # significant, so first although the plain rows come first
    row = report.table.set_index(["slice", "run"])
    assert row.loc[("with negation word", "p"), "accuracy"] == pytest.approx(10 / 30)
    # macro-F1 over the classes present in the slice (neg only): precision 1, recall 1/3 -> F1 = 2 * (1/3) / (1 + 1/3) = 0.5
    assert row.loc[("with negation word", "p"), "macro_f1"] == pytest.approx(0.5)
    assert row.loc[("with negation word", "f"), "accuracy"] == 1.0 and row.loc[("without negation word", "p"), "accuracy"] == 1.0
    assert row.loc[("with negation word", "p"), "accuracy_low"] < 10 / 30 < row.loc[("with negation word", "p"), "accuracy_high"]
    tests = report.tests.set_index("slice")
    assert tests.loc["with negation word", "only_b_right"] == 20 and tests.loc["with negation word", "only_a_right"] == 0
    assert tests.loc["with negation word", "p_value"] == pytest.approx(2 * 0.5**20)  # exact binomial, 0 of 20
    assert tests.loc["with negation word", "p_holm"] == pytest.approx(2 * 2 * 0.5**20)  # two tests: Holm doubles the smallest
    assert tests.loc["with negation word", "significant"] and not tests.loc["without negation word", "significant"]
    shown = explore.format_slices(report)
    assert shown.loc[0, "difference"].endswith("*, f better") and shown.loc[0, "accuracy"].startswith("0.333 [")


def test_holm_adjusts_step_down_and_stays_monotone():
    assert explore.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("numbers", {"with a number": 2, "without a number": 2}),
        ("regex:refund|money", {"matches /refund|money/": 2, "does not match /refund|money/": 2}),
        ("label", {"a": 3, "b": 1}),
    ],
)
def test_text_slices_count_the_rows_they_hold(by, expected):
    frame = pd.DataFrame({"text": ["refund 20 now", "no money", "call me at 5", "hello"], "label": ["a", "a", "a", "b"]})
    assert explore.slice_labels(frame, by).value_counts().to_dict() == expected


def test_length_bins_are_word_quartiles_named_by_their_edges():
    frame = pd.DataFrame({"text": [" ".join(["w"] * k) for k in range(1, 9)], "label": "x"})
    bins = explore.slice_labels(frame, "length")
    assert bins.tolist() == ["1–2.75 words"] * 2 + [">2.75–4.5 words"] * 2 + [">4.5–6.25 words"] * 2 + [">6.25–8 words"] * 2
    same = pd.DataFrame({"text": ["two words"] * 3, "label": "x"})
    assert explore.slice_labels(same, "length").tolist() == ["2 words"] * 3  # one bin when every text is as long


def test_column_slices_read_extra_columns_matched_on_text_and_bin_numbers(tmp_path):
    texts = [f"text {i}" for i in range(40)]
    joined = joined_frame(texts, ["a", "b"] * 20, {"p": ["a"] * 40, "f": ["a", "b"] * 20})
    extra = pd.DataFrame({"text": texts[::-1], "source": (["web", "mail"] * 20)[::-1], "stars": range(40)})
    report = explore.slice_report(joined, {"p": "prompt", "f": "finetune"}, ["a", "b"], "column:source", extra, n_resamples=100)
    assert set(report.table["slice"]) == {"source = web", "source = mail"} and set(report.table["n"]) == {20}
    binned = explore.slice_report(joined, {"p": "prompt", "f": "finetune"}, ["a", "b"], "column:stars", extra, n_resamples=100)
    assert binned.table["slice"].nunique() == explore.LENGTH_BINS


@pytest.mark.parametrize(
    ("by", "words"), [("size", "none of these"), ("regex:(unclosed", "not valid"), ("column:", "none of these")]
)
def test_bad_slice_specs_are_one_sentence(by, words):
    with pytest.raises(UserError, match=words):
        explore.parse_by(by)


def test_unknown_column_names_the_extra_columns():
    frame = pd.DataFrame({"text": ["x"], "label": ["a"], "source": ["web"]})
    with pytest.raises(UserError, match="no column 'stars'.*source"):
        explore.slice_labels(frame, "column:stars")


def test_slices_of_finished_runs_use_their_joined_predictions(runs_dir):
    a = make_run(runs_dir, "prompt-a", 0.9, seed=1)
    b = make_run(runs_dir, "ft-b", 0.5, kind="finetune", seed=2)
    joined, kinds, labels = explore.load_joined([a, b])
    report = explore.slice_report(joined, kinds, labels, "label", n_resamples=100)
    assert report.table["slice"].unique().tolist() == labels or report.tests["significant"].any()
    per_label = report.table[report.table["run"] == "ft-b"].set_index("slice")["accuracy"]
    truth = joined.assign(ok=joined["pred@ft-b"] == joined["label"]).groupby("label")["ok"].mean()
    assert per_label.sort_index().tolist() == pytest.approx(truth.sort_index().tolist())
    one, kinds_one, _ = explore.load_joined([a])
    assert kinds_one == {"prompt-a": "prompt"} and len(one) == 60


def separable_dataset(n_per_class: int = 60, seed: int = 0):
    """Three well-separated Gaussian clusters as 'embeddings', a Dataset over them, and the rows whose labels were flipped:
    two per class, one to each other class (a pair of rows flipped alike would teach a flexible model their wrong label)."""
    from core.data import Dataset

    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"]
    y = np.repeat(np.arange(3), n_per_class)
    x = rng.normal(0, 0.3, size=(len(y), 8)) + 4 * np.eye(8)[y]  # (N, 8): cluster k sits at 4 e_k
    flipped = np.array([k * n_per_class + j for k in range(3) for j in (0, 1)])
    given = y.copy()
    given[flipped] = (y[flipped] + np.tile([1, 2], 3)) % 3
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(len(y))], "text": [f"row {i}" for i in range(len(y))], "label": [labels[i] for i in given]}
    )
    half = len(y) // 2
    order = rng.permutation(len(y))
    splits = {"train": frame.iloc[order[:half]].reset_index(drop=True), "test": frame.iloc[order[half:]].reset_index(drop=True)}
    embeddings = x[np.concatenate([order[:half], order[half:]])]
    return (
        Dataset(name="synthetic", source="synthetic", splits=splits, label_names=labels),
        embeddings,
        frame.iloc[flipped],
        y[flipped],
    )


def test_cleanlab_finds_planted_flipped_labels_on_separable_data():
    ds, embeddings, planted, truth = separable_dataset()
    issues = explore.label_issues(ds, embeddings=embeddings)
    assert set(issues["id"]) == set(planted["id"])  # every flipped row, and nothing else
    suspected = issues.set_index("id")["suspected_label"]
    assert [suspected[i] for i in planted["id"]] == [["a", "b", "c"][k] for k in truth]  # the label before the flip
    assert issues["rank"].tolist() == list(range(1, len(issues) + 1))
    assert (issues["label_probability"].diff().dropna() >= 0).all()  # least likely given label first
    assert set(issues["split"]) <= {"train", "test"}


def test_label_error_caveat_only_when_the_evaluation_split_holds_many():
    issues = pd.DataFrame({"split": ["test"] * 3 + ["train"] * 50})
    assert explore.label_error_caveat(issues, "test", 200) is None  # 1.5%
    caveat = explore.label_error_caveat(issues, "test", 100)
    assert caveat.startswith("3 of the 100 rows of the test split (3%) look mislabelled")


def test_label_errors_refuse_an_unknown_split():
    ds, embeddings, _, _ = separable_dataset()
    with pytest.raises(UserError, match="no split 'dev'"):
        explore.label_issues(ds, ["dev"], embeddings=embeddings)


def test_pca_map_keeps_the_two_directions_of_largest_spread():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 6))
    x[:, 2], x[:, 4] = rng.normal(0, 5, 200), rng.normal(0, 2, 200)  # all the variance lies in dimensions 2 and 4
    coords = explore.project(x)
    assert coords.shape == (200, 2)
    assert abs(np.corrcoef(coords[:, 0], x[:, 2])[0, 1]) > 0.99 and abs(np.corrcoef(coords[:, 1], x[:, 4])[0, 1]) > 0.99


def test_map_colours_by_agreement_and_groups_rare_labels_into_other():
    texts = [f"t{i}" for i in range(24)]
    labels = [f"label{i % 12}" for i in range(24)]  # 12 labels: two more than the map colours
    joined = joined_frame(texts, labels, {"p": labels[:12] + ["x"] * 12, "f": labels[:6] + ["x"] * 6 + labels[12:]})
    coords = np.arange(48, dtype=float).reshape(24, 2)
    agree = explore.map_frame(joined, coords, "agreement of runs")["colour"]
    assert agree.tolist() == ["all right"] * 6 + ["only p right"] * 6 + ["only f right"] * 12
    by_label = explore.map_frame(joined, coords, "label")["colour"]
    assert by_label.nunique() == explore.MAP_COLOURS + 1 and (by_label == "other").sum() == 4
    wrong = explore.map_frame(joined, coords, "correct of f")
    assert (wrong["colour"] == "wrong").sum() == 6
    inside = explore.in_box(wrong, {"x": [10, 0], "y": [0, 11]})  # a brushed box, edges in any order
    assert inside["id"].tolist() == ["r0", "r1", "r2", "r3", "r4", "r5"]
    with pytest.raises(UserError, match="no run 'z'"):
        explore.map_frame(joined, coords, "prediction of z")


def test_perturbations_change_what_they_name_and_are_seeded():
    text = "The movie was great, 10 out of 10!"
    assert explore.perturbed([text], "case") == ["THE MOVIE WAS GREAT, 10 OUT OF 10!"]
    assert explore.perturbed([text], "punctuation") == ["The movie was great 10 out of 10"]
    assert explore.perturbed([text], "negation") == ["The movie was not great, 10 out of 10!"]
    assert explore.perturbed([text], "irrelevant sentence")[0] == f"{text} {explore.IRRELEVANT}"
    typo = explore.perturbed([text], "typos", seed=3)[0]
    assert typo != text and sorted(typo) == sorted(text) and explore.perturbed([text], "typos", seed=3)[0] == typo
    numbers = explore.perturbed([text], "numbers")[0]
    assert numbers != text and re.sub(r"\d", "#", numbers) == re.sub(r"\d", "#", text)  # every digit, nothing else
    assert explore.perturbed(["no digits here"], "numbers") == ["no digits here"]


def test_robustness_counts_the_predictions_that_stay_the_same():
    rows = pd.DataFrame(
        {"text": ["good film", "BAD FILM", "good 1", "bad 2"], "label": ["positive", "negative", "positive", "negative"]}
    )

    def by_case(texts):  # says 'positive' for lower-case text: upper-casing flips the two lower-case rows
        return ["positive" if t == t.lower() else "negative" for t in texts]

    def by_word(texts):  # reads the word, whatever its case
        return ["positive" if "good" in t.lower() else "negative" for t in texts]

    table = explore.robustness({"case": by_case, "word": by_word}, rows, ["case", "numbers"]).set_index(["run", "perturbation"])
    assert table.loc[("case", "case"), "changed texts"] == 3  # 'BAD FILM' is upper case already
    assert table.loc[("case", "case"), "unchanged predictions"] == 0.0  # all three changed texts now read as negative
    assert table.loc[("word", "case"), "unchanged predictions"] == 1.0
    # before: positive, negative, positive, positive (3 of 4 right); after: all negative (2 of 4)
    assert table.loc[("case", "case"), "accuracy"] == 0.75 and table.loc[("case", "case"), "accuracy perturbed"] == 0.5
    assert table.loc[("word", "numbers"), "changed texts"] == 2


def test_negation_flips_are_counted_for_sentiment_labels():
    rows = pd.DataFrame({"text": ["it was good", "it was bad"], "label": ["positive", "negative"]})

    def reads_not(texts):
        return [
            ("negative" if "good" in t else "positive") if " not " in t else ("positive" if "good" in t else "negative")
            for t in texts
        ]

    table = explore.robustness({"r": reads_not}, rows, ["negation"], sentiment=explore.is_sentiment(["negative", "positive"]))
    assert table.loc[0, "flipped (expected)"] == 1.0 and table.loc[0, "unchanged predictions"] == 0.0
    assert not explore.is_sentiment(["World", "Sports"])


def test_extra_columns_leave_out_text_label_and_split():
    frame = pd.DataFrame({"review": ["a", "b"], "stars": [1, 5], "split": ["train", "test"], "label": ["x", "y"]})
    assert list(explore.extra_columns(frame, "review", "label").columns) == ["text", "stars"]
    assert explore.extra_columns(frame[["review", "label"]], "review", "label") is None


def test_report_sections_escape_slice_names_taken_from_the_data(runs_dir):
    from core.comparison import evaluate, report
    from tests.compare_fixtures import make_run

    texts = [f"t{i}" for i in range(8)]
    joined = joined_frame(texts, ["a", "b"] * 4, {"p": ["a"] * 8, "f": ["a", "b"] * 4})
    extra = pd.DataFrame({"text": texts, "source": ["<script>alert(1)</script>", "*bold*"] * 4})
    sliced = explore.slice_report(joined, {"p": "prompt", "f": "finetune"}, ["a", "b"], "column:source", extra, n_resamples=100)
    cmp = evaluate.compare_runs(
        [make_run(runs_dir, "p", 0.6, seed=1), make_run(runs_dir, "f", 0.8, kind="finetune", seed=2)], n_resamples=50
    )
    html = report.build_report(cmp, sections=explore.report_sections(sliced))
    assert (
        "<script>" not in html
        and "source = &lt;script&gt;alert(1)&lt;/script&gt;" in html
        and "<h2>Slices by column:source</h2>" in html
    )
