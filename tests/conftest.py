"""Shared fixtures: tiny random BERT and Llama models (with their own small tokenizers) saved to disk, and a clean runs folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# CI replays the same generated inputs every run (a red CI must mean a change broke something, not an unlucky draw);
# a developer's run draws new ones, which is how the random-input tests keep finding cases worth an @example.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS = [
    "the movie was great and i loved it",
    "terrible service , never again",
    "it is a kettle . it boils water",
    "shares fell after the profit warning",
    "profit rose and the dividend was raised",
    "where is my parcel ? it has not arrived",
    "i cannot log in to my account",
    "please refund my order",
    "positive negative neutral good bad okay fine",
] * 20


def _train_tokenizer(kind: str):
    """A ~300-token WordPiece (BERT-like) or byte-level BPE (Llama-like) tokenizer trained on CORPUS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
        tok.decoder = decoders.WordPiece()
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(
        CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>", pad_token="<|im_end|>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return fast


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with a random head-less body and a WordPiece tokenizer, saved as safetensors."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tok = _train_tokenizer("wordpiece")
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 Llama causal LM with a byte-level BPE tokenizer and chat template, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = _train_tokenizer("bpe")
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs folder that core and the app use for this test (PFT_RUNS_DIR)."""
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("PFT_RUNS_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _models_under_tmp(tmp_path_factory, monkeypatch):
    """Let tests load models saved under pytest's temp folders (outside the working directory)."""
    monkeypatch.setenv("PFT_MODEL_ROOTS", str(tmp_path_factory.getbasetemp()))


@pytest.fixture
def open_page():
    """open_page("app_pages/x.py", key=value, ...): the page opened through streamlit_app.py, with fresh Streamlit caches
    and the given widget state set before the first run (AppTest drops sidebar widgets on reruns under st.navigation)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    st.cache_data.clear()

    def _open(page: str, **state):
        from tests.scoped import preload, sample_key
        from ui.state import DATASET_KEY

        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
        if DATASET_KEY in state:  # a dataset made by the test, as if loaded from the Hub box
            preload(at, state.pop(DATASET_KEY))
        for key, value in state.items():  # sidebar keys as they are; page keys belong to the sample the sidebar loads
            at.session_state[key if key.startswith("ds_") else sample_key(key, state.get("ds_sample", "reviews"))] = value
        at.run()
        if page != "app_pages/data.py":
            at.switch_page(page).run()
        return at

    yield _open
    st.cache_resource.clear()


@pytest.fixture
def offline(monkeypatch):
    """No Hugging Face Hub for this test (as on an air-gapped machine); the reachability answer is not cached across tests."""
    from core import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    yield
    models.hub_reachable.cache_clear()


# session fixtures: real OpenAI-compatible servers
from tests.endpoint_server import llama_server, transformers_server  # noqa: E402,F401
