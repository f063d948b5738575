"""AppTest of the Continual page through the app's entry point: refusing a one-task sequence, a real job followed to the
end with its matrix charts, and strategies side by side from continual runs on disk."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from core import jobs
from core.runs import RunDir, finish_with_metrics
from core.training import continual


@pytest.fixture
def _page(open_page, tiny_bert_dir):
    return lambda: open_page("app_pages/continual.py", cl_model="other", cl_model_other=str(tiny_bert_dir))


def fake_continual_run(runs_dir, name: str, strategy: str, matrix, initial=(0.3, 0.3)) -> RunDir:
    """A finished continual run on reviews → finance_news, as the CLI leaves it (config, continual.json, metrics)."""
    run = RunDir(runs_dir / name).create(
        {
            "kind": "continual",
            "model": "minilm",
            "method": strategy,
            "dataset": {"name": "reviews → finance_news", "eval_sha256": "abc"},
        }
    )
    details = [
        {"name": "reviews", "train_sha256": "r1", "eval_sha256": "r2"},
        {"name": "finance_news", "train_sha256": "f1", "eval_sha256": "f2"},
    ]
    run.write(
        "continual.json",
        {
            "strategy": strategy,
            "label_space": "shared label space",
            "shared_head": True,
            "tasks": ["reviews", "finance_news"],
            "task_details": details,
            "initial": list(initial),
            "matrix": matrix,
            "steps_done": 2,
            **continual.transfer_metrics(matrix, list(initial)),
        },
    )
    preds = pd.DataFrame({"id": ["1:a"], "text": ["t"], "label": ["positive"], "pred": ["positive"], "confidence": [0.9]})
    finish_with_metrics(run, {"accuracy": 0.8, "macro_f1": 0.7}, preds)
    return run


def test_one_task_is_refused_with_one_sentence(runs_dir, _page):
    at = _page()
    assert not at.exception
    assert at.multiselect(key="cl_tasks").value == ["reviews", "finance_news"]  # the default sequence
    at.multiselect(key="cl_tasks").set_value(["reviews"])
    at.button(key="cl_start").click().run()
    assert not at.exception
    assert "Choose two or more tasks" in at.error[0].value
    assert not [p for p in runs_dir.iterdir() if not p.name.startswith((".", "index"))]


def test_strategies_side_by_side_from_runs_on_disk(runs_dir, _page):
    fake_continual_run(runs_dir, "cl-naive", "naive", [[0.9, 0.6], [0.5, 0.9]])
    fake_continual_run(runs_dir, "cl-replay", "replay", [[0.9, 0.6], [0.8, 0.85]])
    at = _page()
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["strategy"]) == ["naive", "replay"]
    assert table.set_index("strategy").loc["naive", "bwt"] == pytest.approx(-0.4)
    assert len(at.get("vega_lite_chart")) == 3  # strategies bars, and the picked run's heatmap and lines
    assert any("backward transfer" in m.label for m in at.metric)


def test_start_runs_a_job_that_the_page_follows_to_the_end(runs_dir, _page):
    at = _page()
    at.number_input(key="cl_epochs").set_value(1.0)
    at.number_input(key="cl_examples").set_value(24)
    at.radio(key="cl_strategy").set_value("replay").run()
    at.text_input(key="cl_run_name").set_value("seq-from-page")
    at.button(key="cl_start").click().run()
    assert not at.exception and not at.error
    run = RunDir(runs_dir / "seq-from-page")
    deadline = time.time() + 300
    while time.time() < deadline and jobs.refresh(run).get("state") in jobs.ACTIVE_STATES:
        time.sleep(0.5)
    assert run.status["state"] == "succeeded", (run.status, (run.path / "log.txt").read_text()[-2000:])
    assert run.config["strategy"] == "replay" and run.config["dataset"]["train"] == ["reviews:train", "finance_news:train"]
    assert run.config["max_train_examples"] == 24 and run.config["command"].endswith("--out seq-from-page")  # from job.json
    at.run()
    assert not at.exception
    assert any("seq-from-page" in s.value and "succeeded" in s.value for s in at.subheader)
    assert [m.label for m in at.metric][:3] == ["average accuracy", "backward transfer (BWT)", "forward transfer (FWT)"]
    assert len(at.get("vega_lite_chart")) >= 2
    assert "seq-from-page.step1" in at.code[0].value


def test_start_saves_the_whole_form_as_the_jobs_config_file(runs_dir, _page, tiny_bert_dir, monkeypatch):
    """The job starts from job.json in its run folder; read back by `continual --config`, it gives exactly the form's
    settings, the Advanced ones (batch size, max length, LoRA rank and alpha, device) included."""
    import dataclasses
    import os
    import types

    from core.cli import parse_args
    from core.settings import from_args

    started = []
    monkeypatch.setattr(
        jobs.subprocess, "Popen", lambda argv, **kw: started.append(argv) or types.SimpleNamespace(pid=os.getpid())
    )
    at = _page()
    at.radio(key="cl_strategy").set_value("lora-per-task").run()
    for key, value in {
        "cl_epochs": 2.0,
        "cl_lr_lora-per-task": 2e-3,
        "cl_examples": 30,
        "cl_seed": 5,
        "cl_batch": 4,
        "cl_maxlen": 48,
        "cl_lora_r": 4,
        "cl_lora_alpha": 12,
    }.items():
        at.number_input(key=key).set_value(value)
    at.text_input(key="cl_device").set_value("cpu")
    at.text_input(key="cl_run_name").set_value("seq-form")
    at.button(key="cl_start").click().run()
    assert not at.exception and not at.error
    job = runs_dir / "seq-form" / "job.json"
    assert started[0][-5:] == ["continual", "--config", str(job), "--out", "seq-form"]
    args = parse_args(["continual", "--config", str(job)])
    assert (args.train, args.eval) == (["reviews:train", "finance_news:train"], ["reviews:test", "finance_news:test"])
    saved = dataclasses.asdict(from_args(continual.ContinualConfig, args))
    expected = dataclasses.asdict(
        continual.ContinualConfig(
            strategy="lora-per-task",
            model=str(tiny_bert_dir),
            epochs=2.0,
            lr=2e-3,
            max_train_examples=30,
            seed=5,
            batch_size=4,
            max_length=48,
            lora_r=4,
            lora_alpha=12,
            device="cpu",
        )
    )
    assert {k: v for k, v in saved.items() if v != expected[k]} == {}
