"""The run registry over run folders: list, filter, rename, delete, rebuild; broken runs listed as broken; reserved folders."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from core.runs import (
    RESERVATION,
    RunDir,
    RunRegistry,
    checkpoint_dir,
    finish_with_metrics,
    open_run,
    state_label,
    write_json,
)


def make_run(root, name, kind="finetune", method="lora", state="succeeded", accuracy=0.8) -> RunDir:
    run = RunDir(root / name).create(
        {"kind": kind, "model": "minilm", "method": method, "dataset": {"name": "reviews", "eval_sha256": "abc"}}
    )
    if state == "succeeded":
        import pandas as pd

        finish_with_metrics(
            run,
            {"accuracy": accuracy, "macro_f1": accuracy - 0.1},
            pd.DataFrame({"id": ["1"], "text": ["t"], "label": ["a"], "pred": ["a"], "confidence": [1.0]}),
        )
    else:
        run.set_status(state)
    return run


def test_list_filter_and_search(runs_dir):
    make_run(runs_dir, "ft-lora", method="lora")
    make_run(runs_dir, "ft-full", method="full", state="cancelled")
    make_run(runs_dir, "prompt-8shot", kind="prompt", method="8-shot balanced")
    reg = RunRegistry(runs_dir)
    assert set(reg.list()["name"]) == {"ft-lora", "ft-full", "prompt-8shot"}
    assert set(reg.list(kind="finetune")["name"]) == {"ft-lora", "ft-full"}
    assert list(reg.list(state="cancelled")["name"]) == ["ft-full"]
    assert list(reg.search("8-SHOT")["name"]) == ["prompt-8shot"]
    assert list(reg.search("lora", kind="finetune")["name"]) == ["ft-lora"]
    row = reg.list().set_index("name").loc["ft-lora"]
    assert row["accuracy"] == pytest.approx(0.8) and row["state"] == "succeeded"


def test_broken_runs_are_listed_as_broken_and_the_rest_still_works(runs_dir):
    make_run(runs_dir, "good")
    corrupt_status = make_run(runs_dir, "corrupt-status")
    (corrupt_status.path / "status.json").write_text("{not json")
    no_config = make_run(runs_dir, "no-config")
    (no_config.path / "config.json").unlink()
    no_metrics = make_run(runs_dir, "no-metrics")
    (no_metrics.path / "metrics.json").unlink()
    odd_metrics = make_run(runs_dir, "odd-metrics")
    (odd_metrics.path / "metrics.json").write_text(json.dumps({"accuracy": "high"}))
    list_config = make_run(runs_dir, "list-config")
    (list_config.path / "config.json").write_text("[1, 2]")
    (runs_dir / "stray-file.txt").write_text("not a run")
    states = RunRegistry(runs_dir).list().set_index("name")["state"].to_dict()
    assert states.pop("good") == "succeeded"
    assert set(states.values()) == {"broken"} and len(states) == 5
    RunRegistry(runs_dir).delete("corrupt-status")  # broken runs can be deleted
    assert "corrupt-status" not in set(RunRegistry(runs_dir).list()["name"])


def test_rename_and_delete(runs_dir):
    make_run(runs_dir, "old-name")
    running = make_run(runs_dir, "busy", state="running")
    reg = RunRegistry(runs_dir)
    reg.rename("old-name", "new-name")
    assert (runs_dir / "new-name" / "metrics.json").exists() and not (runs_dir / "old-name").exists()
    with pytest.raises(UserError, match="already exists"):
        reg.rename("new-name", "busy")
    with pytest.raises(UserError, match="not a valid run name"):
        reg.rename("new-name", "../escape")
    with pytest.raises(UserError, match="still running"):
        reg.delete("busy")
    checkpoint_dir(running.path).mkdir()
    running.set_status("failed", error="x")
    reg.delete("busy")
    assert not running.path.exists() and not checkpoint_dir(running.path).exists()
    with pytest.raises(UserError, match="no run named"):
        reg.delete("busy")
    assert list(reg.list()["name"]) == ["new-name"]


def make_continual_run(root, name, steps=2) -> None:
    """A continual run and its step runs NAME.stepK, as core.training.continual.save_step writes them."""
    make_run(root, name, kind="continual", method="naive")
    for k in range(1, steps + 1):
        step = make_run(root, f"{name}.step{k}", kind="continual-step", method="naive")
        write_json(step.path / "config.json", {**step.config, "continual_run": name, "step": k})


def test_deleting_a_continual_run_deletes_its_step_runs(runs_dir):
    make_continual_run(runs_dir, "seq")
    make_continual_run(runs_dir, "seq.stepwise", steps=1)  # another continual run whose name starts alike: kept
    make_run(runs_dir, "seq.step9")  # named alike but not one of seq's steps: kept
    reg = RunRegistry(runs_dir)
    assert reg.step_runs("seq") == ["seq.step1", "seq.step2"]
    reg.delete("seq")
    assert set(reg.list()["name"]) == {"seq.stepwise", "seq.stepwise.step1", "seq.step9"}
    reg.delete("seq.stepwise.step1")  # a step run alone: only itself
    assert set(reg.list()["name"]) == {"seq.stepwise", "seq.step9"}


def make_search(root, name, trials=2) -> None:
    """A finished search NAME (its search.json, as core.search.prepare writes it) and its trial runs NAME.trialK."""
    make_run(root, name)
    write_json(root / name / "search.json", {"method": "lora", "trials": trials})
    for k in range(trials):
        make_run(root, f"{name}.trial{k}")


def test_deleting_a_search_deletes_its_trial_runs(runs_dir):
    make_search(runs_dir, "s", trials=11)
    make_run(runs_dir, "s.trial9x")  # named alike but not a trial: kept
    make_run(runs_dir, "other")
    make_run(runs_dir, "other.trial0")  # other is no search: its look-alike is kept with it
    reg = RunRegistry(runs_dir)
    assert reg.trial_runs("s") == [f"s.trial{k}" for k in range(11)] and reg.trial_runs("other") == []
    reg.delete("s.trial10")  # a trial alone: only itself
    assert reg.trial_runs("s")[-1] == "s.trial9"
    reg.delete("s")
    assert set(reg.list()["name"]) == {"s.trial9x", "other", "other.trial0"}


def test_a_search_whose_trial_still_runs_is_not_deleted(runs_dir):
    make_search(runs_dir, "s", trials=1)
    RunDir(runs_dir / "s.trial0").set_status("running")
    with pytest.raises(UserError, match="Run 's.trial0' is still running; cancel it before deleting s."):
        RunRegistry(runs_dir).delete("s")
    assert (runs_dir / "s").is_dir()


def test_a_search_before_its_result_run_is_listed_as_a_search(runs_dir):
    folder = runs_dir / "s"
    folder.mkdir()
    write_json(folder / "search.json", {"method": "lora", "trials": 20})  # no config.json until the best is re-trained
    RunDir(folder).set_status("failed", done=3, total=20)
    row = RunRegistry(runs_dir).list().set_index("name").loc["s"]
    assert (row["kind"], row["method"], row["state"]) == ("search", "lora", "failed")
    assert state_label("failed", folder, "search") == "failed at trial 3 of 20"


def test_renaming_a_continual_run_takes_its_step_runs_along(runs_dir):
    make_continual_run(runs_dir, "seq")
    make_run(runs_dir, "seq.step9")  # named alike but not one of seq's steps: stays
    reg = RunRegistry(runs_dir)
    reg.rename("seq", "first-try")
    assert set(reg.list()["name"]) == {"first-try", "first-try.step1", "first-try.step2", "seq.step9"}
    assert reg.step_runs("first-try") == ["first-try.step1", "first-try.step2"]  # still found, so a delete takes them too
    make_run(runs_dir, "taken.step2")
    with pytest.raises(UserError, match="'taken.step2' already exists"):
        reg.rename("first-try", "taken")
    assert set(reg.list()["name"]) == {
        "first-try",
        "first-try.step1",
        "first-try.step2",
        "seq.step9",
        "taken.step2",
    }  # nothing moved


def test_rebuild_recovers_from_a_corrupt_index(runs_dir):
    make_run(runs_dir, "a")
    reg = RunRegistry(runs_dir)
    reg.list()
    (runs_dir / "index.sqlite").write_bytes(b"garbage" * 100)
    for suffix in ("-wal", "-shm"):
        (runs_dir / f"index.sqlite{suffix}").unlink(missing_ok=True)
    reg.rebuild()
    assert list(RunRegistry(runs_dir).list()["name"]) == ["a"]


def test_create_accepts_only_a_folder_reserved_for_this_process(runs_dir, monkeypatch):
    folder = runs_dir / "reserved"
    folder.mkdir()
    write_json(folder / RESERVATION, {"token": "secret", "pid": None})
    with pytest.raises(UserError, match="already exists"):
        RunDir(folder).create({"kind": "finetune"})
    monkeypatch.setenv("PFT_RUN_TOKEN", "other")
    with pytest.raises(UserError, match="already exists"):
        RunDir(folder).create({"kind": "finetune"})
    monkeypatch.setenv("PFT_RUN_TOKEN", "secret")
    run = RunDir(folder).create({"kind": "finetune"})
    assert run.config == {"kind": "finetune"} and run.status["state"] == "queued"
    with pytest.raises(UserError, match="already exists"):  # a second create by the same job is still refused
        RunDir(folder).create({"kind": "finetune"})


def test_open_run_takes_a_name_or_runs_slash_name_under_any_runs_root(runs_dir, tmp_path, monkeypatch):
    RunDir(runs_dir / "r1").create({"kind": "prompt"})
    monkeypatch.chdir(tmp_path)  # ./runs does not exist here: PFT_RUNS_DIR points elsewhere
    assert open_run("r1").path == (runs_dir / "r1").resolve()
    assert open_run("runs/r1").path == (runs_dir / "r1").resolve()
    with pytest.raises(UserError, match="no run folder"):
        open_run("runs/nope")


def test_comparable_runs_are_the_finished_ones_on_the_same_evaluation_split(runs_dir):
    from core.runs import check_comparable, comparable
    from tests.compare_fixtures import make_run as make_finished

    for name, sha in (("a", "one"), ("b", "one"), ("c", "two")):
        make_finished(runs_dir, name, 0.7, eval_sha256=sha)
    RunDir(runs_dir / "b").set_status("failed", error="stopped")
    listing = RunRegistry(runs_dir).list()
    assert list(comparable(listing, "one")["name"]) == ["a"] and comparable(listing, "").empty
    configs = {n: RunDir(runs_dir / n).config for n in ("a", "b", "c")}
    assert check_comparable({n: configs[n] for n in ("a", "b")}) == "one"
    with pytest.raises(UserError, match=r"^These runs were evaluated on different splits \('a' on one, 'c' on two\)"):
        check_comparable(configs)


def test_predictions_round_trip_texts_with_line_breaks_quotes_and_commas(runs_dir):
    """A lone \r, \n, \r\n, quotes and commas inside texts come back unchanged, one row each (pandas 3 leaves \r unquoted)."""
    import numpy as np

    from core.comparison import evaluate

    texts = ["carriage\rreturn", "new\nline", "both\r\nends", 'say "hi", then go', "plain", "\rstarts", "ends\r"]
    probs = np.tile([[0.25, 0.75]], (len(texts), 1))
    frame = evaluate.predictions_frame(
        [f"r{i}" for i in range(len(texts))], texts, ["neg", "pos"] * 3 + ["neg"], probs, ["neg", "pos"]
    )
    run = RunDir(runs_dir / "crlf").create({"kind": "prompt"})
    run.write_predictions(frame)
    back = run.predictions()
    assert list(back["id"]) == list(frame["id"]) and list(back["text"]) == texts
    assert list(back["pred"]) == ["pos"] * len(texts) and back["prob_pos"].tolist() == [0.75] * len(texts)
