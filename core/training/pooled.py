"""A classifier on an encoder's mean-pooled token states (the pooling sentence-transformers train with), linear or k-NN head.

Used by logreg, knn and setfit (frozen or contrastively trained body, head fitted by scikit-learn and copied in) and as the
head of full/head/bitfit/lora/adapter fine-tuning on sentence-transformer encoders. Saved as the body (or only a reference to
the unchanged base model), head.safetensors and pooling.json, so Compare, Attention and predictions load it like any run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core import models

POOLING_FILE = "pooling.json"
HEAD_FILE = "head.safetensors"
ADAPTED_BODY_FILE = "adapted_body.safetensors"


def is_sentence_transformer(name: str) -> bool:
    """True when the model folder is a sentence-transformers model that mean-pools (modules.json + a mean Pooling module)."""
    try:
        path = Path(models.resolve(name).path)
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        pooling = next(m for m in modules if m.get("type", "").endswith("Pooling"))
        return bool(
            json.loads((path / pooling["path"] / "config.json").read_text(encoding="utf-8")).get("pooling_mode_mean_tokens")
        )
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return False


def normalizes(name: str) -> bool:
    """True when a sentence-transformers model L2-normalizes its embeddings (a Normalize module in modules.json)."""
    try:
        modules = json.loads((Path(models.resolve(name).path) / "modules.json").read_text(encoding="utf-8"))
        return any(m.get("type", "").endswith("Normalize") for m in modules)
    except (OSError, ValueError, TypeError):
        return False


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) token states -> (B, H) mean over the real (unmasked) tokens."""
    if attention_mask is None:
        return hidden.mean(1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class KnnHead(nn.Module):
    """k nearest training embeddings by cosine similarity; logits are the log vote shares (what KNeighborsClassifier predicts)."""

    def __init__(self, embeddings: torch.Tensor, onehot: torch.Tensor, k: int):
        super().__init__()
        self.register_buffer("embeddings", nn.functional.normalize(embeddings.float(), dim=-1))  # (N, H)
        self.register_buffer("onehot", onehot.float())  # (N, C)
        self.k = int(k)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        sims = nn.functional.normalize(pooled.float(), dim=-1) @ self.embeddings.T  # (B, N)
        idx = sims.topk(min(self.k, sims.shape[1]), dim=-1).indices  # (B, k)
        votes = self.onehot[idx].mean(1)  # (B, k, C) -> (B, C)
        return torch.log(votes.clamp(min=1e-6))


class PooledClassifier(nn.Module):
    """body (a head-less encoder) -> mean pooling -> optional L2 normalisation -> head; returns an HF-style output."""

    base_model_prefix = "body"  # what classifier.head_parameter_names reads: everything else is the head

    def __init__(self, body, label_names: list[str], normalize: bool = False, head: nn.Module | None = None):
        super().__init__()
        if getattr(body, "pooler", None) is not None:
            body.pooler = None  # BERT's CLS pooler is never used here: neither trained nor counted
        self.body = body
        self.normalize = normalize
        self.classifier = head if head is not None else nn.Linear(body.config.hidden_size, len(label_names))
        self.config = body.config
        self.config.num_labels = len(label_names)
        self.config.id2label = dict(enumerate(label_names))
        self.config.label2id = {n: i for i, n in enumerate(label_names)}

    def get_input_embeddings(self):
        return self.body.get_input_embeddings()

    def embed(self, input_ids=None, attention_mask=None, **kwargs) -> torch.Tensor:
        """(B, H) sentence embeddings."""
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=False,
        **_,
    ):
        from transformers.modeling_outputs import SequenceClassifierOutput

        kwargs = {"inputs_embeds": inputs_embeds, "output_attentions": output_attentions}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        logits = self.classifier(pooled)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, attentions=out.attentions if output_attentions else None)

    def set_linear_head(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        """Copy (C, H) weights and (C,) biases (e.g. a fitted scikit-learn LogisticRegression's) into the linear head."""
        with torch.no_grad():
            self.classifier.weight.copy_(torch.as_tensor(coef, dtype=self.classifier.weight.dtype))
            self.classifier.bias.copy_(torch.as_tensor(intercept, dtype=self.classifier.bias.dtype))

    def save(self, path: Path, save_body: bool = True) -> None:
        """head.safetensors + pooling.json, and the body's weights when it was trained (else it is re-read from the base)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        from core.training import adapters

        reduction = adapters.reduction_of(self.body)
        if save_body and reduction:  # adapter weights live inside the body: its whole state, re-adapted on load
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in self.body.state_dict().items()}, str(path / ADAPTED_BODY_FILE)
            )
        elif save_body:
            self.body.save_pretrained(str(path), safe_serialization=True)
        head = {k: v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()}
        save_file(head, str(path / HEAD_FILE))
        kind = {"head": "knn", "k": self.classifier.k} if isinstance(self.classifier, KnnHead) else {"head": "linear"}
        (path / POOLING_FILE).write_text(
            json.dumps(
                {"pooling": "mean", "normalize": self.normalize, "body_saved": save_body, "adapter_reduction": reduction, **kind}
            )
        )


def build(
    name: str, label_names: list[str], device: str = "cpu", attention: str = "eager", normalize: bool | None = None
) -> PooledClassifier:
    """A fresh PooledClassifier on model `name` (trainable body, new seeded linear head); normalize None: as the model does."""
    from transformers import AutoModel

    body = models._from_pretrained(
        AutoModel, models._converted(models.resolve(name)), attn_implementation=attention, use_safetensors=True
    )
    return PooledClassifier(body, label_names, normalize=normalizes(name) if normalize is None else normalize).to(device)


def load(model_dir: Path, base: str, label_names: list[str]) -> PooledClassifier:
    """A saved PooledClassifier (body from model_dir, or from the base model when it was frozen) in eval mode, eager attention."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from core.training import adapters

    spec = json.loads((Path(model_dir) / POOLING_FILE).read_text(encoding="utf-8"))
    reduction = int(spec.get("adapter_reduction") or 0)
    if spec.get("body_saved", True) and not reduction:
        with models.LOAD_LOCK:
            body = AutoModel.from_pretrained(
                str(model_dir), attn_implementation="eager", use_safetensors=True, local_files_only=True, trust_remote_code=False
            )
    else:
        body = models._from_pretrained(
            AutoModel, models._converted(models.resolve(base)), attn_implementation="eager", use_safetensors=True
        )
    state = load_file(str(Path(model_dir) / HEAD_FILE))
    head = KnnHead(state["embeddings"], state["onehot"], int(spec["k"])) if spec.get("head") == "knn" else None
    if reduction:
        adapters.add_adapters(body, reduction)
    model = PooledClassifier(body, label_names, normalize=bool(spec.get("normalize")), head=head)
    if reduction:
        model.body.load_state_dict(load_file(str(Path(model_dir) / ADAPTED_BODY_FILE)))
    if head is None:
        model.classifier.load_state_dict(state)
    return model.eval()


def save_run_model(
    model: PooledClassifier, tokenizer, label_names: list[str], base_model: str, method: str, path: Path, save_body: bool
) -> None:
    """A run's model/ folder (the classifier, tokenizer, labels and base model), written beside and swapped in whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp, save_body=save_body)
    tokenizer.save_pretrained(str(tmp))
    (tmp / "labels.json").write_text(json.dumps(label_names))
    (tmp / "base_model.json").write_text(json.dumps({"model": base_model, "method": method}))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
