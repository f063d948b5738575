"""The HTML report is self-contained (nothing fetched, nothing executed) and carries what stakeholders need."""

from __future__ import annotations

import json
import re

import pandas as pd

from core import charts
from core.comparison import evaluate, report
from core.runs import RunDir
from tests.compare_fixtures import make_run


def _comparison(runs_dir):
    a = make_run(runs_dir, "prompt-4shot", 0.6, seed=1, n_train_examples=4)
    b = make_run(runs_dir, "finetune-64", 0.8, kind="finetune", seed=2, n_train_examples=64)
    return evaluate.compare_runs([a, b], n_resamples=200), [a, b]


def test_report_has_no_external_resources_or_scripts(runs_dir):
    cmp, paths = _comparison(runs_dir)
    html = report.build_report(cmp, evaluate.efficiency_frame(paths))
    assert not re.search(r"https?://|<script|<link|<img|@import|url\((?!#)", html, re.I)  # url(#id): a gradient of its own
    assert html.count('<svg class="chart"') == 4
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # one document: every chart's gradients and clips are its own
    assert set(re.findall(r"url\(#([^)]+)\)", html)) <= set(ids)
    for needle in ("McNemar", "Agreement: prompt-4shot vs finetune-64", "Top ", "python -m core finetune", "[0."):
        assert needle in html


def write_search_results(folder, importance: dict) -> None:
    """What core.search.write_results leaves in a search's folder: trials.csv and importance.json."""
    pd.DataFrame(
        {
            "trial": [0, 1, 2],
            "state": ["COMPLETE", "PRUNED", "COMPLETE"],
            "dev_macro_f1": [0.6, 0.5, 0.8],
            "seconds": [30.0, 5.0, 20.0],
            "run": [f"{folder.name}.trial{k}" for k in range(3)],
            "pruned_at": [None, 2, None],
            "param_lr": [1e-3, 3e-4, 4e-3],
            "param_lora_r": [8, 16, 32],
        }
    ).to_csv(folder / "trials.csv", index=False)
    (folder / "importance.json").write_text(json.dumps(importance))


def test_report_draws_the_search_charts_of_a_searched_run_or_trials(runs_dir):
    searched = make_run(runs_dir, "search-lora", 0.8, kind="finetune", seed=2, metrics_extra={"search_trials": 3})
    write_search_results(searched, {"lr": 0.9, "lora_r": 0.1})
    prompt = make_run(runs_dir, "prompt-4shot", 0.6, seed=1)
    html = report.build_report(evaluate.compare_runs([prompt, searched], n_resamples=100))
    assert html.count("<h2>Hyperparameter search") == 1 and "Compared here: search-lora." in html
    assert html.count('<svg class="chart"') == 3 + 3  # the comparison's 3, then history, importances, parallel coordinates
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) and set(re.findall(r"url\(#([^)]+)\)", html)) <= set(ids)
    (searched / "importance.json").write_text("{}")  # fewer than two complete trials: no importances, as on the page
    trials = [make_run(runs_dir, f"search-lora.trial{k}", 0.7, kind="finetune", seed=k) for k in (0, 2)]
    html = report.build_report(evaluate.compare_runs(trials, n_resamples=100))
    assert "Compared here: search-lora.trial0, search-lora.trial2." in html and html.count('<svg class="chart"') == 3 + 2
    assert "re-trained on\nall of them as the run search-lora." in html
    (runs_dir / "pending").mkdir()  # a search still running: trials, no result run yet
    write_search_results(runs_dir / "pending", {})
    assert "Hyperparameter search" not in report.build_report(
        evaluate.compare_runs([prompt, trials[0].rename(runs_dir / "lone.trial0")], n_resamples=100)
    )  # a trial-like name without its search: no section
    html = report.build_report(evaluate.compare_runs([prompt, trials[1].rename(runs_dir / "pending.trial2")], n_resamples=100))
    assert "Compared here: pending.trial2." in html and "the search has not re-trained its best settings yet" in html


