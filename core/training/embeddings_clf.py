"""Classifiers on sentence embeddings: logreg/knn on a frozen encoder (scikit-learn), SetFit (contrastive body + logreg head)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import models
from core.comparison import evaluate
from core.progress import Reporter
from core.runs import RunDir
from core.training.base import (
    FinetuneConfig,
    FinetuneResult,
    ParameterCount,
    count_parameters,
    make_progress_callback,
    predict_probs,
)

if TYPE_CHECKING:  # the module itself imports torch: loaded when a method trains, not when the CLI starts
    from core.training.pooled import PooledClassifier

LOGREG_C = 10.0  # inverse L2 strength on unit-length embeddings (C=1 underfits them; chosen on SST-2 train, bench/methods.py)
KNN_NEIGHBORS = 10
SETFIT_ITERATIONS = 20  # SetFit's pairs per labelled example and pass (its own default)


def embed(
    model: PooledClassifier,
    tokenizer,
    texts: list[str],
    max_length: int,
    batch_size: int = 64,
    on_batch=None,
    stop: threading.Event | None = None,
) -> np.ndarray | None:
    """(N, H) sentence embeddings, batched by length; None when stop was set. on_batch(done) after each batch."""
    import torch

    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            if stop is not None and stop.is_set():
                return None
            idx = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            out[idx] = model.embed(**batch).float().numpy()
            if on_batch is not None:
                on_batch(min(start + batch_size, len(texts)))
    return out


def fit_head(method: str, x: np.ndarray, y: np.ndarray, n_labels: int, seed: int):
    """A fitted LogisticRegression or KNeighborsClassifier (cosine) on embeddings x and label ids y."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    if method == "knn":
        return KNeighborsClassifier(n_neighbors=min(KNN_NEIGHBORS, len(y)), metric="cosine").fit(x, y)
    return LogisticRegression(C=LOGREG_C, max_iter=2000, random_state=seed).fit(x, y)


def class_probs(clf, x: np.ndarray, n_labels: int) -> np.ndarray:
    """predict_proba spread over all n_labels columns (a label absent from training gets 0)."""
    probs = np.zeros((len(x), n_labels))
    probs[:, clf.classes_] = clf.predict_proba(x)
    return probs


