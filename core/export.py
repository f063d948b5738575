"""`python -m core export RUN DIR`: a finished run as a folder other people load with standard libraries, never with `core`.

What a run becomes depends on what it trained (FORMATS says it in one line each; the model card says it again):

- a classifier read through [CLS] (any encoder with --pooling cls, any decoder): a plain Hugging Face model folder (LoRA
  merged), loaded by `pipeline("text-classification", model=DIR)`;
- a classifier on mean-pooled token states (full/head/bitfit/lora on a sentence-transformer encoder such as MiniLM): the
  same folder with a 60-line modeling_mean_pooled.py (torch and transformers only) named in auto_map, loaded by
  `pipeline(..., trust_remote_code=True)`; no stock transformers class mean-pools a BERT body;
- logreg, knn and setfit: a SetFit folder (a sentence-transformers body with its mean Pooling and Normalize modules, and a
  scikit-learn head in SetFit's model_head.pkl), loaded by `SetFitModel.from_pretrained(DIR)`; model_head.pkl is a joblib
  pickle of scikit-learn's own class, so the linear heads are also written as head.safetensors for a pickle-free load;
- prompt runs: prompt.json (template, label words, demonstrations, calibration) and a card on how to ask any LLM;
- prompt-tuning and lora-lm: the peft adapter with its prompt.json.

Everything is written into a temporary folder beside DIR and renamed into place, so DIR is whole or absent."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from core import model_card, runs
from core.errors import UserError

MARKER = "export.json"  # what this tool writes into every export: the only kind of non-empty DIR --force replaces
MODELING_FILE = Path(__file__).parent / "exported" / "modeling_mean_pooled.py"
SETFIT_METHODS = ("logreg", "knn", "setfit")
FORMATS = {
    "transformers": "a Hugging Face transformers folder: pipeline('text-classification', model=DIR)",
    "transformers+code": "a Hugging Face transformers folder with its mean-pooling code: "
    "pipeline('text-classification', model=DIR, trust_remote_code=True)",
    "setfit": "a SetFit folder (sentence-transformers body, scikit-learn head): SetFitModel.from_pretrained(DIR)",
    "prompt": "prompt.json: the exact prompt, label words, demonstrations and calibration, for any LLM",
    "peft": "a peft adapter for the base decoder, with the prompt it was trained on (prompt.json)",
}


# ---- checks ----------------------------------------------------------------------------------


def check_destination(dest: Path, force: bool) -> None:
    """Refuse a symlink, a file, or a non-empty folder (one that an earlier export made is replaced with --force)."""
    if "\x00" in str(dest):
        raise UserError("The export folder's path contains a NUL byte.")
    if dest.is_symlink():
        raise UserError(f"{dest} is a symbolic link; give a real folder to export into.")
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest} is a file, not a folder; give a new or empty folder to export into.")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise UserError(f"{dest} is not empty; give a new or empty folder, or --force to replace an earlier export there.")
        if not (dest / MARKER).is_file():
            raise UserError(
                f"{dest} is not empty and was not made by export, so --force will not replace it; give another folder."
            )
    if not dest.parent.is_dir():
        raise UserError(f"The folder {dest.parent} does not exist; create it first or export elsewhere.")


def finished_run(ref: str | Path) -> runs.RunDir:
    """The run to export: it must have succeeded, and a trained run must still have its model folder."""
    run = runs.open_run(ref)
    state = run.status.get("state")
    if state in ("queued", "running"):
        raise UserError(f"Run '{run.name}' is still {state}; export it when it has finished.")
    if state != "succeeded" or not run.metrics or not (run.path / "predictions.csv").exists():
        raise UserError(f"Run '{run.name}' did not finish ({state}), so there is nothing to export.")
    kind = run.config.get("kind")
    if kind == "continual":
        raise UserError(f"'{run.name}' is a continual run; export one of its steps instead, e.g. {run.name}.step1.")
    if kind == "finetune" and not (run.path / "model" / "labels.json").is_file():
        raise UserError(f"Run '{run.name}' has no saved model any more (its model folder is missing or incomplete).")
    if kind not in ("finetune", "prompt"):
        raise UserError(f"Run '{run.name}' is of a kind ({kind}) that cannot be exported.")
    return run


def format_of(run: runs.RunDir) -> str:
    """Which of FORMATS a finished run exports as."""
    model_dir = run.path / "model"
    if run.config.get("kind") == "prompt":
        return "prompt"
    if (model_dir / "prompt_learning.json").exists():
        return "peft"
    if (model_dir / "adapted_body.safetensors").exists() or run.config.get("method") == "adapter":
        raise UserError(
            f"Run '{run.name}' trained bottleneck adapters, which cannot be merged into the base weights, so it "
            "cannot be exported as a standard model; export a full, LoRA, logreg or SetFit run instead."
        )
    if (model_dir / "pooling.json").exists():
        return "setfit" if base_info(run)["method"] in SETFIT_METHODS else "transformers+code"
    return "transformers"


def base_info(run: runs.RunDir) -> dict:
    try:
        return json.loads((run.path / "model" / "base_model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"The saved model of {run.name} is incomplete or corrupt ({type(e).__name__}).") from e


def labels_of(run: runs.RunDir) -> list[str]:
    labels = run.metrics.get("labels") or run.config.get("labels")
    if labels:
        return [str(x) for x in labels]
    return json.loads((run.path / "model" / "labels.json").read_text(encoding="utf-8"))


def max_length_of(run: runs.RunDir) -> int:
    from core.training.finetune import FinetuneConfig

    return int(run.config.get("max_length") or FinetuneConfig.max_length)


# ---- writers, one per format -----------------------------------------------------------------


def label_maps(labels: list[str]) -> dict:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}


def write_transformers(run: runs.RunDir, out: Path) -> None:
    """A stock *ForSequenceClassification folder (LoRA already merged by load_run_model), safetensors only."""
    from core.training import finetune

    model, tokenizer = finetune.load_run_model(run.path)
    for key, value in label_maps(labels_of(run)).items():
        setattr(model.config, key, value)
    model.save_pretrained(str(out), safe_serialization=True)
    save_tokenizer(tokenizer, run, out)


def save_tokenizer(tokenizer, run: runs.RunDir, out: Path) -> None:
    """The run's tokenizer, truncating where the run did (pipeline(..., truncation=True) then cuts texts as the run did)."""
    tokenizer.model_max_length = max_length_of(run)
    tokenizer.save_pretrained(str(out))


