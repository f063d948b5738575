"""prompt-tuning and lora-lm on the tiny random Llama: LM loss on the label word only, scoring through prompting's scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import prompting
from core.errors import UserError
from core.runs import RunDir
from core.training import base, finetune, prompt_learning
from tests.test_finetune import LABELS, config_for, toy_frame


def test_training_rows_put_the_loss_on_the_label_word_only(tiny_llama_dir):
    config = config_for(tiny_llama_dir, "lora-lm")
    tokenizer = prompting.models.load_tokenizer(str(tiny_llama_dir))
    prompted = prompt_learning.Prompted(config, tokenizer, LABELS)
    row = prompted.training_rows(toy_frame(2), LABELS, 64)[0]  # the first toy row is positive
    target = [t for t in row["labels"] if t != -100]
    assert target == prompted.label_ids[LABELS.index("positive")]
    assert row["input_ids"][-len(target) :] == target and len(row["input_ids"]) == len(row["labels"])
    assert row["input_ids"][: len(prompted.prefix_ids)] == prompted.prefix_ids


@pytest.mark.parametrize("method", ["prompt-tuning", "lora-lm"])
def test_prediction_through_prompting_scorer_matches_the_peft_model(method, tiny_llama_dir):
    """prompting.score_rows (soft prompt prepended, or LoRA merged) gives the label-word log-probs of peft's own forward."""
    config = config_for(tiny_llama_dir, method, virtual_tokens=5)
    tokenizer = prompting.models.load_tokenizer(str(tiny_llama_dir))
    prompted = prompt_learning.Prompted(config, tokenizer, LABELS)
    model = prompt_learning.build(config, tokenizer).eval()
    offset = config.virtual_tokens if method == "prompt-tuning" else 0
    with torch.no_grad():  # any trained state, not just the initial one
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.5)
    texts = ["great fun", "terrible service , never again"]
    probs = prompt_learning.predict(model, config, prompted, texts)
    expected = []
    with torch.no_grad():
        for text in texts:
            context = prompted.prefix_ids + prompted.query_ids(text, 64)
            scores = []
            for ids in prompted.label_ids:
                logits = model(input_ids=torch.tensor([context + ids])).logits[0, offset:]  # (T, V)
                logp = torch.log_softmax(logits.float(), -1)
                scores.append(sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(ids)))
            expected.append(prompting.softmax(np.array(scores)))
    np.testing.assert_allclose(probs, np.array(expected), atol=1e-4)


@pytest.mark.parametrize("method", ["prompt-tuning", "lora-lm"])
def test_decoder_methods_train_their_parameters_and_write_the_contract(method, tiny_llama_dir, tmp_path):
    config = config_for(tiny_llama_dir, method, lr=5e-2, epochs=3, virtual_tokens=4)
    built = finetune.build_model(config, LABELS)
    trainable = {n for n, p in built.named_parameters() if p.requires_grad}
    assert trainable and all(("prompt_encoder" in n) if method == "prompt-tuning" else ("lora_" in n) for n in trainable)
    run = RunDir(tmp_path / method).create({"kind": "finetune"})
    eval_frame = toy_frame(8, "test")
    result = finetune.train(config, toy_frame(32), None, eval_frame, LABELS, run)
    m = result.metrics
    assert m["trainable_params"] == base.count_parameters(built).trainable < m["total_params"]
    assert m["steps"] == 12 and m["n_examples"] == 8
    assert not run.history().dropna(subset=["loss"]).empty
    before = {n: p.detach() for n, p in built.named_parameters() if p.requires_grad}  # same seed, same start as train()'s model
    after = dict(result.model.named_parameters())
    assert all(not torch.equal(before[n], after[n].detach()) for n in before), "a trainable tensor did not move"
    frozen = [n for n, p in after.items() if not p.requires_grad]
    assert frozen and all(torch.equal(dict(built.named_parameters())[n].detach(), after[n].detach()) for n in frozen[:20])
    assert (run.path / "model" / "adapter_model.safetensors").exists() and (
        run.path / "model" / prompt_learning.SPEC_FILE
    ).exists()
    with pytest.raises(UserError, match="label words"):
        finetune.load_run_model(run.path)


@pytest.mark.parametrize("method", finetune.DECODER_ONLY)
def test_decoder_methods_refuse_an_encoder(method, tiny_bert_dir):
    with pytest.raises(UserError, match="needs a decoder"):
        finetune.check_method_fits(config_for(tiny_bert_dir, method))


def test_label_words_are_what_the_decoder_learns_to_answer(tiny_llama_dir):
    """Numeric labels were trained (and scored) as the words '0' and '1'; --label-words gives them meaning, as on prompts."""
    tokenizer = prompting.models.load_tokenizer(str(tiny_llama_dir))
    config = config_for(tiny_llama_dir, "lora-lm", label_words=["negative=awful", "positive=lovely"])
    prompted = prompt_learning.Prompted(config, tokenizer, LABELS)
    words = prompting.verbalizer(prompted.pc, LABELS)
    assert words == ["awful", "lovely"] and "awful, lovely" in tokenizer.decode(prompted.prefix_ids)
    default = prompt_learning.Prompted(config_for(tiny_llama_dir, "lora-lm"), tokenizer, LABELS)
    assert prompted.label_ids != default.label_ids  # the training target changed with the words
    with pytest.raises(UserError, match="lora takes none|trains a classifier"):
        config_for(tiny_llama_dir, "lora", label_words=["negative=awful"])
    with pytest.raises(UserError, match="does not have: neutral"):
        prompt_learning.Prompted(config_for(tiny_llama_dir, "prompt-tuning", label_words=["neutral=meh"]), tokenizer, LABELS)
