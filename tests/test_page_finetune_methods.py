"""AppTest: the Fine-tune page offers only the methods that fit the chosen model.

Embedding methods and adapters need an encoder, prompt learning a decoder."""

from __future__ import annotations

import pytest

from tests.scoped import scoped


@pytest.fixture
def _page(open_page):
    return lambda model_dir: open_page("app_pages/finetune.py", ft_model="other", ft_model_other=str(model_dir))


def test_encoder_gets_the_embedding_methods_and_a_decoder_does_not(tiny_bert_dir, tiny_llama_dir, runs_dir, _page):
    at = _page(tiny_bert_dir)
    assert not at.exception
    offered = list(at.radio(key=scoped(at, "ft_method")).options)
    assert {"full", "lora", "adapter", "logreg", "knn", "setfit"} <= set(offered) and not {"prompt-tuning", "lora-lm"} & set(
        offered
    )
    at.radio(key=scoped(at, "ft_method")).set_value("logreg").run()
    assert not at.exception
    assert at.number_input(key=scoped(at, "ft_epochs")).disabled and at.number_input(key=scoped(at, "ft_lr_logreg")).disabled
    assert any("parameters will be trained" in c.value for c in at.caption)

    at = _page(tiny_llama_dir)
    assert not at.exception
    offered = list(at.radio(key=scoped(at, "ft_method")).options)
    assert {"lora", "prompt-tuning", "lora-lm"} <= set(offered) and not {"adapter", "logreg", "knn", "setfit"} & set(offered)


def test_decoder_methods_get_the_label_word_table_and_save_its_words(tiny_bert_dir, tiny_llama_dir, runs_dir, _page, monkeypatch):
    import json
    import os
    import types

    from core import jobs

    def word_tables(at):
        return [d for d in at.dataframe if list(d.value.columns) == ["label", "word"]]

    at = _page(tiny_bert_dir)
    assert not word_tables(at)  # a classifier has no label words
    at = _page(tiny_llama_dir)
    at.radio(key=scoped(at, "ft_method")).set_value("lora").run()
    assert not word_tables(at)
    at.radio(key=scoped(at, "ft_method")).set_value("lora-lm").run()
    assert not at.exception and word_tables(at)[0].value["word"].tolist() == ["negative", "neutral", "positive"]
    monkeypatch.setattr(jobs.subprocess, "Popen", lambda argv, **kw: types.SimpleNamespace(pid=os.getpid()))
    at.text_input(key=scoped(at, "ft_run_name")).set_value("lm-words")
    at.button(key=scoped(at, "ft_start")).click().run()
    assert not at.exception and not at.error
    job = json.loads((runs_dir / "lm-words" / "job.json").read_text())
    assert job["method"] == "lora-lm" and job["label_words"] == {}  # the table's defaults: each label says its name
