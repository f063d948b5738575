"""Classifiers trained by the HF Trainer: full, head (linear probe), bitfit, lora and adapter (Houlsby bottlenecks), on the
model's own classification head or a mean-pooled one (core.training.pooled); torchrun-able."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core import distributed, models
from core.comparison import evaluate
from core.errors import UserError
from core.runs import RunDir
from core.training.base import (
    FinetuneConfig,
    FinetuneResult,
    count_parameters,
    make_progress_callback,
    predict_probs,
    training_arguments,
    with_lora,
)


def head_parameter_names(model) -> set[str]:
    """Names of the task head's parameters: everything outside the pretrained body (classifier/score, BERT's pooler is body)."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    return {n for n, _ in model.named_parameters() if not n.startswith(prefix)}


def apply_method(model, config: FinetuneConfig):
    """Freeze what the method leaves fixed (or wrap in LoRA); returns the model to train."""
    if config.method == "lora":
        return with_lora(model, config, "SEQ_CLS")
    if config.method == "adapter":
        from core.training import adapters

        if not adapters.add_adapters(model.body, config.adapter_reduction):
            raise UserError(
                f"No attention or feed-forward output projections were found in {config.model} to put adapters after."
            )
        adapters.mark_trainable(model, model.base_model_prefix)
        return model
    if config.method in ("full", "setfit"):
        for p in model.parameters():
            p.requires_grad = True
        return model
    head = head_parameter_names(model) if config.method != "knn" else set()  # logreg trains what "head" trains
    for name, p in model.named_parameters():
        p.requires_grad = name in head or (config.method == "bitfit" and name.endswith(".bias"))
    return model


def uses_mean_pooling(config: FinetuneConfig) -> bool:
    """Whether the classifier reads mean-pooled token states (core.training.pooled), not the model's own classification head."""
    from core.training import pooled

    if config.method == "adapter":  # adapters live in core.training.pooled's classifier, whatever the encoder
        return True
    return config.pooling == "mean" or (config.pooling == "auto" and pooled.is_sentence_transformer(config.model))


def build_model(config: FinetuneConfig, label_names: list[str], device: str = "cpu"):
    """A fresh classification model for config.model with the method applied (seeded head)."""
    from transformers import set_seed

    set_seed(config.seed)
    if uses_mean_pooling(config):
        from core.training import pooled

        # unit-length features cap the logits of a freshly initialised head, so gradient-trained heads read the raw mean
        model = pooled.build(config.model, label_names, device, attention="sdpa", normalize=False)
    else:
        model = models.load_for_classification(config.model, label_names, device)
    return apply_method(model, config)


class EncodedTexts:
    """Tokenized texts (no padding; the collator pads each batch) and label ids, as a map-style torch dataset."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: list[int]):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.encodings.items()}, "labels": self.labels[i]}


def encode(tokenizer, frame: pd.DataFrame, label_names: list[str], max_length: int) -> EncodedTexts:
    """Tokenize a split in one batched call (fast tokenizer), truncating to max_length."""
    index = {name: i for i, name in enumerate(label_names)}
    enc = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return EncodedTexts({k: enc[k] for k in keys}, [index[lab] for lab in frame["label"]])


def ordered_eval_trainer_class():
    """A Trainer whose evaluation keeps the dataset's order (transformers 5 length-groups eval batches, shuffling predictions)."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class OrderedEvalTrainer(Trainer):
        def _get_eval_sampler(self, eval_dataset):
            return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    return OrderedEvalTrainer


def compute_metrics_for(label_names: list[str]):
    """compute_metrics for the Trainer: accuracy and macro-F1 from logits (what early stopping watches)."""

    def compute(eval_pred) -> dict:
        logits, label_ids = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        pred = np.asarray(logits).argmax(axis=-1)
        m = evaluate.classification_metrics([label_names[i] for i in label_ids], [label_names[i] for i in pred], label_names)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    return compute


