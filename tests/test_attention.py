"""Attention extraction, offline bertviz HTML (no URLs, bounded size) and saliency (IG completeness) on tiny models."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core import attention
from core.errors import UserError

URL = re.compile(r"https?://", re.I)


@pytest.fixture
def tiny_encoder(tiny_bert_dir):
    return attention.load_attention_model(str(tiny_bert_dir))


@pytest.fixture
def tiny_decoder(tiny_llama_dir):
    return attention.load_attention_model(str(tiny_llama_dir))


@pytest.fixture
def tiny_classifier(tiny_bert_dir):
    """The tiny BERT with a random 3-class head, as a fine-tuned run's model would be."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    labels = ["negative", "neutral", "positive"]
    model = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_bert_dir), num_labels=3, attn_implementation="eager", id2label=dict(enumerate(labels))
    ).eval()
    return attention.AttentionModel(
        name="tiny-clf",
        model=model,
        tokenizer=attention.models.load_tokenizer(str(tiny_bert_dir)),
        kind="classifier",
        label_names=labels,
    )


def test_encoder_attention_shape_rows_and_special_tokens(tiny_encoder):
    result = attention.extract_attention(tiny_encoder, "the movie was great")
    assert result.attention.shape == (2, 4, len(result.tokens), len(result.tokens))
    assert np.allclose(result.attention.sum(-1), 1, atol=1e-5)
    assert result.special[0] and result.special[-1] and not result.special[1:-1].any()  # [CLS] ... [SEP]
    special = attention.special_attention(result)
    assert set(special["target"]) == {"special tokens", "first token"} and special["share"].between(0, 1).all()
    entropy = attention.head_entropy(result)
    assert len(entropy) == 8 and (entropy["entropy"] >= 0).all()
    assert (entropy["entropy"] <= np.log2(len(result.tokens)) + 1e-6).all()


def test_decoder_attention_is_causal_and_predicts_a_token(tiny_decoder):
    result = attention.extract_attention(tiny_decoder, "profit rose and the dividend")
    upper = np.triu(np.ones(result.attention.shape[-2:], dtype=bool), k=1)
    assert np.allclose(result.attention[..., upper], 0)
    assert result.prediction and len(result.probabilities) == 5
    frame = attention.attention_frame(result, layer=1, head=3)
    assert len(frame) == len(result.tokens) ** 2
    with pytest.raises(UserError, match="does not exist"):
        attention.attention_frame(result, layer=2, head=0)


def test_classifier_prediction_and_empty_text(tiny_classifier):
    result = attention.extract_attention(tiny_classifier, "terrible service")
    assert result.prediction in tiny_classifier.label_names and sum(result.probabilities.values()) == pytest.approx(1, abs=1e-5)
    with pytest.raises(UserError, match="Type a text"):
        attention.extract_attention(tiny_classifier, "   ")


def test_bertviz_head_and_model_views_have_no_urls(tiny_encoder):
    result = attention.extract_attention(tiny_encoder, "where is my parcel ? it has not arrived")
    for view in ("head", "model"):
        html = attention.bertviz_html(result, view=view)
        assert not URL.search(html), URL.search(html)
        assert "require.config({" not in html and "cdnjs" not in html
        assert "d3" in html and "jQuery" in html and "const params = {" in html


def test_bertviz_128_tokens_12_layers_12_heads_stays_under_10mb():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 12, 128, 128)) * 3
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # (layers, heads, T, T), rows sum to 1
    result = attention.AttentionResult(
        model_name="x",
        kind="encoder",
        tokens=[f"t{i}" for i in range(128)],
        attention=weights.astype(np.float32),
        special=np.zeros(128, bool),
    )
    html = attention.bertviz_html(result, view="head")
    assert len(html.encode()) < 10_000_000
    small = attention.bertviz_html(result, view="head", budget_bytes=4_000_000)
    assert len(small.encode()) < 4_000_000
    shown = re.search(r'"include_layers":\[([\d,]+)\]', small).group(1).split(",")
    assert shown[0] == "0" and shown[-1] == "11" and len(shown) < 12  # evenly spaced layers chosen to fit
    model_view = attention.bertviz_html(result, view="model", layers=[0, 5, 11], heads=[0, 1, 2, 3])
    assert len(model_view.encode()) < 10_000_000
    with pytest.raises(UserError, match="too large"):
        attention.bertviz_html(result, view="model", layers=list(range(12)), budget_bytes=4_000_000)