def write_mean_pooled(run: runs.RunDir, out: Path) -> None:
    """MeanPooledForSequenceClassification (core/exported/modeling_mean_pooled.py) with the run's body and linear head."""
    from safetensors.torch import save_file

    from core.training import finetune

    model, tokenizer = finetune.load_run_model(run.path)  # a PooledClassifier, LoRA merged
    labels = labels_of(run)
    body_config = model.body.config.to_dict()
    for key in (
        "architectures",
        "id2label",
        "label2id",
        "num_labels",
        "auto_map",
        "_name_or_path",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "problem_type",
    ):
        body_config.pop(key, None)
    config = {
        "model_type": "mean-pooled-classifier",
        "architectures": ["MeanPooledForSequenceClassification"],
        "auto_map": {
            "AutoConfig": "modeling_mean_pooled.MeanPooledConfig",
            "AutoModelForSequenceClassification": "modeling_mean_pooled.MeanPooledForSequenceClassification",
        },
        "encoder": body_config,
        "normalize": bool(model.normalize),
        **{k: v for k, v in label_maps(labels).items() if k != "num_labels"},
        "id2label": {str(i): n for i, n in enumerate(labels)},
        "pad_token_id": tokenizer.pad_token_id,
    }
    state = {f"encoder.{k}": v for k, v in model.body.state_dict().items() if not k.startswith("pooler.")}
    state.update({f"classifier.{k}": v for k, v in model.classifier.state_dict().items()})
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"}
    )
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(MODELING_FILE, out / MODELING_FILE.name)
    save_tokenizer(tokenizer, run, out)


