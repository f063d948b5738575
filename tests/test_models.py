from pathlib import Path

import pytest

from core import models
from core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_models_load_through_registry(tiny_bert_dir, tiny_llama_dir):
    lm = models.load_causal_lm(str(tiny_llama_dir))
    assert lm.config.num_hidden_layers == 2 and models.load_tokenizer(str(tiny_llama_dir)).chat_template
    assert lm.config._attn_implementation == "eager"  # attention views need real weights
    assert models.load_encoder(str(tiny_bert_dir)).config.hidden_size == 32
    clf = models.load_for_classification(str(tiny_bert_dir), ["a", "b", "c"])
    assert clf.config.num_labels == 3 and clf.config.id2label[2] == "c"


def test_loading_is_cached_once_per_process(tiny_llama_dir):
    assert models.load_causal_lm(str(tiny_llama_dir)) is models.load_causal_lm(str(tiny_llama_dir))


def test_bundled_models_resolve_without_loading():
    for key, info in models.BUNDLED.items():
        source = models.resolve(key)
        assert source.bundled and source.gguf_file == info.gguf_file
    assert models.resolve("sentence-transformers/all-MiniLM-L6-v2").key == models.ENCODER


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("", "No model name"),
        ("https://example.com/model", "not a model name"),
        ("a/b/c", "neither a bundled model"),
        ("./no-such-folder", "no model folder"),
    ],
)
def test_bad_model_names_get_one_sentence(name, fragment):
    with pytest.raises(UserError, match=fragment):
        models.resolve(name)


def test_unknown_hub_id_offline_is_one_sentence(offline):
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        models.load_tokenizer("no-such-owner/no-such-model-xyz")


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(UserError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_unknown_architecture_is_one_sentence(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "frobnicator", "architectures": ["FrobModel"]}')
    with pytest.raises(UserError, match="architecture"):
        models.load_causal_lm.__wrapped__(str(tmp_path))


def test_device_choice_falls_back_to_cpu_and_refuses_missing_devices():
    import torch

    assert models.choose_device("auto") in {"cuda", "mps", "cpu"}
    assert models.choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="not available"):
            models.choose_device("cuda")


def test_describe_reads_config_without_weights(tiny_llama_dir):
    info = models.describe(str(tiny_llama_dir))
    assert (info.role, info.layers, info.heads) == ("decoder", 2, 4)


def test_transformers_names_resolve_from_many_threads_at_once():
    """In a fresh interpreter (cold lazy imports), eight threads resolve every name core imports from transformers."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from core import models\n"
        "errors = []\n"
        "def work():\n"
        "    try:\n"
        "        models.import_transformers()\n"
        "        from transformers import set_seed, Trainer  # what a page thread then imports\n"
        "    except Exception as e:\n"
        "        errors.append(repr(e))\n"
        "threads = [threading.Thread(target=work) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(errors)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_same_model_loaded_from_many_threads_at_once(tiny_bert_dir, tiny_llama_dir):
    """Six threads load the same models together (the app and page reruns): no meta-tensor failure, the cached encoder is
    loaded once and shared, and every fresh classifier works."""
    import threading

    import torch

    models.load_encoder.cache_clear()
    models.load_causal_lm.cache_clear()
    start, errors, encoders, outputs = threading.Barrier(6), [], [], []

    def work(i: int) -> None:
        try:
            start.wait()
            encoders.append(models.load_encoder(str(tiny_bert_dir)))
            lm = models.load_causal_lm(str(tiny_llama_dir), attention="sdpa")
            clf = models.load_for_classification(str(tiny_bert_dir), ["a", "b"]).eval()
            with torch.no_grad():
                outputs.append(
                    (
                        clf(input_ids=torch.tensor([[2, 5, 7, 3]])).logits.shape,
                        lm(input_ids=torch.tensor([[1, 5, 7]])).logits.shape[-1],
                    )
                )
        except Exception as e:  # collected, so the assertion below names what failed
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert all(e is encoders[0] for e in encoders)
    assert len(outputs) == 6 and all(shape == (1, 2) for shape, _ in outputs)
