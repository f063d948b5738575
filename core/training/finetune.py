"""Fine-tuning: the methods (one Method record each, here; its code in a module of its own), dispatch to the chosen one,
what is checked and chosen before training (fit to the model, dev set, row cap), and reloading a run's classifier.

The methods: core.training.classifier (full, head, bitfit, lora, adapter on the HF Trainer), core.training.embeddings_clf
(logreg, knn, setfit) and core.training.prompt_learning (prompt-tuning, lora-lm); what they share is core.training.base."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd

from core import data, models
from core.errors import UserError
from core.runs import RunDir
from core.training import classifier, embeddings_clf, prompt_learning
from core.training.base import METHODS, FinetuneConfig, FinetuneResult, Method, ParameterCount, count_parameters

# What `python -m core search` (core/search.py) tunes: see Method.search_space. logreg's C and SetFit's iterations are
# constants, not settings, so they are not searched; knn has nothing to tune.
EPOCHS_SPACE = {"low": 1, "high": 4, "int": True}
BATCH_SPACE = [8, 16, 32]
SHORT_EPOCHS = {"low": 1, "high": 3, "int": True}
# The methods, in the order the CLI and the page list them. default_lr: the best of sweeps on SST-2 with MiniLM
# (bench/methods.py; lora: 5,000 rows, 3 epochs, mean-pooled head: 5e-4 0.866, 1e-3 0.875) unless said otherwise.
METHODS.update(
    (m.name, m)
    for m in (
        Method(
            "full",
            classifier.train,
            "all weights",
            shardable=True,
            default_lr=1e-4,
            search_space={"lr": {"low": 1e-5, "high": 3e-4, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE},
        ),
        Method(
            "head",
            classifier.train,
            "linear probe",
            shardable=True,
            default_lr=3e-2,
            search_space={"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE},
        ),
        Method(
            "bitfit",
            classifier.train,
            "biases + head",
            shardable=True,
            default_lr=3e-3,
            search_space={"lr": {"low": 3e-4, "high": 3e-2, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE},
        ),
        Method(
            "lora",
            classifier.train,
            "low-rank adapters",
            shardable=True,
            default_lr=1e-3,
            search_space={
                "lr": {"low": 1e-4, "high": 5e-3, "log": True},
                "epochs": EPOCHS_SPACE,
                "batch_size": BATCH_SPACE,
                "lora_r": [4, 8, 16, 32],
                "lora_alpha": [8, 16, 32],
                "lora_target_modules": ["query+value", "query+key+value", "query+key+value+dense"],
            },
        ),
        # the rest need an encoder's mean-pooled sentence embeddings (core.training.pooled) ...
        Method(
            "adapter",
            classifier.train,
            "bottleneck adapters (Houlsby)",
            fits="encoder",
            shardable=True,
            default_lr=1e-3,
            search_space={
                "lr": {"low": 1e-4, "high": 5e-3, "log": True},
                "epochs": EPOCHS_SPACE,
                "batch_size": BATCH_SPACE,
                "adapter_reduction": [8, 16, 32, 64],
            },
        ),
        Method(
            "logreg",
            embeddings_clf.train_frozen,
            "frozen embeddings + logistic regression (seconds)",
            fits="encoder",
            frozen=True,
        ),
        Method("knn", embeddings_clf.train_frozen, "frozen embeddings + k nearest neighbours", fits="encoder", frozen=True),
        Method(
            "setfit",
            embeddings_clf.train_setfit,
            "contrastive few-shot (SetFit)",
            fits="encoder",
            default_lr=2e-5,  # SetFit's own
            search_space={"lr": {"low": 5e-6, "high": 1e-4, "log": True}, "epochs": SHORT_EPOCHS, "batch_size": BATCH_SPACE},
        ),
        # ... or a causal LM, trained to say the label word after the zero-shot prompt
        # (peft's prompt-tuning rate; LoRA's for the LM loss)
        Method(
            "prompt-tuning",
            prompt_learning.train,
            "soft prompt, scored like prompting",
            fits="decoder",
            default_lr=3e-2,
            search_space={"lr": {"low": 3e-3, "high": 1e-1, "log": True}, "epochs": SHORT_EPOCHS, "virtual_tokens": [10, 20, 40]},
        ),
        Method(
            "lora-lm",
            prompt_learning.train,
            "LoRA on the label word, scored like prompting",
            fits="decoder",
            default_lr=5e-4,
            search_space={
                "lr": {"low": 1e-4, "high": 2e-3, "log": True},
                "epochs": SHORT_EPOCHS,
                "lora_r": [4, 8, 16],
                "lora_alpha": [8, 16, 32],
            },
        ),
    )
)
ENCODER_ONLY = tuple(name for name, m in METHODS.items() if m.fits == "encoder")
DECODER_ONLY = tuple(name for name, m in METHODS.items() if m.fits == "decoder")
SHARDED_METHODS = tuple(name for name, m in METHODS.items() if m.shardable)
FROZEN_METHODS = tuple(name for name, m in METHODS.items() if m.frozen)
DEFAULT_LR = {name: m.default_lr for name, m in METHODS.items() if m.default_lr is not None}
SEARCH_SPACE = {name: m.search_space for name, m in METHODS.items()}  # what core.search tunes per method
# The Fine-tune page's default time budget. The default run (MiniLM, full, 3 epochs) takes 340-362 CPU-seconds on each
# bundled sample, about 3-4 minutes on a 2-core laptop; 600 s lets all three finish with room to spare.
PAGE_TIME_BUDGET_SECONDS = 600


def method_fits(method: str, role: str) -> bool:
    """Whether a method can train a model of this role ("encoder" | "decoder")."""
    return METHODS[method].fits_role(role)


def check_method_fits(config: FinetuneConfig) -> None:
    """Refuse, in one sentence, a method that cannot train config.model (e.g. SetFit on a decoder)."""
    role = models.describe(config.model).role
    if not method_fits(config.method, role):
        needs = (
            "a decoder (a causal language model such as smollm2)"
            if role == "encoder"
            else "an encoder (a sentence encoder such as minilm)"
        )
        article = "an" if role == "encoder" else "a"
        raise UserError(f"Method '{config.method}' needs {needs}, and {config.model} is {article} {role}.")
    models.check_max_length(config.model, config.max_length)
    if METHODS[config.method].frozen and (config.device not in ("auto", "cpu") or config.precision not in ("auto", "fp32")):
        raise UserError(
            f"{config.method} embeds on the CPU in full precision; leave --device and --precision at auto (got "
            f"{config.device} and {config.precision})."
        )


def build_model(config: FinetuneConfig, label_names: list[str], device: str = "cpu"):
    """A fresh model for config.model with the method applied (seeded): a classifier, or a decoder method's wrapped causal LM."""
    if METHODS[config.method].fits == "decoder":
        return prompt_learning.build(config, models.load_tokenizer(config.model), device)
    return classifier.build_model(config, label_names, device)


