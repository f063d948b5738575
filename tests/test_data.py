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
        pairs = data.duplicate_report(data.load(name))
        assert not (pairs["split_a"] != pairs["split_b"]).any(), name


def test_columns_are_detected_and_a_file_without_splits_is_split_stratified(tmp_path):
    rows = [{"sentence": f"text number {i} about {'cats' if i % 2 else 'dogs'}", "category": "a" if i % 2 else "b"} for i in range(100)]
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
    summary = data.leakage_summary(data.duplicate_report(ds, 0.7))
    row = summary.set_index("splits").loc["test / train"]
    assert (row["exact"], row["near"]) == (1, 1)


def test_save_splits_round_trips(tmp_path):
    ds = data.load("reviews")
    paths = data.save_splits(ds, tmp_path)
    again, split = data.load_split(str(paths["test"]), "test")
    assert again.fingerprint(split) == ds.fingerprint("test")


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
            return datasets.Dataset.from_dict({"sentence": [f"{prefix} text {i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
                                              features=features)

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
    name = {"absolute file": str(big), "absolute folder": str(tmp_path / "folder"), "relative folder": "folder",
            "home": "~/data", "dots": "owner/../../etc", "url": "https://example.com/x.csv"}[kind]
    with pytest.raises(UserError, match="is not a Hugging Face dataset id"):
        data.load_hub(name)
    assert calls == []
