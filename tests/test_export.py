"""`python -m core export RUN DIR`: each kind of run becomes a folder that standard libraries load without `core` and that
predicts what the run predicted; the model card; bad input is one sentence and leaves nothing behind."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from core import export
from core.cli import main
from core.runs import RunDir
from tests.conftest import ROOT

CHECK = ROOT / "tests" / "export_check.py"


def finetune(name: str, model, *flags: str, rows: int = 32) -> Path:
    """A finished fine-tuning run on the reviews sample (eval: its 99 test rows), made by the CLI in this process."""
    argv = [
        "finetune",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(model),
        "--epochs",
        "1",
        "--max-train-examples",
        str(rows),
        "--seed",
        "1",
        "--out",
        name,
        *flags,
    ]
    assert main(argv) == 0
    return Path(os.environ["PFT_RUNS_DIR"]) / name


def exported(run: Path, dest: Path, *flags: str) -> Path:
    assert main(["export", run.name, str(dest), *flags]) == 0
    return dest


def load_outside(dest: Path, run: Path, tmp_path: Path) -> dict:
    """The export loaded and run by its own libraries in a fresh isolated interpreter (-I: no PYTHONPATH, no cwd on the
    path) started in a folder outside the repository, so `core` cannot be imported even by accident."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-I", str(CHECK), str(dest), str(run / "predictions.csv")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_same_predictions(result: dict) -> None:
    assert not result["core_imported"]
    assert result["pred"] == result["expected"]
    assert result["max_diff"] < 1e-4, result["max_diff"]