def linear_weights(clf, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, H) weights and (C,) biases whose softmax equals a fitted LogisticRegression's predict_proba over all n_labels.

    Binary: scikit-learn keeps one vector z for classes_[1]; logits [0, z] have softmax = its sigmoid. A label never seen in
    training gets bias -1e4 (never predicted)."""
    classes = np.asarray(clf.classes_, dtype=int)
    coef = np.zeros((n_labels, clf.coef_.shape[1]))
    bias = np.full(n_labels, -1e4)
    if len(classes) == 2 and clf.coef_.shape[0] == 1:
        coef[classes[1]], bias[classes[1]], bias[classes[0]] = clf.coef_[0], clf.intercept_[0], 0.0
    else:
        coef[classes], bias[classes] = clf.coef_, clf.intercept_
    return coef, bias


def note_no_logger(config: FinetuneConfig) -> None:
    """Say that --report-to has nothing to log: these methods train outside the HF Trainer."""
    if config.report_to != "none":
        print(f"note: {config.method} trains outside the Trainer, so --report-to {config.report_to} logs nothing.", flush=True)


def train_frozen(
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
    """logreg / knn: embed train and eval with the frozen encoder (mean pooling), fit scikit-learn, save the head only
    (no dev set, no checkpoints)."""
    import torch

    from core.training import pooled

    note_no_logger(config)

    stop = stop or threading.Event()
    torch.manual_seed(config.seed)
    tokenizer = models.load_tokenizer(config.model)
    model = pooled.build(config.model, label_names, "cpu", attention="sdpa").eval()
    body_params = count_parameters(model.body).total
    n_head = model.config.hidden_size * len(label_names) + len(label_names) if config.method == "logreg" else 0
    params = ParameterCount(trainable=n_head, total=body_params + n_head)
    if on_model_ready is not None:
        on_model_ready(params)
    texts = list(train_frame["text"]) + list(eval_frame["text"])
    started = time.time()
    report = Reporter(run)  # status.json only: texts embedded, ETA
    x_all = embed(model, tokenizer, texts, config.max_length, on_batch=lambda done: report(done, len(texts)), stop=stop)
    if x_all is None:
        return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
    embed_seconds = time.time() - started
    x_train, x_eval = x_all[: len(train_frame)], x_all[len(train_frame) :]
    index = {n: i for i, n in enumerate(label_names)}
    y = np.array([index[lab] for lab in train_frame["label"]])
    fit_started = time.time()
    clf = fit_head(config.method, x_train, y, len(label_names), config.seed)
    fit_seconds = time.time() - fit_started
    probs = class_probs(clf, x_eval, len(label_names))
    if config.method == "knn":
        model.classifier = pooled.KnnHead(
            torch.as_tensor(x_train), torch.nn.functional.one_hot(torch.as_tensor(y), len(label_names)), clf.n_neighbors
        )
    else:
        model.set_linear_head(*linear_weights(clf, len(label_names)))
    train_seconds = len(train_frame) / len(texts) * embed_seconds + fit_seconds
    eval_seconds = embed_seconds - len(train_frame) / len(texts) * embed_seconds
    metrics = evaluate.classification_metrics(list(eval_frame["label"]), [label_names[i] for i in probs.argmax(1)], label_names)
    metrics.update(
        seconds=round(embed_seconds + fit_seconds, 3),
        examples_per_second=round(len(eval_frame) / eval_seconds, 3) if eval_seconds else None,
        train_seconds=round(train_seconds, 3),
        train_examples_per_second=round(len(train_frame) / train_seconds, 3) if train_seconds else None,
        eval_seconds=round(eval_seconds, 3),
        trainable_params=params.trainable,
        total_params=params.total,
        steps=1,
        epochs_done=1.0,
        best_dev_macro_f1=None,
        stopped_by="epochs",
        device="cpu",
        world_size=1,
    )
    predictions = evaluate.predictions_frame(eval_frame["id"], eval_frame["text"], eval_frame["label"], probs, label_names)
    if run is not None:
        pooled.save_run_model(model, tokenizer, label_names, config.model, config.method, run.path / "model", save_body=False)
    return FinetuneResult(metrics, predictions, "epochs", model=model)


def train_setfit(
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
    """SetFit: contrastive fine-tuning of the sentence encoder on label-pair similarity, then a LogisticRegression head
    (no dev set, no checkpoints)."""
    import shutil

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from transformers import PrinterCallback

    from core.training import pooled

    note_no_logger(config)
    stop = stop or threading.Event()
    source = models._converted(models.resolve(config.model))
    try:
        with models.LOAD_LOCK:
            sf = SetFitModel.from_pretrained(
                source.path, local_files_only=source.bundled or os.path.isdir(source.path), labels=list(label_names)
            )
    except OSError as e:
        from core.errors import UserError

        raise UserError(f"SetFit could not load '{config.model}' as a sentence encoder: {str(e).splitlines()[0][:160]}") from e
    sf.model_body.max_seq_length = config.max_length
    sf.model_head.set_params(C=LOGREG_C, max_iter=2000, random_state=config.seed)
    body = sf.model_body[0].auto_model
    tokenizer = models.load_tokenizer(config.model)
    n_body = sum(p.numel() for n, p in body.named_parameters() if not n.startswith("pooler."))  # BERT's pooler is never used
    n_head = body.config.hidden_size * len(label_names) + len(label_names)
    params = ParameterCount(trainable=n_body + n_head, total=n_body + n_head)
    if on_model_ready is not None:
        on_model_ready(params)
    index = {n: i for i, n in enumerate(label_names)}
    train_set = Dataset.from_dict({"text": list(train_frame["text"]), "label": [index[lab] for lab in train_frame["label"]]})
    work = tempfile.mkdtemp(prefix="pft-setfit-")
    args = TrainingArguments(
        output_dir=work,
        batch_size=config.batch_size,
        num_epochs=max(1, round(config.epochs)),
        num_iterations=SETFIT_ITERATIONS,
        body_learning_rate=config.learning_rate,
        warmup_proportion=config.warmup_ratio,
        seed=config.seed,
        report_to="none",
        save_strategy="no",
        show_progress_bar=False,
        logging_steps=10,
        max_length=config.max_length,
    )
    callback = make_progress_callback(run, stop, config.max_train_seconds, has_dev=False)
    trainer = Trainer(model=sf, args=args, train_dataset=train_set, callbacks=[callback])
    trainer.st_trainer.remove_callback(PrinterCallback)  # history.jsonl is the log; stdout stays readable
    try:
        started = time.time()
        trainer.train()
        train_seconds = time.time() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if callback.stopped_by == "cancelled" or stop.is_set():
        return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
    model = pooled.PooledClassifier(
        body, label_names, normalize=sf.normalize_embeddings or pooled.normalizes(config.model)
    ).eval()
    model.set_linear_head(*linear_weights(sf.model_head, len(label_names)))
    started = time.time()
    probs = predict_probs(model, tokenizer, list(eval_frame["text"]), max_length=config.max_length)
    eval_seconds = time.time() - started
    steps = int(trainer.st_trainer.state.global_step)  # the sentence-transformers trainer that trains the body
    n_pairs = steps * config.batch_size
    metrics = evaluate.classification_metrics(list(eval_frame["label"]), [label_names[i] for i in probs.argmax(1)], label_names)
    metrics.update(
        seconds=round(train_seconds + eval_seconds, 3),
        examples_per_second=round(len(eval_frame) / eval_seconds, 3) if eval_seconds else None,
        train_seconds=round(train_seconds, 3),
        train_examples_per_second=round(2 * n_pairs / train_seconds, 3) if train_seconds and n_pairs else None,
        eval_seconds=round(eval_seconds, 3),
        trainable_params=params.trainable,
        total_params=params.total,
        steps=steps,
        epochs_done=float(args.embedding_num_epochs),
        best_dev_macro_f1=None,
        stopped_by=callback.stopped_by,
        device=str(sf.device),
        world_size=1,
    )
    predictions = evaluate.predictions_frame(eval_frame["id"], eval_frame["text"], eval_frame["label"], probs, label_names)
    if run is not None:
        pooled.save_run_model(model, tokenizer, label_names, config.model, config.method, run.path / "model", save_body=True)
    return FinetuneResult(metrics, predictions, callback.stopped_by, model=model)
