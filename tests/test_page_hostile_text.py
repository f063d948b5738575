"""Dataset text and label names are data (issue 13 item 2): on every page they reach, Markdown, images and HTML in them
are shown literally, never rendered."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from core import data
from tests.compare_fixtures import make_run

BEACON = "![b](http://127.0.0.1:9/beacon.png)"
HOSTILE_LABELS = ["**bold**", BEACON, "# heading"]
HOSTILE_TEXTS = [BEACON + " nice", "**bold** and <img src=x onerror=alert(1)> text", "# heading\n===\n[link](http://x)"]


def rendered(at) -> list[str]:
    """The source of every element Streamlit renders as Markdown (main area and sidebar)."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title", "header")
    return [e.value for kind in kinds for root in (at, at.sidebar) for e in getattr(root, kind)]


def assert_literal(sources: list[str]) -> None:
    for src in sources:
        assert "![" not in src and not re.search(r"(?<!\\)\]\(", src) and "**bold**" not in src and "<img" not in src, src
        assert not any(line.lstrip().startswith("#") for line in src.splitlines()), src


def hostile_dataset() -> data.Dataset:
    rows = [(f"{t} number {i}", HOSTILE_LABELS[i % 3]) for i in range(30) for t in HOSTILE_TEXTS[i % 3 : i % 3 + 1]]
    return data.from_frame(pd.DataFrame(rows, columns=["text", "label"]), "[evil](http://x) **name**", "upload")


def test_data_page_shows_hostile_text_and_labels_literally(open_page):
    ds = hostile_dataset()
    at = open_page("app_pages/data.py", ds_kind="Hugging Face", dataset=ds)  # the Hub box leaves the dataset as it is
    assert not at.exception
    assert_literal(rendered(at))
    shown = "\n".join(t.value for t in at.text)
    assert BEACON in shown and "**bold** and <img" in shown  # the examples per class, as plain text
    assert any("\\*\\*bold\\*\\*" in c for c in rendered(at))  # label names escaped in captions/headings


@pytest.mark.parametrize("page", ["app_pages/prompting.py", "app_pages/tokenization.py"])
def test_other_dataset_pages_render_no_markdown_from_the_data(open_page, page):
    at = open_page(page, ds_kind="Hugging Face", dataset=hostile_dataset())
    assert_literal(rendered(at))


def test_compare_page_error_browser_shows_text_literally(runs_dir, open_page):
    for name, acc, seed in (("a", 0.5, 1), ("b", 0.8, 2)):
        path = make_run(runs_dir, name, acc, seed=seed, labels=HOSTILE_LABELS)
        preds = pd.read_csv(path / "predictions.csv")
        preds["text"] = [HOSTILE_TEXTS[i % 3] + f" {i}" for i in range(len(preds))]
        preds.to_csv(path / "predictions.csv", index=False)
    at = open_page("app_pages/compare.py")
    assert not at.exception
    assert_literal(rendered(at))
    assert any(HOSTILE_TEXTS[0].split()[0] in t.value or "**bold**" in t.value or "# heading" in t.value for t in at.text)


def test_attention_page_draws_bertviz_in_a_frame_without_same_origin(runs_dir, open_page, tiny_bert_dir):
    """Issue 13 item 1 on the page: what st.iframe receives is only the sandboxed wrapper around the bertviz view."""
    at = open_page("app_pages/attention.py", attention_text="a </script> token", attention_models=[str(tiny_bert_dir)])
    assert not at.exception
    frames = [e.proto for e in at.get("iframe")]
    assert frames, "no iframe on the Attention page"
    for proto in frames:
        srcdoc = str(proto)
        assert 'sandbox=\\"allow-scripts\\"' in srcdoc or 'sandbox="allow-scripts"' in srcdoc
        assert "allow-same-origin" not in srcdoc and "<script" not in srcdoc.split("srcdoc=")[0]
