import numpy as np
import pandas as pd
import pytest

from core import data
from core.errors import UserError


def test_every_sample_loads_with_three_splits_and_enough_rows():
    samples = data.list_samples()
    assert {"reviews", "finance_news", "support_intents"} <= set(samples)
    for name in samples:
        ds = data.load(name)
        assert set(ds.splits) == {"train", "validation", "test"}
        assert sum(len(f) for f in ds.splits.values()) >= 600
        assert data.sample_card(name).strip()
        for frame in ds.splits.values():
            assert set(frame["label"]) == set(ds.label_names)
    assert len(data.load("support_intents").label_names) >= 6


def test_samples_have_no_leakage_between_splits():
    for name in data.list_samples():
        pairs = data.duplicate_report(data.load(name)).pairs
        assert not (pairs["split_a"] != pairs["split_b"]).any(), name


def test_columns_are_detected_and_a_file_without_splits_is_split_stratified(tmp_path):
    rows = [
        {"sentence": f"text number {i} about {'cats' if i % 2 else 'dogs'}", "category": "a" if i % 2 else "b"}
        for i in range(100)
    ]
    path = tmp_path / "x.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    ds = data.load(str(path))
    assert (ds.text_col, ds.label_col) == ("sentence", "category")
    sizes = {s: len(f) for s, f in ds.splits.items()}
    assert sum(sizes.values()) == 100 and abs(sizes["train"] - 70) <= 2 and abs(sizes["test"] - 15) <= 1
    for f in ds.splits.values():  # both classes in every split, in proportion
        assert abs((f["label"] == "a").mean() - 0.5) < 0.1
    assert data.load(str(path)).fingerprint("test") == ds.fingerprint("test")  # seeded
    assert "stratified" in " ".join(ds.notes)


def test_parquet_and_tsv_load(tmp_path):
    df = pd.DataFrame({"text": [f"row {i} words" for i in range(20)], "label": [i % 2 for i in range(20)]})
    df.to_parquet(tmp_path / "d.parquet")
    df.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    for name in ("d.parquet", "d.tsv"):
        ds = data.load(str(tmp_path / name))
        assert ds.label_names == ["0", "1"]


def test_integer_labels_sort_numerically(tmp_path):
    df = pd.DataFrame({"text": [f"t {i}" for i in range(30)], "label": [i % 11 for i in range(30)]})
    df.to_csv(tmp_path / "d.csv", index=False)
    assert data.load(str(tmp_path / "d.csv")).label_names[:3] == ["0", "1", "2"]


