"""Misuse: run names and --out paths stay inside the runs folder, unsafe model ids are refused, nothing is unpickled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import models, runs
from core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
CODE = sorted(
    [*(ROOT / "core").rglob("*.py"), *(ROOT / "ui").rglob("*.py"), *(ROOT / "app_pages").rglob("*.py"), ROOT / "streamlit_app.py"]
)

BAD_RUN_NAMES = [
    "../x",
    "..",
    ".",
    ".hidden",
    "a/b",
    "a\\b",
    "/etc",
    "x\x00y",
    "",
    " ",
    "-rf",
    "a" * 101,
    "a..b",
    "run name",
    "ré",
    "x\n",
]


@pytest.mark.parametrize("name", BAD_RUN_NAMES)
def test_bad_run_names_are_refused(name):
    with pytest.raises(UserError, match="not a valid run name"):
        runs.check_run_name(name)


@pytest.mark.parametrize("name", ["run-1", "prompt-8shot-20261128-153001", "A.b_c-d", "a" * 100])
def test_good_run_names_pass(name):
    assert runs.check_run_name(name) == name


@pytest.mark.parametrize(
    "out",
    [
        "../x",
        "../../etc/passwd",
        "/etc/cron.d/x",
        "/tmp/elsewhere",
        "x\x00y",
        ".hidden",
        "a" * 300,
        "sub/dir/run",
        "../runs-evil/x",
        "./../x",
        "~/x",
    ],
)
def test_out_paths_cannot_escape_the_runs_folder(out, runs_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError):
        runs.resolve_out(out)


def test_out_paths_inside_the_runs_folder_are_accepted(runs_dir, monkeypatch):
    monkeypatch.chdir(runs_dir.parent)
    assert runs.resolve_out("my-run") == runs_dir / "my-run"
    assert runs.resolve_out(str(runs_dir / "my-run")) == runs_dir / "my-run"
    assert runs.resolve_out("runs/my-run") == runs_dir / "my-run"


def test_symlink_out_of_the_runs_folder_is_refused(runs_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (runs_dir / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError):
        runs.resolve_out(str(runs_dir / "link" / "x"))


def test_open_run_refuses_names_that_escape(runs_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # (an existing folder path is accepted on purpose: `compare` reads run folders anywhere)
    for name in (".hidden", "x\x00", "nope\n", "../nope"):
        with pytest.raises(UserError):
            runs.open_run(name)


def test_registry_rename_and_delete_refuse_escaping_names(runs_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    registry = runs.RunRegistry(runs_dir)
    runs.RunDir(runs_dir / "ok").create({"kind": "prompt"})
    runs.RunDir(runs_dir / "ok").set_status("succeeded")
    for bad in ("../victim", "..", "/tmp"):
        with pytest.raises(UserError):
            registry.delete(bad)
        with pytest.raises(UserError):
            registry.rename("ok", bad)
    assert victim.is_dir() and (runs_dir / "ok").is_dir()


@pytest.mark.parametrize(
    "name",
    [
        "https://evil.example/model",
        "http://x/y",
        "file:///etc/passwd",
        "hf://a/b",
        "s3://bucket/m",
        "a\x00b",
        "/etc",
        "/",
        "~",
        "../../",
        "../outside-model",
        "a/b/c",
        "org/../../x",
        "",
    ],
)
def test_unsafe_model_ids_are_refused(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PFT_MODEL_ROOTS", "")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError) as info:
        models.resolve(name)
    assert str(info.value).strip()


def test_model_folder_outside_the_allowed_roots_is_refused(tmp_path, monkeypatch, tiny_bert_dir):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PFT_MODEL_ROOTS", "")
    monkeypatch.setenv("HF_HOME", str(work / "hf"))
    monkeypatch.setenv("PFT_CACHE_DIR", str(work / "cache"))
    with pytest.raises(UserError, match="outside the allowed model folders"):
        models.resolve(str(tiny_bert_dir))
    monkeypatch.setenv("PFT_MODEL_ROOTS", str(tiny_bert_dir.parent))
    assert models.resolve(str(tiny_bert_dir)).path == str(tiny_bert_dir.resolve())


def test_hub_ids_still_resolve_without_loading():
    assert models.resolve("distilbert/distilbert-base-uncased").path == "distilbert/distilbert-base-uncased"


class _Booby:
    """Unpickling this makes a folder: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def test_pickle_only_model_folder_is_refused_and_never_unpickled(tmp_path):
    import pickle

    from transformers import BertConfig

    folder = tmp_path / "pickled-model"
    marker = tmp_path / "UNPICKLED"
    BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
        folder
    )
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Booby(marker)))
    pickle.loads(pickle.dumps(_Booby(tmp_path / "probe")))  # the booby trap works when unpickled
    assert (tmp_path / "probe").is_dir()
    for load in (lambda: models.load_encoder(str(folder)), lambda: models.load_for_classification(str(folder), ["a", "b"])):
        with pytest.raises(UserError, match=r"pickled-model.*model\.safetensors"):
            load()
    assert not marker.exists(), "a pickle was loaded"


