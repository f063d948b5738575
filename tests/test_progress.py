"""Progress bars (core.progress): drawn on a terminal for prompt and finetune (and continual, through finetune's callback),
counting examples; silent when stderr is not a terminal (a job's log file) or with the global --quiet flag."""

from __future__ import annotations

import io
import sys

from core import progress
from core.cli import main


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def terminal(monkeypatch) -> FakeTerminal:
    """stderr as a fake terminal (set inside the test: pytest's capture resets sys.stderr after fixtures)."""
    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    return fake


def test_a_bar_is_drawn_on_a_terminal_only(monkeypatch):
    drawn = terminal(monkeypatch)
    with progress.bar("scoring", 3) as bar:
        progress.advance(bar, 3)
    assert "scoring" in drawn.getvalue() and "3/3" in drawn.getvalue()
    log = io.StringIO()  # a job's log file
    monkeypatch.setattr(sys, "stderr", log)
    with progress.bar("scoring", 3) as bar:
        progress.advance(bar, 3)
    assert log.getvalue() == ""


def _prompt(model, *flags) -> list[str]:
    return [
        *flags,
        "prompt",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(model),
        "--max-eval-examples",
        "12",
        "--batch-size",
        "8",
        "--calibrate",
        "none",
        "--template",
        "custom",
        "--out",
        "p",
    ]


def test_prompt_counts_examples_on_a_terminal(tiny_llama_dir, runs_dir, monkeypatch):
    drawn = terminal(monkeypatch)
    assert main(_prompt(tiny_llama_dir)) == 0
    assert "12/12" in drawn.getvalue() and "example" in drawn.getvalue()  # examples, not the rows scored per label word


def test_quiet_draws_no_bar(tiny_llama_dir, runs_dir, monkeypatch):
    drawn = terminal(monkeypatch)
    assert main(_prompt(tiny_llama_dir, "--quiet")) == 0
    assert "12/12" not in drawn.getvalue() and "example/s" not in drawn.getvalue()


def test_finetune_counts_training_and_evaluation_examples(tiny_bert_dir, runs_dir, monkeypatch):
    drawn = terminal(monkeypatch)
    assert (
        main(
            [
                "finetune",
                "--train",
                "reviews",
                "--eval",
                "reviews:validation",
                "--model",
                str(tiny_bert_dir),
                "--method",
                "head",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--max-train-examples",
                "40",
                "--out",
                "f",
            ]
        )
        == 0
    )
    assert (
        "training" in drawn.getvalue()
        and "40/40" in drawn.getvalue()
        and "evaluating" in drawn.getvalue()
        and "99/99" in drawn.getvalue()
    )


def test_continual_draws_a_bar_per_task(tiny_bert_dir, runs_dir, monkeypatch):
    drawn = terminal(monkeypatch)
    assert (
        main(
            [
                "continual",
                "--train",
                "reviews",
                "finance_news:train",
                "--eval",
                "reviews:validation",
                "finance_news",
                "--model",
                str(tiny_bert_dir),
                "--epochs",
                "1",
                "--max-train-examples",
                "16",
                "--out",
                "c",
            ]
        )
        == 0
    )
    assert "task 1 of 2 (reviews)" in drawn.getvalue() and "task 2 of 2 (finance_news)" in drawn.getvalue()
    assert "16/16" in drawn.getvalue()