def test_compact_array_round_trips_to_three_decimals():
    values = np.array([[0.0, 0.1234, 0.9996, 1.0], [0.5, 0.0004, 0.0005, 0.25]])
    assert (
        attention.compact_array(values) == "[[0,.123,1,1],[.5,0,0,.25]]"
        or attention.compact_array(values) == "[[0,.123,1,1],[.5,0,.001,.25]]"
    )


def test_integrated_gradients_completeness_for_classifier(tiny_classifier):
    s = attention.saliency(tiny_classifier, "please refund my order", steps=64)
    assert s.target in tiny_classifier.label_names
    assert len(s.scores) == len(s.tokens)
    assert s.scores.sum() == pytest.approx(s.output - s.baseline_output, abs=0.02 + 0.02 * abs(s.output - s.baseline_output))


def test_integrated_gradients_completeness_for_decoder_label_word(tiny_decoder):
    s = attention.saliency(tiny_decoder, "shares fell after the profit warning . sentiment :", steps=64, target_word="negative")
    assert s.scores.sum() == pytest.approx(s.output - s.baseline_output, abs=0.02 + 0.02 * abs(s.output - s.baseline_output))


def test_gradient_x_input_differs_from_ig_but_has_same_shape(tiny_classifier):
    gx = attention.saliency(tiny_classifier, "i cannot log in to my account", method="gradient x input")
    ig = attention.saliency(tiny_classifier, "i cannot log in to my account", steps=16)
    assert gx.scores.shape == ig.scores.shape and np.isfinite(gx.scores).all()
    assert gx.target == ig.target


def test_saliency_refuses_the_bare_encoder_and_bad_steps(tiny_encoder, tiny_classifier):
    with pytest.raises(UserError, match="needs an output to explain"):
        attention.saliency(tiny_encoder, "text")
    with pytest.raises(UserError, match="between 2 and 256 steps"):
        attention.saliency(tiny_classifier, "text", steps=1)


def test_run_model_spec_without_model_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="holds no fine-tuned model"):
        attention.load_attention_model(f"run:{tmp_path}")


@pytest.mark.slow
def test_bundled_decoder_views_cover_all_30_layers_and_bertviz_stays_bounded():
    decoder = attention.load_attention_model("smollm2")
    text = " ".join(["the service was slow but the food was great"] * 20)  # well over 128 tokens, truncated to 128
    result = attention.extract_attention(decoder, text, max_tokens=128)
    assert result.attention.shape == (30, 9, 128, 128)
    assert len(attention.head_entropy(result)) == 30 * 9
    special = attention.special_attention(result)
    assert special[special["target"] == "first token"]["layer"].nunique() == 30
    html = attention.bertviz_html(result, view="head")
    assert len(html.encode()) < 10_000_000 and not URL.search(html)
    s = attention.saliency(decoder, "The food was great. Sentiment:", method="gradient x input", target_word="positive")
    assert np.isfinite(s.scores).all() and s.target


@pytest.mark.slow
def test_bundled_encoder_12_heads_128_tokens_model_view_bounded():
    encoder = attention.load_attention_model("minilm")
    result = attention.extract_attention(encoder, " ".join(["battery life is short"] * 40), max_tokens=128)
    assert result.attention.shape == (6, 12, 128, 128)
    html = attention.bertviz_html(result, view="model")
    assert len(html.encode()) < 10_000_000 and not URL.search(html)