def test_no_code_path_unpickles():
    offenders = []
    for path in CODE:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\bimport pickle\b|\bpickle\.loads?\(|\bdill\b|\bjoblib\.load\(|\bnp\.load\(.*allow_pickle=True", code):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
            if re.search(r"read_pickle\(", code):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "code that may unpickle untrusted data:\n" + "\n".join(offenders)


def test_trust_remote_code_is_never_enabled():
    """No call or settings dict of ours passes trust_remote_code other than False (an exported model's card may tell its
    reader to enable it for the exported folder; that is prose in a string, not something this code does)."""
    import ast

    offenders = []
    for p in CODE:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            values = [k.value for k in node.keywords if k.arg == "trust_remote_code"] if isinstance(node, ast.Call) else []
            if isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "trust_remote_code"
                ]
            offenders += [
                f"{p.relative_to(ROOT)}:{v.lineno}" for v in values if not (isinstance(v, ast.Constant) and v.value is False)
            ]
    assert not offenders, "trust_remote_code may be enabled:\n" + "\n".join(offenders)


def test_model_weights_are_loaded_from_safetensors_only():
    source = (ROOT / "core" / "models.py").read_text(encoding="utf-8")
    assert '_SAFE = {"use_safetensors": True}' in source
    for loader in ("load_causal_lm", "load_encoder", "load_for_classification"):
        body = source.split(f"def {loader}(", 1)[1].split("\ndef ", 1)[0]
        assert "**_SAFE" in body, f"{loader} does not pass use_safetensors=True"
    for path in CODE:  # any other model-weight loading must insist on safetensors too (tokenizers and configs hold no pickles)
        if path.name == "models.py":
            continue
        for loader, args in _calls(path.read_text(encoding="utf-8"), r"\b(Auto\w*Model\w*|\w+For\w+)\.from_pretrained\("):
            assert "use_safetensors=True" in args or "_SAFE" in args, f"{path.name}: {loader}.from_pretrained({args})"


def _calls(source: str, pattern: str) -> list[tuple[str, str]]:
    """(callee, argument text) of each call matching pattern (which ends at the open parenthesis), nested parentheses included."""
    found = []
    for m in re.finditer(pattern, source):
        depth, i = 1, m.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        found.append((m.group(1), source[m.end() : i - 1]))
    return found


def test_unsafe_kwargs_cannot_be_smuggled_into_a_load(monkeypatch, tiny_bert_dir):
    seen = {}

    class Loader:
        @staticmethod
        def from_pretrained(path, **kwargs):
            seen.update(kwargs)
            return "model"

    models._from_pretrained(Loader, models.resolve(str(tiny_bert_dir)), use_safetensors=True)
    assert seen["trust_remote_code"] is False and seen["use_safetensors"] is True and seen["local_files_only"] is True


# ---- issue 13 item 1: bertviz frame ---------------------------------------------------------------------------------

HOSTILE_TOKEN = "</script><script>alert(1)</script>"


def _crafted_result():
    import numpy as np

    from core import attention

    tokens = ["[CLS]", HOSTILE_TOKEN, "<img src=x onerror=alert(2)>", "&amp;", "[SEP]"]
    weights = np.full((2, 2, len(tokens), len(tokens)), 1 / len(tokens), dtype=np.float32)
    return attention.AttentionResult(
        model_name="x", kind="encoder", tokens=tokens, attention=weights, special=np.array([True, False, False, False, True])
    )


@pytest.mark.parametrize("view", ["head", "model"])
def test_tokens_cannot_close_the_bertviz_script(view):
    import json

    from core import attention

    page = attention.bertviz_html(_crafted_result(), view=view)
    assert HOSTILE_TOKEN not in page and "<img src=x" not in page
    params = re.search(r"const params = (\{.*?\}); //", page).group(1)
    params = re.sub(r'"attn":\[.*?\]\]\]\]', '"attn":0', params)  # the weights are a JS array literal, not JSON
    assert json.loads(params)["attention"][0]["left_text"][1:4] == [HOSTILE_TOKEN, "<img src=x onerror=alert(2)>", "&amp;"]


def test_bertviz_frame_is_sandboxed_without_same_origin():
    import html

    from core import attention

    page = attention.bertviz_html(_crafted_result())
    outer = attention.sandboxed(page)
    frame = re.search(r'<iframe sandbox="([^"]*)" srcdoc="([^"]*)"', outer)
    assert frame.group(1) == "allow-scripts" and "same-origin" not in outer
    assert html.unescape(frame.group(2)) == page
