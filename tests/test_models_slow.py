"""The two bundled real models load offline and behave as their cards say."""

import pytest

from core import models

pytestmark = pytest.mark.slow


def test_bundled_encoder_loads_offline():
    model = models.load_encoder(models.ENCODER)
    tok = models.load_tokenizer(models.ENCODER)
    info = models.BUNDLED[models.ENCODER]
    assert (model.config.num_hidden_layers, model.config.num_attention_heads, model.config.hidden_size) == (
        info.layers,
        info.heads,
        info.hidden,
    )
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 22.7) < 0.2
    assert tok.tokenize("unbelievably")[0] == "unbelievable" or tok.tokenize("unbelievably")[-1].startswith("##")


def test_bundled_decoder_loads_from_gguf_and_answers():
    import torch

    model = models.load_causal_lm(models.DECODER)
    tok = models.load_tokenizer(models.DECODER)
    info = models.BUNDLED[models.DECODER]
    assert (model.config.num_hidden_layers, model.config.num_attention_heads) == (info.layers, info.heads)
    pos = tok(" positive", add_special_tokens=False).input_ids[0]
    neg = tok(" negative", add_special_tokens=False).input_ids[0]
    margins = []
    for text, sign in [("I loved this film, it was wonderful.", 1), ("Awful film, a total waste of money.", -1)]:
        ids = tok(f"Review: {text}\nSentiment (positive or negative):", return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1]  # (V,)
        margins.append(sign * float(logits[pos] - logits[neg]))
    assert min(margins) > 0, margins  # the de-quantized weights still tell praise from complaint
