"""AppTest of the Runs page: the list, broken runs, filtering, renaming and deleting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scoped import scoped
from tests.test_runs import make_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def _page(open_page):
    """The Runs page."""
    return lambda: open_page("app_pages/runs.py")


def test_empty_runs_folder_says_how_to_start(runs_dir, _page):
    at = _page()
    assert not at.exception
    assert "No runs yet" in at.info[0].value


def test_the_kind_filter_offers_continual_runs(runs_dir, _page):
    make_run(runs_dir, "ft-lora", method="lora")
    make_run(runs_dir, "seq-naive", kind="continual", method="naive")
    at = _page()
    at.checkbox(key=scoped(at, "runs_this_dataset")).uncheck().run()
    at.selectbox(key=scoped(at, "runs_kind")).set_value("continual").run()
    assert not at.exception and list(at.dataframe[0].value["name"]) == ["seq-naive"]


def test_list_filter_rename_delete_with_a_broken_run(runs_dir, _page):
    make_run(runs_dir, "ft-lora", method="lora")
    make_run(runs_dir, "prompt-zero", kind="prompt", method="0-shot")
    broken = make_run(runs_dir, "half-written")
    (broken.path / "status.json").write_text("{")
    at = _page()
    assert not at.exception
    assert "No runs yet on this dataset" in at.info[0].value  # they were evaluated on another split ('abc')
    at.checkbox(key=scoped(at, "runs_this_dataset")).uncheck().run()
    table = at.dataframe[0].value
    assert set(table["name"]) == {"ft-lora", "prompt-zero", "half-written"}
    assert table.set_index("name").loc["half-written", "state"] == "broken"
    assert "1 run(s) are broken" in at.warning[0].value

    at.selectbox(key=scoped(at, "runs_kind")).set_value("finetune").run()
    assert set(at.dataframe[0].value["name"]) == {"ft-lora", "half-written"}
    at.text_input(key=scoped(at, "runs_filter")).set_value("FT-").run()
    assert list(at.dataframe[0].value["name"]) == ["ft-lora"]

    at.text_input(key=scoped(at, "runs_new_name_ft-lora")).set_value("ft-lora-best").run()
    at.button(key=scoped(at, "runs_rename")).click().run()
    assert not at.exception
    assert (runs_dir / "ft-lora-best").is_dir() and not (runs_dir / "ft-lora").exists()

    at.text_input(key=scoped(at, "runs_filter")).set_value("").run()
    at.selectbox(key=scoped(at, "runs_selected")).set_value("half-written").run()
    at.checkbox(key=scoped(at, "runs_confirm_half-written")).check().run()
    at.button(key=scoped(at, "runs_delete")).click().run()
    assert not at.exception
    assert not (runs_dir / "half-written").exists()
    at.button(key=scoped(at, "runs_rebuild")).click().run()
    assert set(at.dataframe[0].value["name"]) == {"ft-lora-best"}


def test_runs_stopped_by_their_budget_or_below_majority_are_flagged(runs_dir, _page):
    from tests.compare_fixtures import make_run as make_compared_run

    make_compared_run(
        runs_dir,
        "cut-short",
        0.9,
        kind="finetune",
        config_extra={"epochs": 3.0},
        metrics_extra={"stopped_by": "max_train_seconds", "epochs_done": 1.6},
    )
    make_compared_run(runs_dir, "weak-prompt", 0.0)
    make_compared_run(runs_dir, "fine", 0.9, seed=3)
    at = _page()
    assert not at.exception
    flags = at.dataframe[0].value.set_index("name")["warnings"].to_dict()
    assert flags == {"cut-short": "time budget", "weak-prompt": "below majority", "fine": ""}
    assert any("'time budget' stopped before their epochs were done" in w.value for w in at.warning)


def test_the_kind_filter_offers_continual_and_deleting_one_says_and_deletes_its_step_runs(runs_dir, _page):
    from tests.test_runs import make_continual_run

    make_continual_run(runs_dir, "seq")
    make_run(runs_dir, "ft-lora")
    at = _page()
    at.checkbox(key=scoped(at, "runs_this_dataset")).uncheck().run()
    at.selectbox(key=scoped(at, "runs_kind")).set_value("continual").run()
    assert list(at.dataframe[0].value["name"]) == ["seq"]
    assert at.selectbox(key=scoped(at, "runs_selected")).value == "seq"
    confirm = at.checkbox(key=scoped(at, "runs_confirm_seq"))
    assert "and its step runs seq.step1, seq.step2" in confirm.label
    confirm.check().run()
    at.button(key=scoped(at, "runs_delete")).click().run()
    assert not at.exception
    assert sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) == ["ft-lora"]


def test_a_running_search_shows_as_a_search_and_deleting_one_says_and_deletes_its_trial_runs(runs_dir, _page):
    import os

    from core.runs import RunDir, write_json
    from tests.test_runs import make_search

    make_search(runs_dir, "done-search")
    running = runs_dir / "live-search"
    running.mkdir()
    write_json(running / "search.json", {"method": "lora", "trials": 20})  # no config.json until its best is re-trained
    RunDir(running).set_status("running", pid=os.getpid(), done=2, total=20)
    at = _page()
    at.checkbox(key=scoped(at, "runs_this_dataset")).uncheck().run()
    table = at.dataframe[0].value.set_index("name")
    assert (table.at["live-search", "kind"], table.at["live-search", "method"]) == ("search", "lora")
    at.selectbox(key=scoped(at, "runs_selected")).set_value("done-search").run()
    confirm = at.checkbox(key=scoped(at, "runs_confirm_done-search"))
    assert "and its 2 trial runs done-search.trial*" in confirm.label
    confirm.check().run()
    at.button(key=scoped(at, "runs_delete")).click().run()
    assert not at.exception
    assert sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) == ["live-search"]
