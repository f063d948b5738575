"""AppTest: the Fine-tune page offers only the methods that fit the chosen model (embedding methods and adapters need an encoder, prompt learning a decoder)."""

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
    assert {"full", "lora", "adapter", "logreg", "knn", "setfit"} <= set(offered) and not {"prompt-tuning", "lora-lm"} & set(offered)
    at.radio(key=scoped(at, "ft_method")).set_value("logreg").run()
    assert not at.exception
    assert at.number_input(key=scoped(at, "ft_epochs")).disabled and at.number_input(key=scoped(at, "ft_lr_logreg")).disabled
    assert any("parameters will be trained" in c.value for c in at.caption)

    at = _page(tiny_llama_dir)
    assert not at.exception
    offered = list(at.radio(key=scoped(at, "ft_method")).options)
    assert {"lora", "prompt-tuning", "lora-lm"} <= set(offered) and not {"adapter", "logreg", "knn", "setfit"} & set(offered)