def sklearn_head(model, labels: list[str]):
    """The scikit-learn estimator whose predict_proba on the body's embeddings equals the run's head: a LogisticRegression
    with the linear head's weights, or a cosine KNeighborsClassifier on the stored training embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from core.training import pooled

    n = len(labels)
    if isinstance(model.classifier, pooled.KnnHead):
        x = model.classifier.embeddings.numpy()
        y = model.classifier.onehot.numpy().argmax(1)
        return KNeighborsClassifier(n_neighbors=model.classifier.k, metric="cosine").fit(x, y)
    w = model.classifier.weight.detach().double().numpy()  # (C, H)
    b = model.classifier.bias.detach().double().numpy()  # (C,)
    clf = LogisticRegression()
    clf.classes_ = np.arange(n)
    clf.n_features_in_ = w.shape[1]
    clf.n_iter_ = np.array([0])
    if n == 2:  # scikit-learn's binary model: sigmoid(z) for classes_[1], which equals softmax([l0, l1])[1]
        clf.coef_, clf.intercept_ = (w[1] - w[0])[None, :], np.array([b[1] - b[0]])
    else:
        clf.coef_, clf.intercept_ = w, b
    return clf


def write_setfit(run: runs.RunDir, out: Path) -> None:
    """SetFitModel(body = Transformer + mean Pooling [+ Normalize], head = scikit-learn) saved by SetFit itself."""
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from setfit import SetFitModel

    from core.training import finetune

    model, tokenizer = finetune.load_run_model(run.path)
    labels = labels_of(run)
    with tempfile.TemporaryDirectory(prefix="pft-body-") as body_dir:
        model.body.save_pretrained(body_dir, safe_serialization=True)
        tokenizer.save_pretrained(body_dir)
        transformer = st_models.Transformer(body_dir, max_seq_length=max_length_of(run))
        modules = [transformer, st_models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")]
        if model.normalize:
            modules.append(st_models.Normalize())
        body = SentenceTransformer(modules=modules, device="cpu")
        sf = SetFitModel(model_body=body, model_head=sklearn_head(model, labels), labels=labels)
        sf.save_pretrained(str(out))
    head = {k: v.detach().cpu().contiguous() for k, v in model.classifier.state_dict().items()}
    save_file(head, str(out / "head.safetensors"))  # weight (C, H) and bias (C,), or knn embeddings and one-hot labels


def prompt_record(run: runs.RunDir) -> dict:
    """prompt.json of a prompt run: everything needed to send the same prompt to any LLM and read its answer the same way."""
    from core import prompting

    c = run.config
    labels = labels_of(run)
    pc_fields = {f: c[f] for f in prompting.PromptConfig.__dataclass_fields__ if f in c and f != "device"}
    pc = prompting.PromptConfig(**{**pc_fields, "calibration": c.get("calibration", "none"), "template": "custom"})
    words = prompting.verbalizer(pc, labels)
    demos = run.read("demonstrations.json") or {}
    return {
        "model": c.get("model"),
        "instruction": pc.instruction,
        "example_template": pc.example_template,
        "query_template": pc.query_template,
        "chat_template": pc.use_chat_template,
        "labels": labels,
        "label_words": dict(zip(labels, words, strict=True)),
        "shots": pc.shots,
        "selection": pc.selection,
        "seed": pc.seed,
        "demonstrations": [
            {"text": prompting.cut(str(d.get("text")), pc.max_demo_chars), "label": d.get("label")}
            for d in demos.get("demos", [])
        ],  # as the prompt holds them (cut to max_demo_chars)
        "demonstrations_note": (
            "nearest: each text gets its own most similar training examples; these are the first evaluation text's"
        )
        if pc.selection == "nearest" and pc.shots
        else "",
        "calibration": {
            "method": pc.calibration,
            "content_free_inputs": list(prompting.CONTENT_FREE) if pc.calibration == "contextual" else [],
            "scoring": pc.scoring,
        },
        "example_prompt": demos.get("example_prompt", ""),
    }


def write_prompt(run: runs.RunDir, out: Path) -> None:
    (out / "prompt.json").write_text(json.dumps(prompt_record(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_peft(run: runs.RunDir, out: Path) -> None:
    """The adapter files as peft saved them (safetensors), the tokenizer, and prompt.json (the prompt it answers after)."""
    model_dir = run.path / "model"
    for f in model_dir.iterdir():
        if f.is_file() and f.suffix != ".bin" and f.name not in ("labels.json", "base_model.json", "prompt_learning.json"):
            shutil.copyfile(f, out / f.name)
    spec = json.loads((model_dir / "prompt_learning.json").read_text(encoding="utf-8"))
    labels = labels_of(run)
    record = {
        "model": run.config.get("model"),
        "instruction": spec.get("instruction"),
        "query_template": spec.get("query_template"),
        "labels": labels,
        "label_words": dict(zip(labels, spec.get("label_words") or labels, strict=False)),
        "method": spec.get("method"),
        "scoring": "the label whose word the adapted model gives the highest log-likelihood "
        "right after the filled query template",
    }
    (out / "prompt.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    base = base_info(run)["model"]
    adapter_config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = hub_id(base)
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
    if spec.get("method") == "lora-lm":  # LoRA merges: the whole decoder as the run scored with, in merged/
        write_merged_decoder(base, model_dir, out / "merged")


def hub_id(model: str) -> str:
    """The Hugging Face id of a bundled model (its weights there may differ: see the card), else the name as given."""
    from core import models

    info = models.BUNDLED.get(models.ALIASES.get(str(model).lower(), model))
    return (
        {
            "SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
        }.get(info.name, info.name)
        if info
        else str(model)
    )


def write_merged_decoder(base: str, adapter_dir: Path, out: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core import models

    lm = models._from_pretrained(AutoModelForCausalLM, models._converted(models.resolve(base)), use_safetensors=True)
    with models.LOAD_LOCK:
        merged = PeftModel.from_pretrained(lm, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out), safe_serialization=True)
    models.load_tokenizer(base).save_pretrained(str(out))


WRITERS = {
    "transformers": write_transformers,
    "transformers+code": write_mean_pooled,
    "setfit": write_setfit,
    "prompt": write_prompt,
    "peft": write_peft,
}


# ---- the whole export ------------------------------------------------------------------------


def export_run(ref: str | Path, dest: str | Path, force: bool = False) -> Path:
    """Export a finished run into dest (refused in one sentence when it cannot be); returns the folder written."""
    dest = Path(os.path.abspath(os.fspath(dest)))
    check_destination(dest, force)
    run = finished_run(ref)
    fmt = format_of(run)
    try:
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.export-"))
    except OSError as e:
        raise UserError(f"Could not write into {dest.parent}: {e.strerror}.") from None
    try:
        WRITERS[fmt](run, tmp)
        card = model_card.card(run, fmt, FORMATS[fmt], labels_of(run), hub_id(str(run.config.get("model") or "")))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        record = {
            "run": run.name,
            "format": fmt,
            "how_to_load": FORMATS[fmt],
            "labels": labels_of(run),
            "eval_sha256": runs.eval_split(run.config),
            "method": run.config.get("method"),
            "model": run.config.get("model"),
        }
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        replace_into(tmp, dest)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise UserError(f"Could not write the export into {dest}: {e.strerror or e}.") from None
        raise
    return dest


def replace_into(tmp: Path, dest: Path) -> None:
    """Rename tmp to dest; an empty dest is replaced by the rename, an earlier export is moved aside and removed after."""
    old = None
    if dest.is_dir() and any(dest.iterdir()):  # check_destination allowed it: an earlier export, with --force
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def exports_root() -> Path:
    """Where the app exports runs: `exports/` beside the runs folder."""
    return runs.runs_root().parent / "exports"


def zip_bytes(folder: Path) -> bytes:
    """An export folder as a zip archive (its files under the folder's name), for a download."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file() and not f.is_symlink():
                archive.write(f, Path(folder.name) / f.relative_to(folder))
    return buffer.getvalue()