def test_report_escapes_example_text_and_skips_empty_efficiency(runs_dir):
    cmp, _ = _comparison(runs_dir)
    cmp.joined.loc[:, "text"] = '<script>alert("x")</script> & more'
    cmp.joined.loc[:, "correct@prompt-4shot"] = False  # every example becomes an error case
    html = report.build_report(cmp, pd.DataFrame())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Data efficiency" not in html


def test_report_draws_efficiency_only_for_runs_of_two_sizes(runs_dir):
    cmp, paths = _comparison(runs_dir)
    assert "Data efficiency" in report.build_report(cmp, evaluate.efficiency_frame(paths))  # 4 and 64 rows
    assert "Data efficiency" not in report.build_report(cmp, evaluate.efficiency_frame(paths[:1]))


def test_report_table_counts_match_agreement(runs_dir):
    cmp, _ = _comparison(runs_dir)
    html = report.build_report(cmp)
    table = evaluate.agreement_table(cmp.joined, "prompt-4shot", "finetune-64")
    assert f"<td>{table.iloc[0, 0]}</td><td>{table.iloc[0, 1]}</td>" in html


def test_report_shows_missing_reproduce_command(runs_dir):
    cmp, paths = _comparison(runs_dir)
    config = RunDir(paths[0]).config
    config.pop("command")
    cmp.runs[0].config = config
    assert "(no command recorded)" in report.build_report(cmp)


def test_report_opens_with_the_verdict_and_shows_baselines_and_flags(runs_dir):
    a = make_run(runs_dir, "prompt-4shot", 0.0, seed=1, n_train_examples=4)  # below the majority baseline
    b = make_run(
        runs_dir,
        "finetune-64",
        0.8,
        kind="finetune",
        seed=2,
        config_extra={"epochs": 3.0},
        metrics_extra={"stopped_by": "max_train_seconds", "epochs_done": 2.0},
    )
    html = report.build_report(evaluate.compare_runs([a, b], n_resamples=100))
    body = html[html.index("<body>") + len("<body>") :]
    first_content = re.sub(r"^<h1>[^<]*</h1>", "", body)  # the title, then the verdict before anything else
    assert first_content.startswith(
        '<p class="verdict" id="verdict"><b>Verdict:</b> Fine-tuning beats prompting: the best '
        "fine-tune run &#39;finetune-64&#39; reaches"
    )
    assert "Caveat: &#39;finetune-64&#39; was stopped by its time budget after 2.0 of 3 epochs" in html
    assert "Caveat: &#39;prompt-4shot&#39; does not beat the majority baseline" in html
    assert "<td>majority</td>" in html and "<td>stratified random</td>" in html
    assert "<td>below majority</td>" in html and "<td>time budget</td>" in html
    assert "F1 per class" in html


def test_report_follows_the_page_at_many_labels_most_confused_pairs_not_a_matrix(runs_dir):
    labels = [f"intent_{i}" for i in range(charts.MAX_MATRIX_LABELS + 1)]
    a = make_run(runs_dir, "a", 0.5, seed=1, labels=labels, n=130)
    b = make_run(runs_dir, "b", 0.7, kind="finetune", seed=2, labels=labels, n=130)
    cmp = evaluate.compare_runs([a, b], n_resamples=50)
    html = report.build_report(cmp)
    assert "Confusion matrices" not in html and 'aria-label="confusions"' not in html
    top = evaluate.most_confused(cmp.confusions, top=25)
    assert "Most confused label pairs" in html and f"<td>{top.loc[0, 'true']}</td><td>{top.loc[0, 'pred']}</td>" in html
    few = report.build_report(
        evaluate.compare_runs([make_run(runs_dir, "c", 0.5, seed=3), make_run(runs_dir, "d", 0.7, seed=4)], n_resamples=50)
    )
    assert 'aria-label="confusions"' in few and "Most confused label pairs" not in few
