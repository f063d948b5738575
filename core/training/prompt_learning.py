"""Prompt learning on a decoder: a soft prompt (peft PromptTuning) or LoRA trained with the LM loss on the label word.

Both train on the zero-shot prompt of core.prompting (its default instruction and query template, its verbalizer) with the
loss only on the label word's tokens (LM-BFF style), and predict through prompting.score_rows, the scorer of prompting runs,
so a prompting run, a prompt-tuning run and a lora-lm run on the same model compare like for like."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core import models, prompting
from core.comparison import evaluate
from core.errors import UserError
from core.runs import RunDir
from core.training.base import (
    FinetuneConfig,
    FinetuneResult,
    count_parameters,
    make_progress_callback,
    training_arguments,
    with_lora,
)

SPEC_FILE = "prompt_learning.json"


def prompt_config(config: FinetuneConfig) -> prompting.PromptConfig:
    """The zero-shot prompt both methods train on and are scored with (no calibration: the model learns the label prior)."""
    return prompting.PromptConfig(
        model=config.model, shots=0, calibration="none", label_words=config.label_words, device=config.device
    )


class Prompted:
    """Token ids of the shared prefix, of each text's query, and of each label word, as prompting builds them."""

    def __init__(self, config: FinetuneConfig, tokenizer, label_names: list[str]):
        pc = prompt_config(config)
        words = prompting.verbalizer(pc, label_names)
        parts = prompting.prompt_parts(pc, tokenizer, words, pd.DataFrame({"text": [], "label": []}), label_names, "x")
        self.pc, self.tokenizer = pc, tokenizer
        self.prefix_ids = prompting.encode(tokenizer, parts.prefix, special=True)
        self.label_ids = prompting.label_token_ids(tokenizer, parts)
        if any(not ids for ids in self.label_ids):
            raise UserError("A label word turned into no tokens at all; choose another word.")

    def query_ids(self, text: str, max_length: int) -> list[int]:
        return prompting.encode(self.tokenizer, prompting.fill(self.pc.query_template, str(text)))[:max_length]

    def training_rows(self, frame: pd.DataFrame, label_names: list[str], max_length: int) -> list[dict]:
        """input_ids = prefix + query + label word; labels = -100 except on the label word's tokens."""
        index = {n: i for i, n in enumerate(label_names)}
        rows = []
        for text, label in zip(frame["text"], frame["label"]):
            context = self.prefix_ids + self.query_ids(text, max_length)
            target = self.label_ids[index[label]]
            rows.append({"input_ids": context + target, "labels": [-100] * len(context) + target})
        return rows


def pad_collator(pad_id: int):
    """Right-pads input_ids (pad_id), labels (-100) and builds the attention mask."""
    import torch

    def collate(batch: list[dict]) -> dict:
        T = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), T), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(b["input_ids"]), torch.tensor(b["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


class SoftPromptBody:
    """Stands in for a causal LM's base_model in prompting.score_rows: prepends the learned soft prompt to every row."""

    def __init__(self, lm, prompt):
        self.lm, self.prompt = lm, prompt  # prompt: (V, H) embeddings

    def forward(self, input_ids, attention_mask, position_ids, use_cache=False, past_key_values=None):
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        B, V = input_ids.shape[0], self.prompt.shape[0]
        embeds = torch.cat(
            [self.prompt.unsqueeze(0).expand(B, -1, -1).to(self.lm.dtype), self.lm.get_input_embeddings()(input_ids)], 1
        )
        if (
            attention_mask.dim() == 4
        ):  # label tries: an additive (B, 1, T, S) mask; the soft prompt sees itself causally, every row sees it
            T, S, low = attention_mask.shape[2], attention_mask.shape[3], torch.finfo(attention_mask.dtype).min
            own = torch.full((V, V), low, dtype=attention_mask.dtype, device=attention_mask.device).triu(1)  # (V, V)
            top = torch.cat([own, torch.full((V, S), low, dtype=own.dtype, device=own.device)], 1).expand(B, 1, V, V + S)
            rows = torch.cat([torch.zeros(B, 1, T, V, dtype=own.dtype, device=own.device), attention_mask], 3)  # (B, 1, T, V + S)
            mask = torch.cat([top, rows], 2)  # (B, 1, V + T, V + S)
        else:
            mask = torch.cat([torch.ones(B, V, dtype=attention_mask.dtype, device=attention_mask.device), attention_mask], 1)
        positions = torch.cat([torch.arange(V, device=position_ids.device).expand(B, V), position_ids + V], 1)
        out = self.lm.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False)
        return BaseModelOutput(last_hidden_state=out.last_hidden_state[:, V:])

    __call__ = forward


class SoftPromptLM:
    """A frozen causal LM plus a soft prompt, with the attributes prompting.score_rows reads."""

    def __init__(self, lm, prompt):
        self.lm, self.config, self.base_model = lm, lm.config, SoftPromptBody(lm, prompt)

    def parameters(self):
        return self.lm.parameters()

    def get_output_embeddings(self):
        return self.lm.get_output_embeddings()


def score(
    model, prompted: Prompted, texts: list[str], max_length: int, batch_size: int, soft_prompt=None, progress=None
) -> np.ndarray:
    """(N, C) label probabilities from prompting.score_rows (summed label-token log-probs, softmax over labels)."""
    queries = [prompted.query_ids(t, max_length) for t in texts]
    if soft_prompt is not None:  # the soft prompt comes first, so the text prefix goes into every row (nothing cached)
        scorer, prefix, rows = SoftPromptLM(model, soft_prompt), [], [prompted.prefix_ids + q for q in queries]
    else:
        scorer, prefix, rows = model, prompted.prefix_ids, queries
    sums = prompting.score_rows(
        scorer,
        prefix,
        prompting.label_rows(rows, prompted.label_ids),
        len(texts),
        len(prompted.label_ids),
        batch_size,
        prompted.tokenizer.pad_token_id or 0,
        progress,
    )
    return prompting.softmax(prompting.label_scores(sums, [len(ids) for ids in prompted.label_ids], "sum"))


def build(config: FinetuneConfig, tokenizer, device: str = "cpu"):
    """The causal LM wrapped for the method: peft PromptTuning (initialised from the instruction's token embeddings) or LoRA."""
    import torch
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, set_seed

    set_seed(config.seed)
    lm = models._from_pretrained(AutoModelForCausalLM, models._converted(models.resolve(config.model)), use_safetensors=True).to(
        device
    )
    if config.method == "lora-lm":
        return with_lora(lm, config, "CAUSAL_LM")
    model = get_peft_model(lm, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.virtual_tokens))
    init = prompting.encode(tokenizer, prompt_config(config).instruction.replace("{labels}", "")) or [0]
    ids = torch.tensor([init[i % len(init)] for i in range(config.virtual_tokens)], device=device)
    with torch.no_grad():  # Lester et al.: start from real token embeddings, not noise
        model.prompt_encoder["default"].embedding.weight.copy_(lm.get_input_embeddings()(ids))
    return model