def test_ambiguous_or_missing_columns_name_the_flag(tmp_path):
    pd.DataFrame({"a": ["x"] * 20, "b": ["y"] * 20}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(UserError, match="--text-col"):
        data.load(str(tmp_path / "d.csv"))
    with pytest.raises(UserError, match="only one class"):
        data.load(str(tmp_path / "d.csv"), text_col="a", label_col="b")
    with pytest.raises(UserError, match="no column 'txt'"):
        data.load(str(tmp_path / "d.csv"), text_col="txt", label_col="b")


def test_cli_split_syntax_and_file_as_one_split(tmp_path):
    ds, split = data.load_split("reviews:validation", "train")
    assert split == "validation" and len(ds.splits["validation"]) > 50
    ds, split = data.load_split("reviews", "test")
    assert split == "test"
    pd.DataFrame({"text": ["good", "bad", "fine"], "label": ["p", "n", "p"]}).to_csv(tmp_path / "e.csv", index=False)
    ds, split = data.load_split(str(tmp_path / "e.csv"), "test")
    assert split == "test" and len(ds.splits["test"]) == 3
    with pytest.raises(UserError, match="no 'dev' split"):
        data.load_split("reviews:dev", "train")


def test_near_duplicates_across_splits_are_reported():
    frames = {
        "train": pd.DataFrame({"text": ["the parcel never arrived at my house today", "refund please"], "label": ["a", "b"]}),
        "test": pd.DataFrame({"text": ["the parcel never arrived at my house today!", "Refund please"], "label": ["a", "b"]}),
    }
    ds = data.finish("x", "x", frames, ["a", "b"], "text", "label", [])
    summary = data.duplicate_report(ds, 0.7).summary
    row = summary.set_index("splits").loc["test / train"]
    assert (row["exact"], row["near"]) == (1, 1)


def test_save_splits_round_trips(tmp_path):
    ds = data.load("reviews")
    paths = data.save_splits(ds, tmp_path)
    again, split = data.load_split(str(paths["test"]), "test")
    assert again.fingerprint(split) == ds.fingerprint("test")


def test_a_lone_carriage_return_is_a_line_end_so_a_jobs_copy_reads_back_the_same_rows(tmp_path):
    """A bare \r (old Mac line ends, from a JSONL, Parquet or Hub source) was written unquoted and read back as a row break,
    so a job read other rows than the page had loaded; it is a line end like the CSV reader's, and the copy reads back
    the same."""
    frame = pd.DataFrame({"text": [f"first line {i}\rsecond line" for i in range(24)], "label": ["pos", "neg"] * 12})
    ds = data.from_frame(frame, "old-mac", "upload")
    paths = data.save_splits(ds, tmp_path)
    again, split = data.load_split(str(paths["train"]), "train", "text", "label")
    assert again.fingerprint(split) == ds.fingerprint("train")
    assert again.splits[split]["text"].str.contains("first line [0-9]+\nsecond line").all()


def test_semicolon_csv_from_european_excel_loads(tmp_path):
    rows = "\n".join(f"row {i} text;{'a' if i % 2 else 'b'}" for i in range(20))
    (tmp_path / "d.csv").write_text("text;label\n" + rows + "\n")
    ds = data.load(str(tmp_path / "d.csv"))
    assert ds.label_names == ["a", "b"] and ds.splits["train"]["text"].str.startswith("row").all()


def test_unknown_hub_dataset_offline_is_one_sentence(offline):
    with pytest.raises(UserError, match="Could not load the Hugging Face dataset 'no-such-owner/no-such-dataset'"):
        data.load("no-such-owner/no-such-dataset")


def test_hub_dataset_with_class_labels_keeps_label_names(monkeypatch):
    """What load_hub does with a datasets.DatasetDict (stands in for the hub, which tests cannot reach)."""
    import datasets

    def fake_load(name):
        features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})

        def split(prefix, n):
            return datasets.Dataset.from_dict(
                {"sentence": [f"{prefix} text {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}, features=features
            )

        return datasets.DatasetDict({"train": split("train", 40), "validation": split("dev", 10)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    ds = data.load_hub("someone/sst-like")
    assert ds.label_names == ["neg", "pos"] and set(ds.splits) == {"train", "validation"}
    assert ds.splits["validation"]["label"].tolist()[:2] == ["neg", "pos"]


@pytest.mark.parametrize("kind", ["absolute file", "absolute folder", "relative folder", "home", "dots", "url"])
def test_hub_box_refuses_local_paths_and_never_calls_datasets(kind, tmp_path, monkeypatch):
    """Issue 13 item 3: a server path typed in the Hugging Face box is refused before datasets.load_dataset sees it."""
    import datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a))
    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "some text,a\nother text,b\n" * 50)
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    name = {
        "absolute file": str(big),
        "absolute folder": str(tmp_path / "folder"),
        "relative folder": "folder",
        "home": "~/data",
        "dots": "owner/../../etc",
        "url": "https://example.com/x.csv",
    }[kind]
    with pytest.raises(UserError, match="is not a Hugging Face dataset id"):
        data.load_hub(name)
    assert calls == []


def _dataset(splits: dict[str, list[str]]) -> data.Dataset:
    frames = {
        s: pd.DataFrame({"text": texts, "label": ["a" if i % 2 else "b" for i in range(len(texts))]})
        for s, texts in splits.items()
    }
    return data.finish("x", "x", frames, ["a", "b"], "text", "label", [])


def _words(i: int, n: int = 12) -> str:
    """A distinct sentence of n pseudo-random words (seeded by i)."""
    rng = np.random.default_rng(i)
    return " ".join(f"w{v}" for v in rng.integers(0, 5000, size=n))


def test_exact_duplicates_are_counted_by_group_and_example_pairs_capped():
    """300 case/spacing variants of one word: all 44,850 pairs counted per split pair, only max_pairs listed."""
    variants = ["".join(ch.upper() if (k >> b) & 1 else ch for b, ch in enumerate("refundable")) for k in range(300)]
    ds = _dataset({"train": variants[:200] + ["something else entirely here"], "test": [" " + v for v in variants[200:]]})
    report = data.duplicate_report(ds, max_pairs=50)
    summary = report.summary.set_index("splits")
    assert summary.loc["within train", "exact"] == 200 * 199 // 2
    assert summary.loc["within test", "exact"] == 100 * 99 // 2
    assert summary.loc["test / train", "exact"] == 200 * 100
    assert summary["near"].sum() == 0 and report.total_pairs == 300 * 299 // 2
    assert len(report.pairs) == 50 and (report.pairs["kind"] == "exact").all()
    assert "something else entirely here" not in set(report.pairs["text_a"]) | set(report.pairs["text_b"])


def test_near_duplicates_are_found_among_many_distinct_texts():
    """Six planted near pairs (one word changed in 12) among 2,000 distinct texts are all found, nothing else."""
    texts = [_words(i) for i in range(2000)]
    planted = {}
    for i in range(0, 600, 100):
        words = texts[i].split()
        words[-1] = "changed"
        planted[i] = " ".join(words)  # 9 of 10 word 3-grams shared with texts[i]: Jaccard 9/11
    ds = _dataset({"train": texts, "test": list(planted.values())})
    report = data.duplicate_report(ds, threshold=0.8)
    near = report.pairs[report.pairs["kind"] == "near"]
    assert len(near) == 6 and report.summary.set_index("splits").loc["test / train", "near"] == 6
    assert set(zip(near["text_a"], near["text_b"])) | set(zip(near["text_b"], near["text_a"])) >= {
        (texts[i], t) for i, t in planted.items()
    }
    assert np.allclose(near["similarity"], round(9 / 11, 3))
    assert data.duplicate_report(ds, threshold=0.9).summary["near"].sum() == 0  # below the stricter threshold


def test_near_duplicates_of_exact_groups_count_every_member_pair():
    """A near pair between a group of 3 exact copies and a group of 2 counts 3 x 2 member pairs."""
    a, b = "the parcel never arrived at my house today", "the parcel never arrived at my house today!!"
    ds = _dataset({"train": [a, a.upper(), b], "test": [a + " ", b.title()]})
    summary = data.duplicate_report(ds, 0.7).summary.set_index("splits")
    assert summary["exact"].sum() == 3 + 1 and summary["near"].sum() == 3 * 2
    assert summary.loc["test / train", "near"] == 2 * 1 + 1 * 1  # a-copies in train x b in test, a in test x b in train


def test_minhash_agreement_tracks_jaccard_and_lsh_candidates_are_capped():
    base = set(_words(1, 40).split())
    other = set(list(base)[:30]) | {f"x{i}" for i in range(10)}
    sig = data.minhash_signatures([base, other, set(_words(2, 40).split())])
    agree = (sig[0] == sig[1]).mean()
    assert abs(agree - data.jaccard(base, other)) < 0.2 and (sig[0] == sig[2]).mean() < 0.1
    same = data.minhash_signatures([{"same text"}] * 100)
    pairs, capped = data.lsh_candidates(same, budget=500)
    assert capped and len(pairs) == 500 and (pairs[:, 0] < pairs[:, 1]).all()
    pairs, capped = data.lsh_candidates(data.minhash_signatures([{"same text"}] * 10))
    assert not capped and len(pairs) == 45


def test_duplicate_threshold_outside_zero_one_is_refused():
    with pytest.raises(UserError, match="threshold"):
        data.duplicate_report(_dataset({"train": ["a b c", "d e f"]}), threshold=1.5)


def test_cli_data_duplicates_prints_the_leakage_summary(tmp_path, capsys):
    from core import cli

    parcel = "the parcel never arrived at my house today"
    rows = [
        {"text": t, "label": lab, "split": s}
        for t, lab, s in [
            ("refund please", "a", "train"),
            ("REFUND please", "a", "test"),
            (parcel, "b", "train"),
            (parcel + "!", "b", "test"),
            ("hello there friend", "b", "train"),
        ]
    ]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert cli.main(["data", str(path), "--duplicates", "--threshold", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "duplicate pairs" in out and "test / train" in out
    line = next(x for x in out.splitlines() if "test / train" in x)
    assert line.split()[-2:] == ["1", "1"]  # one exact and one near pair across the splits
    assert cli.main(["data", str(path), "--duplicates", "--threshold", "2"]) == 2
    assert "threshold" in capsys.readouterr().err


def test_label_chart_shows_the_most_and_least_frequent_labels_around_the_rest():
    """At 77 labels the chart drew the top 20 beside one 'other' bar 50 times longer, which flattened them to slivers;
    now the 10 most and 10 least frequent labels, on one scale, around an empty row that counts the rest."""
    from core import charts

    summary = pd.DataFrame(
        [(s, f"label{i:02d}", n) for i in range(77) for s, n in (("train", i + 1), ("test", 1))],
        columns=["split", "label", "count"],
    )
    spec = charts.label_distribution(summary, top=20).to_dict()
    order = spec["encoding"]["y"]["sort"]
    assert order[:2] == ["label76", "label75"] and order[10] == "(57 more labels)" and order[-2:] == ["label01", "label00"]
    rows = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert set(rows["label"]) == set(order) and rows.groupby("label")["count"].sum()["(57 more labels)"] == 0
    assert rows.groupby("label")["count"].sum().max() == 78  # no bar beyond the largest class
    table = data.class_table(summary)
    assert list(table.columns) == ["label", "train", "test", "total", "share"] and table.loc[0, "label"] == "label76"
    assert table["share"].sum() == pytest.approx(1, abs=1e-3)


def test_most_confused_pairs_are_sorted_and_searchable():
    from core.comparison import evaluate

    conf = pd.DataFrame(
        [("r", "a", "a", 9), ("r", "a", "b", 3), ("r", "b", "c", 5), ("r", "c", "a", 0), ("s", "card_x", "b", 4)],
        columns=["run", "true", "pred", "count"],
    )
    out = evaluate.most_confused(conf)
    assert list(zip(out["true"], out["pred"], out["count"])) == [("b", "c", 5), ("card_x", "b", 4), ("a", "b", 3)]
    assert list(evaluate.most_confused(conf, search="CARD")["true"]) == ["card_x"]
    assert len(evaluate.most_confused(conf, top=1)) == 1
