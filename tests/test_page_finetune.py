"""AppTest of the Fine-tune page through the app's entry point, with the tiny BERT chosen as 'other' model."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core import jobs
from core.runs import RunDir
from tests.compare_fixtures import REVIEWS_TEST
from tests.scoped import scoped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def _page(open_page):
    """The Fine-tune page with a model folder typed as the 'other' model."""
    return lambda model_dir: open_page("app_pages/finetune.py", ft_model="other", ft_model_other=str(model_dir))


def fake_running_run(runs_dir: Path) -> RunDir:
    """A run that looks mid-training, owned by this (live) process, as a job started from another tab would."""
    run = RunDir(runs_dir / "elsewhere-started").create(
        {"kind": "finetune", "model": "minilm", "method": "lora", "dataset": {"name": "reviews", "eval_sha256": REVIEWS_TEST}}
    )
    run.set_status("running", pid=os.getpid(), progress=0.25, done=5, total=20, eta_seconds=12.0)
    for step, loss in enumerate([1.1, 0.9, 0.7], start=1):
        run.append_history({"step": step, "epoch": step / 4, "loss": loss, "learning_rate": 1e-4})
    run.append_history({"step": 4, "epoch": 1.0, "eval_macro_f1": 0.5, "eval_accuracy": 0.6})
    return run


def test_page_counts_parameters_reattaches_and_refuses_a_second_start(tiny_bert_dir, runs_dir, _page):
    run = fake_running_run(runs_dir)
    at = _page(tiny_bert_dir)
    assert not at.exception
    assert any("parameters will be trained" in c.value and "100.00%" in c.value for c in at.caption)
    at.radio(key=scoped(at, "ft_method")).set_value("head").run()
    assert any("parameters will be trained" in c.value and "of 28," in c.value for c in at.caption)
    assert any(run.name in s.value and "running" in s.value for s in at.subheader)  # found from the run folders
    assert "about 12 s left" in at.get("progress")[0].proto.text
    assert len(at.get("vega_lite_chart")) == 1
    assert at.button(key=scoped(at, f"finetune_cancel_{run.name}"))
    at.button(key=scoped(at, "ft_start")).click().run()
    assert not at.exception
    assert "already running" in at.error[0].value
    assert sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith((".", "index"))) == [run.name]


def test_start_runs_a_job_that_the_page_follows_to_the_end(tiny_bert_dir, runs_dir, _page):
    at = _page(tiny_bert_dir)
    at.number_input(key=scoped(at, "ft_epochs")).set_value(1.0)
    at.number_input(key=scoped(at, "ft_examples")).set_value(48)
    at.text_input(key=scoped(at, "ft_run_name")).set_value("from-the-page")
    at.button(key=scoped(at, "ft_start")).click().run()
    assert not at.exception and not at.error
    run = RunDir(runs_dir / "from-the-page")
    assert run.path.is_dir()
    deadline = time.time() + 120
    while time.time() < deadline and jobs.refresh(run).get("state") in jobs.ACTIVE_STATES:
        time.sleep(0.5)
    assert run.status["state"] == "succeeded", run.status
    assert run.config["n_train_examples"] == 48 and run.config["max_train_examples"] == 48
    assert run.config["command"].endswith(f"--config {run.path / 'job.json'} --out from-the-page")  # re-runnable from its folder
    at.run()
    assert not at.exception
    assert any("from-the-page" in s.value and "succeeded" in s.value for s in at.subheader)
    assert [m.label for m in at.metric][:2] == ["accuracy", "macro-F1"]
    assert len(at.get("vega_lite_chart")) == 1


def test_a_result_stopped_by_the_time_budget_carries_a_warning(tiny_bert_dir, runs_dir, open_page):
    from tests.compare_fixtures import make_run

    make_run(
        runs_dir,
        "cut-short",
        0.9,
        kind="finetune",
        config_extra={"epochs": 3.0},
        metrics_extra={"stopped_by": "max_train_seconds", "epochs_done": 1.6, "train_seconds": 120.0},
    )
    at = open_page("app_pages/finetune.py", ft_model="other", ft_model_other=str(tiny_bert_dir), finetune_job=["cut-short"])
    assert not at.exception
    assert any("cut-short" in s.value and "succeeded" in s.value for s in at.subheader)
    assert any("'cut-short' was stopped by its time budget after 1.6 of 3 epochs" in w.value for w in at.warning)


def test_the_default_time_budget_is_the_one_setting(tiny_bert_dir, runs_dir, open_page):
    from core.training import finetune

    at = open_page("app_pages/finetune.py", ft_model="other", ft_model_other=str(tiny_bert_dir))
    assert at.number_input(key=scoped(at, "ft_seconds")).value == finetune.PAGE_TIME_BUDGET_SECONDS


def test_start_saves_the_whole_form_as_the_jobs_config_file(tiny_bert_dir, runs_dir, open_page, monkeypatch):
    """The job is started from job.json in its reserved run folder (no hand-built argv), and that file, read back by the
    CLI's --config, gives exactly the settings on the form, the Advanced ones (dev set, precision, device) included."""
    import dataclasses
    import types

    from core.cli import parse_args
    from core.settings import from_args
    from core.training.finetune import FinetuneConfig

    started = []
    monkeypatch.setattr(
        jobs.subprocess, "Popen", lambda argv, **kw: started.append(argv) or types.SimpleNamespace(pid=os.getpid())
    )
    at = open_page("app_pages/finetune.py", ft_model="other", ft_model_other=str(tiny_bert_dir), ft_method="lora")
    form = {
        "ft_epochs": 2.0,
        "ft_lr_lora": 1e-3,
        "ft_batch": 8,
        "ft_seconds": 120.0,
        "ft_examples": 40,
        "ft_wd": 0.05,
        "ft_warmup": 0.2,
        "ft_maxlen": 64,
        "ft_patience": 3,
        "ft_seed": 7,
        "ft_lora_r": 4,
        "ft_lora_alpha": 8.0,
        "ft_lora_dropout": 0.2,
    }
    for key, value in form.items():
        at.number_input(key=scoped(at, key)).set_value(value)
    for key, value in {
        "ft_eval_every": "20",
        "ft_lora_targets": "query, value",
        "ft_device": "cpu",
        "ft_run_name": "form-run",
    }.items():
        at.text_input(key=scoped(at, key)).set_value(value)
    for key, value in {"ft_pooling": "mean", "ft_dev": "holdout", "ft_precision": "fp32", "ft_report_to": "tensorboard"}.items():
        at.selectbox(key=scoped(at, key)).set_value(value)
    at.button(key=scoped(at, "ft_start")).click().run()
    assert not at.exception and not at.error
    job = runs_dir / "form-run" / "job.json"
    assert started[0][-5:] == ["finetune", "--config", str(job), "--out", "form-run"]
    args = parse_args(["finetune", "--config", str(job)])
    assert (args.train, args.eval) == ("reviews:train", "reviews:test")
    saved = dataclasses.asdict(from_args(FinetuneConfig, args))
    expected = dataclasses.asdict(
        FinetuneConfig(
            model=str(tiny_bert_dir),
            method="lora",
            epochs=2.0,
            lr=1e-3,
            batch_size=8,
            max_train_seconds=120.0,
            max_train_examples=40,
            weight_decay=0.05,
            warmup_ratio=0.2,
            max_length=64,
            early_stopping_patience=3,
            seed=7,
            lora_r=4,
            lora_alpha=8.0,
            lora_dropout=0.2,
            eval_strategy="steps",
            eval_steps=20,
            lora_target_modules=["query", "value"],
            device="cpu",
            pooling="mean",
            dev="holdout",
            precision="fp32",
            report_to="tensorboard",
        )
    )
    assert {k: v for k, v in saved.items() if v != expected[k]} == {}
    assert saved.keys() == expected.keys()
