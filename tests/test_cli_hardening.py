"""CLI hardening (issue 13, items 5-7): numeric flags refused up front in one sentence, a closed pipe ends quietly,
and label words whose label starts with '-' parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core import prompting
from core.cli import attach_dash_values, build_parser, main, parse_args
from core.cli import prompt as cli_prompt
from tests.conftest import ROOT

BASE = {
    "prompt": ["prompt", "--train", "reviews", "--eval", "reviews"],
    "finetune": ["finetune", "--train", "reviews", "--eval", "reviews"],
    "compare": ["compare", "a", "b"],
    "efficiency": ["efficiency", "--train", "reviews", "--eval", "reviews"],
}
BAD_NUMBERS = [
    ("prompt", "--seed", "-1"),
    ("prompt", "--batch-size", "0"),
    ("prompt", "--max-eval-examples", "-3"),
    ("prompt", "--batch-size", "nan"),
    ("finetune", "--seed", "-1"),
    ("finetune", "--max-train-seconds", "nan"),
    ("finetune", "--max-train-seconds", "-5"),
    ("finetune", "--max-train-seconds", "inf"),
    ("finetune", "--epochs", "nan"),
    ("finetune", "--epochs", "-1"),
    ("finetune", "--lr", "-inf"),
    ("finetune", "--lora-alpha", "nan"),
    ("finetune", "--patience", "-2"),
    ("finetune", "--max-train-examples", "-1"),
    ("finetune", "--batch-size", "1.5"),
    ("finetune", "--seed", "99999999999"),
    ("finetune", "--weight-decay", "nan"),
    ("finetune", "--lora-r", "0"),
    ("finetune", "--max-length", "x"),
    ("compare", "--seed", "-1"),
    ("compare", "--resamples", "5"),
    ("efficiency", "--max-seconds", "nan"),
    ("efficiency", "--max-train-seconds", "-1"),
]


@pytest.mark.parametrize(("command", "flag", "value"), BAD_NUMBERS)
def test_bad_numeric_flags_are_one_sentence_and_exit_2(runs_dir, capsys, command, flag, value):
    assert main([*BASE[command], flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and flag in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not any(runs_dir.iterdir()), "a run folder was left behind"


def test_finetune_nan_seconds_leaves_no_folder_in_a_real_process(runs_dir, tiny_bert_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "finetune",
            "--train",
            "reviews",
            "--eval",
            "reviews",
            "--model",
            str(tiny_bert_dir),
            "--max-train-seconds",
            "nan",
            "--out",
            "nan",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PFT_RUNS_DIR": str(runs_dir)},
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--max-train-seconds" in out.stderr, out.stderr
    assert not (runs_dir / "nan").exists()


def test_unknown_flag_is_one_sentence_not_a_usage_screen(capsys):
    assert main(["prompt", "--train", "reviews", "--eval", "reviews", "--frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--frobnicate" in err and "usage:" not in err


def test_closed_pipe_ends_quietly():
    """`python -m core data reviews | head -1`: no BrokenPipeError traceback."""
    proc = subprocess.run(
        "set -o pipefail; " + f"'{sys.executable}' -m core data reviews | head -c 10",
        shell=True,
        executable="/bin/bash",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout == "reviews: t"
    assert proc.stderr == "", proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--label-words", "-1=bad", "1=good"],
        ["--label-words", "1=good", "-1=bad"],
        ["--label-words=-1=bad", "--label-words", "1=good"],
    ],
)
def test_label_words_whose_label_starts_with_a_dash(argv):
    args = build_parser().parse_args(attach_dash_values([*BASE["prompt"], *argv, "--shots", "2"]))
    assert prompting.parse_label_words(args.label_words) == {"-1": "bad", "1": "good"} and args.shots == [2]


def test_label_word_without_equals_still_gets_its_sentence(capsys):
    assert main([*BASE["prompt"], "--label-words", "negative"]) == 2
    assert "is not LABEL=WORD" in capsys.readouterr().err


def test_the_apps_config_file_round_trips_labels_starting_with_a_dash(tmp_path):
    config = prompting.PromptConfig(label_words={"-1": "bad", "--x": "odd", "1": "good"})
    (tmp_path / "job.json").write_text(json.dumps(config.to_dict()))
    args = parse_args([*BASE["prompt"], "--config", str(tmp_path / "job.json")])
    assert cli_prompt.build_config(args, 0, 0).label_words == config.label_words