def train(
    config: FinetuneConfig,
    train_frame: pd.DataFrame,
    dev_frame: pd.DataFrame | None,
    eval_frame: pd.DataFrame,
    label_names: list[str],
    run: RunDir | None = None,
    stop: threading.Event | None = None,
    work_dir=None,
    on_model_ready=None,
) -> FinetuneResult:
    """Train the soft prompt or the LoRA weights with the HF Trainer, score eval_frame like prompting, save the adapter
    (no dev set, no checkpoints)."""
    from transformers import PrinterCallback, Trainer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    stop = stop or threading.Event()
    device = models.choose_device(config.device)
    tokenizer = models.load_tokenizer(config.model)
    prompted = Prompted(config, tokenizer, label_names)
    model = build(config, tokenizer, "cpu")
    params = count_parameters(model)
    if on_model_ready is not None:
        on_model_ready(params)
    if stop.is_set():
        return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
    rows = prompted.training_rows(train_frame, label_names, config.max_length)
    work = tempfile.mkdtemp(prefix="pft-plm-")
    args = training_arguments(config, work, len(rows), device, params.total, run, remove_unused_columns=False)
    callback = make_progress_callback(run, stop, config.max_train_seconds, has_dev=False)
    trainer = Trainer(
        model=model, args=args, data_collator=pad_collator(tokenizer.pad_token_id or 0), train_dataset=rows, callbacks=[callback]
    )
    trainer.remove_callback(PrinterCallback)
    try:
        started = time.time()
        out = trainer.train()
        train_seconds = time.time() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if callback.stopped_by == "cancelled" or stop.is_set():
        return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
    model = trainer.model.eval()
    started = time.time()
    probs = predict(model, config, prompted, list(eval_frame["text"]))
    eval_seconds = time.time() - started
    n_seen = min(int(out.global_step) * config.batch_size, int(len(rows) * config.epochs))
    metrics = evaluate.classification_metrics(list(eval_frame["label"]), [label_names[i] for i in probs.argmax(1)], label_names)
    metrics.update(
        seconds=round(train_seconds + eval_seconds, 3),
        examples_per_second=round(len(eval_frame) / eval_seconds, 3) if eval_seconds else None,
        train_seconds=round(train_seconds, 3),
        train_examples_per_second=round(n_seen / train_seconds, 3) if train_seconds else None,
        eval_seconds=round(eval_seconds, 3),
        trainable_params=params.trainable,
        total_params=params.total,
        steps=int(out.global_step),
        epochs_done=round(float(trainer.state.epoch or 0), 4),
        best_dev_macro_f1=None,
        stopped_by=callback.stopped_by,
        device=device,
        world_size=1,
        prefix_tokens=len(prompted.prefix_ids) + (config.virtual_tokens if config.method == "prompt-tuning" else 0),
    )
    predictions = evaluate.predictions_frame(eval_frame["id"], eval_frame["text"], eval_frame["label"], probs, label_names)
    if run is not None:
        save(model, tokenizer, label_names, config, prompted, run.path / "model")
    return FinetuneResult(metrics, predictions, callback.stopped_by, model=model)


def predict(model, config: FinetuneConfig, prompted: Prompted, texts: list[str]) -> np.ndarray:
    """Label probabilities of a trained peft model: soft prompt prepended, or LoRA merged into a copy, then prompting's scorer."""
    import copy

    import torch

    batch = max(8, config.batch_size)
    if config.method == "prompt-tuning":
        prompt = model.get_prompt_embedding_to_save(adapter_name="default").detach()
        with torch.no_grad():
            return score(model.get_base_model(), prompted, texts, config.max_length, batch, soft_prompt=prompt)
    merged = copy.deepcopy(model).merge_and_unload().eval()
    return score(merged, prompted, texts, config.max_length, batch)


def save(model, tokenizer, label_names: list[str], config: FinetuneConfig, prompted: Prompted, path: Path) -> None:
    """The peft adapter (soft prompt or LoRA weights, safetensors), tokenizer, labels, base model and its training prompt."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / "labels.json").write_text(json.dumps(label_names))
    (tmp / "base_model.json").write_text(json.dumps({"model": config.model, "method": config.method}))
    (tmp / SPEC_FILE).write_text(
        json.dumps(
            {
                "instruction": prompted.pc.instruction,
                "query_template": prompted.pc.query_template,
                "label_words": prompting.verbalizer(prompted.pc, label_names),
                "method": config.method,
            }
        )
    )
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