def train(
    config: FinetuneConfig,
    train_frame: pd.DataFrame,
    dev_frame: pd.DataFrame | None,
    eval_frame: pd.DataFrame,
    label_names: list[str],
    run: RunDir | None = None,
    stop: threading.Event | None = None,
    work_dir: Path | None = None,
    on_model_ready=None,
) -> FinetuneResult:
    """Train with the HF Trainer, keep the best dev checkpoint, evaluate on eval_frame, save the model into run/model."""
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    stop = stop or threading.Event()
    device = models.choose_device(config.device)
    tokenizer = models.load_tokenizer(config.model)
    model = build_model(config, label_names, "cpu")  # the Trainer moves it to its device
    params = count_parameters(model)
    if on_model_ready is not None:
        on_model_ready(params)
    if stop.is_set():
        return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
    train_set = encode(tokenizer, train_frame, label_names, config.max_length)
    dev_set = encode(tokenizer, dev_frame, label_names, config.max_length) if dev_frame is not None and len(dev_frame) else None
    has_dev = dev_set is not None
    world = distributed.world_size()
    # under torchrun every rank must name the same checkpoint folder, so callers pass one
    checkpoints = Path(tempfile.mkdtemp(prefix="pft-ckpt-")) if work_dir is None else Path(work_dir)
    args = training_arguments(config, checkpoints, len(train_set), device, params.total, run, has_dev=has_dev)
    OrderedEvalTrainer = ordered_eval_trainer_class()
    callback = make_progress_callback(run, stop, config.max_train_seconds, has_dev)
    callbacks = [callback]
    if has_dev and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = OrderedEvalTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_set,
        eval_dataset=dev_set,
        processing_class=tokenizer,
        compute_metrics=compute_metrics_for(label_names),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # history.jsonl is the log; stdout stays readable
    try:
        started = time.time()
        train_out = trainer.train()
        train_seconds = time.time() - started
        if callback.stopped_by == "cancelled" or stop.is_set():
            return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
        stopped_by = callback.stopped_by
        if stopped_by == "epochs" and trainer.state.global_step < trainer.state.max_steps:
            stopped_by = "early_stopping"
        started = time.time()
        probs = predict_sharded(trainer, tokenizer, list(eval_frame["text"]), config.max_length)  # (N, C)
        eval_seconds = time.time() - started
        n_train_seen = int(train_out.global_step * config.batch_size * world)
        metrics = evaluate.classification_metrics(
            list(eval_frame["label"]), [label_names[i] for i in probs.argmax(axis=1)], label_names
        )
        metrics.update(
            seconds=round(train_seconds + eval_seconds, 3),
            examples_per_second=round(len(eval_frame) / eval_seconds, 3) if eval_seconds else None,
            train_seconds=round(train_seconds, 3),
            train_examples_per_second=round(min(n_train_seen, len(train_set) * config.epochs) / train_seconds, 3)
            if train_seconds
            else None,
            eval_seconds=round(eval_seconds, 3),
            trainable_params=params.trainable,
            total_params=params.total,
            steps=int(train_out.global_step),
            epochs_done=round(float(trainer.state.epoch or 0), 4),
            best_dev_macro_f1=trainer.state.best_metric,
            stopped_by=stopped_by,
            device=device,
            world_size=world,
        )
        predictions = evaluate.predictions_frame(eval_frame["id"], eval_frame["text"], eval_frame["label"], probs, label_names)
        if run is not None and trainer.is_world_process_zero():
            save_model(trainer, tokenizer, label_names, config, run.path / "model")
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
        return FinetuneResult(metrics, predictions, stopped_by, model=trainer.model)
    finally:
        if distributed.is_main_process():  # checkpoints only served to keep the best weights until the end
            shutil.rmtree(checkpoints, ignore_errors=True)


def predict_sharded(trainer, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Class probabilities (N, C) of the trained model; under torchrun each process scores every world-th text and every
    process gets the whole table in the original order, equal to one process scoring them all."""
    rank, world = distributed.shard()
    model = trainer.model.eval()
    with trainer.autocast_smart_context_manager():  # the training's mixed precision, as Trainer.predict would
        part = predict_probs(model, tokenizer, texts[rank::world], trainer.args.per_device_eval_batch_size, max_length)
    if world == 1:
        return part
    whole = np.zeros((len(texts), part.shape[1]))
    whole[rank::world] = part
    return distributed.all_sum(whole)


def save_model(trainer, tokenizer, label_names: list[str], config: FinetuneConfig, path: Path) -> None:
    """Weights as safetensors (for LoRA: the adapter and the head), tokenizer, labels and the base model name."""
    from core.training import pooled

    model = trainer.model
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if isinstance(inner, pooled.PooledClassifier):  # mean-pooled head: body (LoRA merged into a copy) + head.safetensors
        if hasattr(model, "merge_and_unload"):
            inner = copy.deepcopy(model).merge_and_unload()
        pooled.save_run_model(inner, tokenizer, label_names, config.model, config.method, path, save_body=True)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "labels.json").write_text(json.dumps(label_names))
    (tmp / "base_model.json").write_text(json.dumps({"model": config.model, "method": config.method}))
    for junk in tmp.glob("training_args.bin"):  # a pickle: never kept beside the weights
        junk.unlink()
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