CASES = {  # name: (flags, rows, format)
    "full-mean": (["--method", "full", "--pooling", "mean"], 32, "transformers+code"),
    "llama-full": (["--method", "full"], 32, "transformers"),
    "lora-cls": (["--method", "lora", "--pooling", "cls", "--lr", "5e-3"], 32, "transformers"),
    "logreg": (["--method", "logreg"], 32, "setfit"),
    "knn": (["--method", "knn"], 32, "setfit"),
    "setfit": (["--method", "setfit", "--batch-size", "32"], 6, "setfit"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_exported_classifier_predicts_its_predictions_without_core(case, runs_dir, tiny_bert_dir, tiny_llama_dir, tmp_path):
    flags, rows, fmt = CASES[case]
    run = finetune(case, tiny_llama_dir if case.startswith("llama") else tiny_bert_dir, *flags, rows=rows)
    dest = exported(run, tmp_path / "export")
    assert json.loads((dest / "export.json").read_text())["format"] == fmt
    files = {p.name for p in dest.rglob("*")}
    assert "model.safetensors" in files and not [f for f in files if f.endswith((".bin", ".pt", ".pth"))]
    assert ("model_head.pkl" in files) == (fmt == "setfit")  # SetFit's own head format, said so in the card
    if fmt.startswith("transformers"):
        config = json.loads((dest / "config.json").read_text())
        assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
        assert config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
        assert ("auto_map" in config) == (fmt == "transformers+code")
    assert_same_predictions(load_outside(dest, run, tmp_path))


def test_the_card_gives_data_metrics_verdict_and_limitations(runs_dir, tiny_bert_dir, tmp_path):
    first = finetune("first", tiny_bert_dir, "--method", "logreg")
    alone = (exported(first, tmp_path / "alone") / "README.md").read_text()
    assert alone.startswith('---\nlibrary_name: "setfit"\npipeline_tag: "text-classification"\n')
    for heading in ("## Data", "## Method and settings", "## Metrics", "## Verdict", "## Limitations"):
        assert heading in alone
    assert "| macro\\_f1 |" in alone and "95% interval" in alone
    assert "There are no other finished runs on this evaluation split" in alone
    assert "Only 99 evaluation examples" in alone and "pickle" in alone
    finetune("second", tiny_bert_dir, "--method", "knn")
    card = (exported(first, tmp_path / "with-verdict") / "README.md").read_text()
    assert "is best on macro-F1" in card and "| second |" in card and "| first |" in card
    (runs_dir / "second" / "predictions.csv").unlink()  # listed as finished, but it can no longer be compared
    card = (exported(first, tmp_path / "unreadable") / "README.md").read_text()
    assert "could not be compared" in card and "## Limitations" in card


def test_text_from_the_data_cannot_put_html_or_images_in_the_card(runs_dir, tiny_bert_dir, tmp_path):
    hostile = ["![x](http://evil.example/x.png)", "<img src=x onerror=alert(1)>"]
    rows = [(f"{word} text number {i}", hostile[i % 2]) for i, word in enumerate(["good", "bad"] * 12)]
    data = tmp_path / "hostile.csv"
    data.write_text("text,label\n" + "".join(f'"{t}","{lab}"\n' for t, lab in rows))
    argv = [
        "finetune",
        "--train",
        str(data),
        "--eval",
        str(data),
        "--model",
        str(tiny_bert_dir),
        "--method",
        "logreg",
        "--out",
        "hostile",
    ]
    assert main(argv) == 0
    card = (exported(runs_dir / "hostile", tmp_path / "export") / "README.md").read_text()
    assert "![" not in card and "<img" not in card and "](http" not in card
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in card  # still readable


def test_a_prompt_run_exports_the_exact_prompt(runs_dir, tiny_llama_dir, tmp_path):
    argv = [
        "prompt",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(tiny_llama_dir),
        "--shots",
        "2",
        "--calibrate",
        "contextual",
        "--template",
        "custom",
        "--max-eval-examples",
        "6",
        "--label-words",
        "negative=bad",
        "--out",
        "prompted",
    ]
    assert main(argv) == 0
    run = runs_dir / "prompted"
    dest = exported(run, tmp_path / "export")
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "export.json", "prompt.json"]
    p = json.loads((dest / "prompt.json").read_text())
    assert p["label_words"] == {"negative": "bad", "neutral": "neutral", "positive": "positive"}
    assert len(p["demonstrations"]) == 2 and p["calibration"]["method"] == "contextual"
    assert p["calibration"]["content_free_inputs"]
    # the prompt of the first evaluation text, rebuilt from prompt.json alone as the card tells a user to
    words = [p["label_words"][lab] for lab in p["labels"]]
    prompt = p["instruction"].replace("{labels}", ", ".join(words)).strip() + "\n\n"
    prompt += "".join(
        p["example_template"].replace("{label}", p["label_words"][d["label"]]).replace("{text}", d["text"])
        for d in p["demonstrations"]
    )
    prompt += p["query_template"].replace("{text}", RunDir(run).predictions()["text"][0])
    assert prompt == p["example_prompt"]
    card = (dest / "README.md").read_text()
    assert "label words" in card and "## Verdict" in card


@pytest.mark.parametrize("method", ["prompt-tuning", "lora-lm"])
def test_a_prompt_learning_run_exports_its_adapter_and_prompt(method, runs_dir, tiny_llama_dir, tmp_path):
    run = finetune(
        "taught", tiny_llama_dir, "--method", method, "--virtual-tokens", "4", "--lr", "1e-2", "--warmup-ratio", "0", rows=16
    )
    dest = exported(run, tmp_path / "export")
    names = {p.name for p in dest.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "prompt.json", "README.md"} <= names
    assert json.loads((dest / "export.json").read_text())["format"] == "peft"
    assert json.loads((dest / "prompt.json").read_text())["query_template"]
    assert ("merged" in names) == (method == "lora-lm")
    if method == "lora-lm":  # the merged decoder is a plain causal LM: no LoRA weights left, and it differs from the base
        from safetensors.torch import load_file

        merged = load_file(str(dest / "merged" / "model.safetensors"))
        base = load_file(str(tiny_llama_dir / "model.safetensors"))
        assert not [k for k in merged if "lora" in k]
        assert any(not torch.equal(merged[k], base[k]) for k in base if k in merged)


# ---- bad input: one sentence, exit 2, nothing written ------------------------------------------------------


def refused(capsys, *argv: str) -> str:
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.fixture
def logreg_run(runs_dir, tiny_bert_dir) -> Path:
    return finetune("lr", tiny_bert_dir, "--method", "logreg")


def test_runs_that_cannot_be_exported_are_refused(logreg_run, runs_dir, tmp_path, capsys):
    dest = tmp_path / "out"
    assert "There is no run folder" in refused(capsys, "nope", str(dest))
    RunDir(logreg_run).set_status("running")
    assert "still running" in refused(capsys, "lr", str(dest))
    RunDir(logreg_run).set_status("failed", error="boom")
    assert "did not finish (failed)" in refused(capsys, "lr", str(dest))
    RunDir(logreg_run).set_status("succeeded")
    for f in (logreg_run / "model").iterdir():
        f.unlink()
    (logreg_run / "model").rmdir()
    assert "no saved model any more" in refused(capsys, "lr", str(dest))
    assert not dest.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_destinations_that_are_not_new_or_an_earlier_export_are_refused(logreg_run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert "is not empty" in refused(capsys, "lr", str(mine))
    assert "was not made by export" in refused(capsys, "lr", str(mine), "--force")
    assert (mine / "notes.txt").read_text() == "keep me"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target-dir")
    assert "symbolic link" in refused(capsys, "lr", str(link))
    (tmp_path / "file").write_text("x")
    assert "is a file" in refused(capsys, "lr", str(tmp_path / "file"))
    assert not (tmp_path / "target-dir").exists()


def test_force_replaces_an_earlier_export_and_an_empty_folder_is_used(logreg_run, tmp_path, capsys):
    dest = tmp_path / "out"
    dest.mkdir()
    exported(logreg_run, dest)
    (dest / "stale.txt").write_text("from the earlier export")
    assert "is not empty" in refused(capsys, "lr", str(dest))
    exported(logreg_run, dest, "--force")
    assert not (dest / "stale.txt").exists() and (dest / "export.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]  # no temp or old folder left beside it
    names = zipfile.ZipFile(io.BytesIO(export.zip_bytes(dest))).namelist()
    assert "out/export.json" in names and "out/model_head.pkl" in names and "out/stale.txt" not in names


def test_a_failure_while_writing_leaves_nothing(logreg_run, tmp_path, monkeypatch, capsys):
    def broken(run, out):
        (out / "half.safetensors").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(export.WRITERS, "setfit", broken)
    assert "No space left on device" in refused(capsys, "lr", str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_the_cli_is_one_sentence_in_a_real_process(runs_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "core", "export", "missing-run", str(tmp_path / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PFT_RUNS_DIR": str(runs_dir)},
    )
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr


# ---- the bundled MiniLM ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method, fmt", [("full", "transformers+code"), ("lora", "transformers+code"), ("logreg", "setfit")])
def test_minilm_runs_export_to_the_same_predictions(method, fmt, runs_dir, tmp_path):
    run = finetune(f"minilm-{method}", "minilm", "--method", method, "--batch-size", "16", rows=64)
    dest = exported(run, tmp_path / "export")
    assert json.loads((dest / "export.json").read_text())["format"] == fmt
    assert 'base_model: "sentence-transformers/all-MiniLM-L6-v2"' in (dest / "README.md").read_text()
    assert_same_predictions(load_outside(dest, run, tmp_path))


def test_the_runs_page_exports_the_selected_run_and_offers_a_zip(logreg_run, runs_dir, open_page):
    from tests.scoped import scoped

    RunDir(runs_dir / "still-going").create({"kind": "finetune"}).set_status("running")
    at = open_page("app_pages/runs.py")
    at.checkbox(key=scoped(at, "runs_this_dataset")).uncheck().run()
    at.selectbox(key=scoped(at, "runs_selected")).set_value("still-going").run()
    assert at.button(key=scoped(at, "runs_export")).disabled
    at.selectbox(key=scoped(at, "runs_selected")).set_value("lr").run()
    at.button(key=scoped(at, "runs_export")).click().run()
    assert not at.exception and not at.error
    dest = runs_dir.parent / "exports" / "lr"
    assert json.loads((dest / "export.json").read_text())["format"] == "setfit"
    assert any("Exported to" in s.value and str(dest) in s.value for s in at.success)
    assert [b for b in at.get("download_button") if b.proto.label == "Download lr.zip"]
    at.button(key=scoped(at, "runs_export")).click().run()  # again: the earlier export is replaced, not refused
    assert not at.error and (dest / "export.json").exists()