def parameter_counts(config: FinetuneConfig, n_labels: int) -> ParameterCount:
    """Trainable vs total parameters for a config, without training (loads the model on CPU)."""
    return count_parameters(build_model(config, [f"label{i}" for i in range(max(2, n_labels))], "cpu"))


# ---- data ------------------------------------------------------------------------------------


def cap_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n rows, a seeded sample in the original order (n = 0: all)."""
    if not n or n >= len(frame):
        return frame
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def choose_dev(
    config: FinetuneConfig, train_ds: data.Dataset, train_split: str, eval_frame: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(training rows, in-training dev rows or None, a description of the dev set) for config.dev."""
    train = train_ds.splits[train_split]
    choice = config.dev
    if choice == "auto":
        is_sample = train_ds.source in data.list_samples()
        if is_sample and "validation" in train_ds.splits and train_split != "validation":
            return train, train_ds.splits["validation"], f"{train_ds.name}:validation"
        choice = "holdout" if len(train) >= 20 else "eval"
    if choice == "holdout":
        if len(train) < 10:
            raise UserError(f"The training split has {len(train)} rows, too few to hold 10% out for evaluation; use --dev eval.")
        parts = data.stratified_split(train, {"train": 0.9, "dev": 0.1}, config.seed)
        return parts["train"], parts["dev"], "10% of train held out (stratified)"
    if choice == "eval":
        return train, eval_frame, "the evaluation split (no separate dev set)"
    return train, None, "none"


# ---- training --------------------------------------------------------------------------------


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
    """Train with the config's method (see Method.train), evaluate on eval_frame, save the model into run/model."""
    method = METHODS[config.method]
    return method.train(config, train_frame, dev_frame, eval_frame, label_names, run, stop, work_dir, on_model_ready)


# ---- reloading a finished run ----------------------------------------------------------------


def load_run_model(run_path: str | Path, device: str = "cpu", model_dir: Path | None = None):
    """(sequence-classification model in eval mode with eager attention, tokenizer) of a fine-tuned run; LoRA merged.
    model_dir: where the run saved it, when not RUN/model (a continual step's steps/K/model)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = model_dir or Path(run_path) / "model"
    if not (model_dir / "labels.json").exists():
        raise UserError(f"The run at {run_path} has no saved model (only finished fine-tuning runs have one).")
    if (model_dir / "prompt_learning.json").exists():
        raise UserError(
            f"{Path(run_path).name} taught a decoder to answer with label words; it has no classifier to show "
            "(open its base model instead)."
        )
    try:
        label_names = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
        base = json.loads((model_dir / "base_model.json").read_text(encoding="utf-8"))["model"]
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"The saved model of {Path(run_path).name} is incomplete or corrupt ({type(e).__name__}).") from e
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
    }
    try:
        with models.LOAD_LOCK:  # one model load at a time (see models.LOAD_LOCK)
            if (model_dir / "pooling.json").exists():  # a mean-pooled classifier (core.training.pooled)
                from core.training import pooled

                model = pooled.load(model_dir, base, label_names)
            elif (model_dir / "adapter_config.json").exists():
                from peft import PeftModel

                source = models._converted(models.resolve(base))
                model = models._from_pretrained(
                    AutoModelForSequenceClassification,
                    source,
                    attn_implementation="eager",
                    ignore_mismatched_sizes=True,
                    use_safetensors=True,
                    **labels,
                )
                model.config.pad_token_id = tokenizer.pad_token_id
                model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
            else:
                model = AutoModelForSequenceClassification.from_pretrained(
                    str(model_dir),
                    attn_implementation="eager",
                    use_safetensors=True,
                    local_files_only=True,
                    trust_remote_code=False,
                )
    except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f"Could not load the saved model of {Path(run_path).name}: {str(e).splitlines()[0][:200]}") from e
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer
