"""Hyperparameter search (core/search.py, `python -m core search`) on the tiny random BERT: bad input, the declared
spaces, pruning of a clearly bad learning rate, resume after kill -9, two processes on one storage, the Ray path."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from core import search as search_mod
from core.cli import main
from core.runs import RunDir

ROOT = Path(__file__).resolve().parent.parent
POSITIVE = ["the movie was great and i loved it", "profit rose and the dividend was raised", "good fine okay positive"]
NEGATIVE = ["terrible service , never again", "shares fell after the profit warning", "bad negative never again"]


@pytest.fixture
def data_files(tmp_path) -> tuple[Path, Path]:
    """120 training rows and 40 evaluation rows of two easy classes (words of the tiny tokenizer's corpus)."""
    rows = [(f"{(POSITIVE if i % 2 else NEGATIVE)[i % 3]} {i}", "pos" if i % 2 else "neg") for i in range(120)]
    train, test = tmp_path / "train.csv", tmp_path / "eval.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(train, index=False)
    pd.DataFrame(rows[:40], columns=["text", "label"]).to_csv(test, index=False)
    return train, test


def search_argv(tiny_bert_dir, data_files, out: str, trials: int, space: dict, *extra: str) -> list[str]:
    return [
        "search",
        "--method",
        "full",
        "--model",
        str(tiny_bert_dir),
        "--train",
        str(data_files[0]),
        "--eval",
        str(data_files[1]),
        "--trials",
        str(trials),
        "--budget",
        "3600",
        "--out",
        out,
        "--space",
        json.dumps(space),
        *extra,
    ]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """`python -m core ARGV` in its own process group (so kill -9 takes its trials with it), logging to log."""
    with open(log, "ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "core", *argv],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def study_of(runs_dir: Path, name: str, storage: str | None = None):
    return optuna.load_study(study_name=name, storage=storage or f"sqlite:///{runs_dir / name / 'study.db'}")


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--method", "nonsense"], "Unknown method 'nonsense'"),
        (["--method", "lora", "--trials", "0"], "--trials must be at least 1"),
        (["--method", "lora", "--budget", "0"], "--budget must be a positive number"),
        (["--method", "lora", "--budget", "-5"], "--budget must be a positive number"),
        (["--method", "knn"], "has no settings to search"),
        (["--method", "lora", "--space", '{"virtual_tokens": [10]}'], "The lora space has no setting 'virtual_tokens'"),
        (["--method", "lora", "--space", '{"lr": {"low": 0, "high": 1, "log": true}}'], "The space of 'lr' must be"),
        (["--method", "lora", "--space", '{"lr": []}'], "The space of 'lr' must list at least one value"),
        (["--method", "lora", "--space", "{lr: 1"], "is not valid JSON"),
        (["--method", "lora", "--enqueue", '[{"nope": 1}]'], "--enqueue names nope"),
        (["--method", "prompt", "--space", '{"lr": [0.001]}'], "The prompt space has no setting 'lr'"),
        (["--method", "lora", "--backend", "ray"], "--backend ray needs Ray"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(runs_dir, capsys, monkeypatch, flags, words):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed (find_spec finds no module named None)
    code = main(["search", "--train", "reviews", "--eval", "reviews", "--out", "s", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and words in err and "\n" not in err
    assert not (runs_dir / "s").exists()  # nothing was started


@pytest.mark.parametrize("method", ["full", "head", "bitfit", "lora", "adapter", "setfit", "prompt-tuning", "lora-lm", "prompt"])
def test_every_space_key_is_a_setting_and_every_draw_a_valid_config(runs_dir, method):
    """Each method's declared space names settings of its config, and settings drawn from it (and its defaults) make a
    config that passes validation."""
    from core.prompting import PromptConfig
    from core.training.finetune import FinetuneConfig

    search = search_mod.Search(method=method, train="reviews", eval="reviews", trials=4, budget=60, out="s")
    cls = PromptConfig if method == "prompt" else FinetuneConfig
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    draws = [search_mod.suggest(study.ask(), search.space) for _ in range(5)] + [search_mod.default_params(search)]
    for params in draws:
        settings = search_mod.run_settings(search, params)
        if method == "prompt":
            settings = {**settings, "shots": settings.get("shots", [0])[0], "seed": 0}
        config = cls(**settings)
        for key, value in params.items():
            if key == "template":
                from core.prompting import TEMPLATES

                assert config.query_template == TEMPLATES[value]["query_template"]
            elif key == "lora_target_modules":
                assert config.lora_target_modules == value.split("+")
            else:
                assert getattr(config, key) == value
    if method == "lora":  # the defaults are tried first, as far as the space holds them
        assert search_mod.default_params(search) == {
            "lr": 1e-3,
            "epochs": 3,
            "batch_size": 16,
            "lora_r": 8,
            "lora_alpha": 16,
            "lora_target_modules": "query+value",
        }


def test_a_clearly_bad_learning_rate_is_pruned_on_the_dev_curve(runs_dir, tiny_bert_dir, data_files):
    """Two trials at lr 3e-3 learn (dev macro-F1 climbs past 0.5 in the second epoch); lr 0.5 stays at 0.33 and the
    median pruner stops it where the others are higher. Its run is kept and says it was pruned."""
    search = search_mod.Search(
        method="full",
        model=str(tiny_bert_dir),
        train=str(data_files[0]),
        eval=str(data_files[1]),
        trials=3,
        budget=3600,
        out="p",
        space={"lr": {"low": 1e-3, "high": 0.9, "log": True}, "epochs": [3], "batch_size": [8]},
        enqueue=[{"lr": 3e-3}, {"lr": 3e-3}, {"lr": 0.5}],
    )
    search_mod.prepare(search)
    study = search_mod.optimize(search, log=lambda line: None)
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "PRUNED"}, (states, [t.intermediate_values for t in study.trials])
    good, bad = study.trials[0], study.trials[2]
    assert good.value > 0.5
    assert max(bad.intermediate_values.values()) < good.value
    pruned_run = RunDir(runs_dir / "p.trial2")
    assert pruned_run.status["pruned"] is True and "Pruned by the search p" in pruned_run.status["error"]
    trials = pd.read_csv(runs_dir / "p" / "trials.csv")  # the charts' data
    assert trials["state"].tolist() == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert (trials["cpu_seconds"] > 0).all() and (trials["cpu_seconds"] < 2 * trials["seconds"] * os.cpu_count()).all()
    curves = pd.read_csv(runs_dir / "p" / "curves.csv")
    assert set(curves["trial"]) == {0, 1, 2}


def wait_for(predicate, proc: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, log.read_text()
        assert time.time() < deadline, log.read_text()
        time.sleep(0.5)


def test_a_search_killed_mid_way_resumes_to_completion(runs_dir, tiny_bert_dir, data_files, tmp_path):
    """kill -9 (the search and its running trial) after one finished trial; the same command finishes the search: the
    finished trial is kept (not run again), the killed one is marked failed, and the result run records the search's cost."""
    space = {"lr": [3e-3], "epochs": [1], "batch_size": [8]}
    argv = search_argv(tiny_bert_dir, data_files, "r", 2, space)
    log = tmp_path / "search.log"
    proc = start(argv, log)
    wait_for(lambda: (runs_dir / "r.trial1" / "status.json").exists(), proc, log)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = study_of(runs_dir, "r").trials[0]
    assert first.state.name == "COMPLETE"

    proc = start(argv, log)
    assert proc.wait(timeout=900) == 0, log.read_text()
    study = study_of(runs_dir, "r")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[0].datetime_complete == first.datetime_complete  # kept, not run again
    assert "resuming: 1 trial left running by a stopped search marked failed" in log.read_text()
    assert RunDir(runs_dir / "r.trial1").status["state"] == "failed"  # reconciled: its process died
    result = RunDir(runs_dir / "r")
    assert result.status["state"] == "succeeded" and result.config["kind"] == "finetune"
    assert result.config["dataset"]["eval"] == str(data_files[1])  # the evaluation split, never seen by a trial
    metrics = result.metrics
    assert metrics["search_trials"] == 3
    assert metrics["search_seconds"] == pytest.approx(sum(t.user_attrs["seconds"] for t in study.trials), abs=0.01)
    assert result.config["lr"] == 3e-3 and result.config["epochs"] == 1


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_on_one_storage_share_the_trials(runs_dir, tiny_bert_dir, data_files, tmp_path, kind):
    """Two searches on one storage (the search folder's SQLite study.db, which a second search of the same name joins,
    or a journal file given as --storage) finish 3 trials between them: every trial number once, one run folder per
    trial, both processes ran some, and the best is re-trained once."""
    storage = f"journal:{tmp_path / 'study.log'}" if kind == "journal" else f"sqlite:///{runs_dir / 'shared' / 'study.db'}"
    space = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "epochs": [1], "batch_size": [8]}
    extra = ["--storage", storage] if kind == "journal" else []
    procs = [start(search_argv(tiny_bert_dir, data_files, "shared", 3, space, *extra), tmp_path / f"w{i}.log") for i in range(2)]
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=900) == 0, (tmp_path / f"w{i}.log").read_text()
    study = optuna.load_study(study_name="shared", storage=search_mod.storage_for(storage))
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert 3 <= len(finished) <= 4  # a process may start one trial just before the other reaches 3
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert sorted(p.name for p in runs_dir.glob("shared.trial*")) == sorted(f"shared.trial{n}" for n in numbers)
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert sum("re-training on all training rows" in text for text in logs) == 1
    assert RunDir(runs_dir / "shared").metrics["search_trials"] == len(study.trials)


def test_jobs_runs_trials_at_once_in_one_search(runs_dir, tiny_bert_dir, data_files, tmp_path):
    space = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "epochs": [1], "batch_size": [8]}
    proc = start(search_argv(tiny_bert_dir, data_files, "j", 2, space, "--jobs", "2"), tmp_path / "j.log")
    assert proc.wait(timeout=900) == 0, (tmp_path / "j.log").read_text()
    first, second = study_of(runs_dir, "j").trials
    assert first.state.name == second.state.name == "COMPLETE"
    assert second.datetime_start < first.datetime_complete and first.datetime_start < second.datetime_complete  # overlapped
    assert RunDir(runs_dir / "j").metrics["search_trials"] == 2


def test_a_prompt_search_tunes_the_prompt_on_the_dev_split_and_reruns_the_best_on_the_evaluation_split(
    runs_dir, tiny_llama_dir, data_files, tmp_path
):
    space = {"template": ["category", "answer"], "calibration": ["none"], "shots": [0, 1], "selection": ["balanced"]}
    argv = [
        "search",
        "--method",
        "prompt",
        "--model",
        str(tiny_llama_dir),
        "--train",
        str(data_files[0]),
        "--eval",
        str(data_files[1]),
        "--trials",
        "2",
        "--budget",
        "3600",
        "--out",
        "ps",
        "--space",
        json.dumps(space),
    ]
    proc = start(argv, tmp_path / "ps.log")
    assert proc.wait(timeout=900) == 0, (tmp_path / "ps.log").read_text()
    study = study_of(runs_dir, "ps")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[0].params == {
        "template": "category",
        "calibration": "none",
        "shots": 0,
        "selection": "balanced",
    }  # the default first
    for t in study.trials:
        trial = RunDir(runs_dir / t.user_attrs["run"])
        assert trial.config["kind"] == "prompt" and trial.metrics["n_examples"] == 24  # the dev split: 20% of 120 rows
        assert trial.metrics["macro_f1"] == pytest.approx(t.value)
    result = RunDir(runs_dir / "ps")
    best = study.best_trial.params
    from core.prompting import TEMPLATES

    assert result.config["kind"] == "prompt" and result.metrics["n_examples"] == 40
    assert result.config["query_template"] == TEMPLATES[best["template"]]["query_template"]
    assert result.config["shots"] == best["shots"] and result.config["calibration"] == "none"
    assert result.metrics["search_trials"] == 2 and result.metrics["search_best_trial"] == study.best_trial.number


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (optional)")
def test_ray_backend_runs_trials_on_a_local_two_worker_ray(runs_dir, tiny_bert_dir, data_files, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        address = ray.get_runtime_context().gcs_address
        space = {"lr": [3e-3], "epochs": [1], "batch_size": [8]}
        proc = start(
            search_argv(
                tiny_bert_dir,
                data_files,
                "ray",
                2,
                space,
                "--backend",
                "ray",
                "--jobs",
                "2",
                "--ray-address",
                address,
                "--storage",
                f"sqlite:///{tmp_path / 'ray.db'}",
            ),
            tmp_path / "ray.log",
        )
        assert proc.wait(timeout=900) == 0, (tmp_path / "ray.log").read_text()
    finally:
        ray.shutdown()
    study = study_of(runs_dir, "ray", f"sqlite:///{tmp_path / 'ray.db'}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) >= 2
    assert RunDir(runs_dir / "ray").metrics["search_trials"] >= 2


def test_ray_workers_run_trials_at_the_priority_of_the_command(runs_dir, monkeypatch):
    """Ray starts task workers at nice 15, where a trial (the work itself) starved behind anything else on a busy node:
    the search asks Ray for workers at nice 0, and passes the runs folder on."""
    import types

    from core import search_ray

    inits = []
    fake = types.SimpleNamespace(
        init=lambda **kwargs: inits.append(kwargs),
        get=list,
        remote=lambda **_: lambda f: types.SimpleNamespace(remote=lambda search: search.jobs),
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(search_mod, "load_study", lambda search: "study")
    search = search_mod.Search(method="lora", train="reviews", eval="reviews", trials=2, budget=60, out="s", jobs=2)
    assert search_ray.optimize_ray(search, None) == "study"
    env = inits[0]["runtime_env"]["env_vars"]
    assert env["RAY_worker_niceness"] == "0" and env["PFT_RUNS_DIR"] == str(runs_dir)


TRIALS = pd.DataFrame(
    {
        "trial": [0, 1, 2, 3],
        "state": ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"],
        "dev_macro_f1": [0.71, 0.83, 0.52, None],
        "seconds": [30.0, 41.5, 12.0, 3.0],
        "run": [f"s.trial{i}" for i in range(4)],
        "pruned_at": [None, None, 12, None],
        "param_lr": [1e-3, 3e-4, 0.5, 1e-4],
        "param_lora_target_modules": ["query+value", "query+key+value", "query+value", None],
    }
)


def test_search_charts_draw_every_state_and_scale_each_setting():
    from core import charts_search

    def values(spec, part):
        return pd.DataFrame(spec["datasets"][part["data"]["name"]])

    history = charts_search.trial_history(TRIALS).to_dict()
    assert set(values(history, history["layer"][1])["state"]) == {"COMPLETE", "PRUNED"}  # a failed trial has no value
    assert values(history, history["layer"][0])["best"].tolist() == [0.71, 0.83]
    spec = charts_search.parallel_coordinates(TRIALS).to_dict()
    parallel = values(spec, spec)
    assert set(parallel["trial"]) == {0, 1, 2}
    lr = parallel[parallel["axis"] == "lr"].set_index("trial")["position"]
    assert lr[2] == 1.0 and lr[1] == 0.0 and 0 < lr[0] < 1  # log scale: 3e-4 .. 0.5
    assert charts_search.importance_chart({"lr": 0.8, "lora_r": 0.2}).to_dict()["mark"]["type"] == "bar"


def test_finetune_page_shows_a_search_and_starts_one_as_a_job(runs_dir, open_page, monkeypatch):
    from core import jobs
    from core.runs import write_json
    from tests.scoped import scoped

    folder = runs_dir / "s"
    folder.mkdir()
    write_json(folder / "search.json", {"method": "lora", "train": "reviews:train", "trials": 4})
    RunDir(folder).set_status("succeeded", done=4, total=4)
    TRIALS.to_csv(folder / "trials.csv", index=False)
    write_json(folder / "importance.json", {"lr": 0.8, "lora_target_modules": 0.2})
    started = []
    monkeypatch.setattr(jobs, "launch", lambda argv, run_dir, settings=None: started.append((argv, run_dir, settings)) or 1)
    at = open_page("app_pages/finetune.py")
    assert not at.exception
    assert any("4 of 4 trials finished" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) >= 3  # history, importance, parallel coordinates
    at.selectbox(key=scoped(at, "search_method")).set_value("lora").run()
    assert any("lora_r 4, 8, 16, 32" in c.value for c in at.caption)
    at.text_input(key=scoped(at, "search_name")).set_value("tune-lora")
    at.number_input(key=scoped(at, "search_trials")).set_value(6)
    at.button(key=scoped(at, "search_start")).click().run()
    assert not at.exception and not at.error
    argv, run_dir, settings = started[0]
    assert argv == ["search", "--out", "tune-lora"] and run_dir == runs_dir / "tune-lora"
    assert settings["method"] == "lora" and settings["trials"] == 6 and settings["train"] == "reviews:train"
    from core.cli import parse_args  # the job's settings are a valid --config of search

    write_json(runs_dir / "job.json", settings)
    args = parse_args(["search", "--config", str(runs_dir / "job.json"), "--out", "tune-lora"])
    assert (args.method, args.trials, args.eval) == ("lora", 6, "reviews:test")
