"""--config FILE on every subcommand (keys set the defaults, flags override them, a run's config.json re-runs it),
flags generated from the config dataclasses, one list syntax, and --report-to's optional integrations."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.cli import compare as cli_compare
from core.cli import main, parse_args
from core.prompting import PromptConfig
from core.settings import from_args
from core.training import base
from core.training.continual import ContinualConfig
from core.training.finetune import FinetuneConfig


def write(tmp_path, obj, name="settings.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_a_config_file_sets_defaults_and_flags_override_it(tmp_path):
    path = write(
        tmp_path,
        {
            "train": "reviews",
            "eval": "reviews:validation",
            "epochs": 5,
            "patience": 0,
            "eval-every": "20",
            "lora_targets": "query,value",
            "precision": "fp32",
            "device": "cpu",
        },
    )
    args = parse_args(["finetune", "--config", path, "--epochs", "2", "--device", "cuda"])
    config = from_args(FinetuneConfig, args)
    assert (args.train, args.eval) == ("reviews", "reviews:validation")  # --train/--eval no longer required on the line
    assert (config.epochs, config.device) == (2.0, "cuda")  # the command line wins
    assert (config.early_stopping_patience, config.precision, config.eval_strategy, config.eval_steps) == (0, "fp32", "steps", 20)
    assert config.lora_target_modules == ["query", "value"]


@pytest.mark.parametrize(
    "command, obj, check",
    [
        (["compare", "a", "b"], {"resamples": 200, "seed": 3}, lambda a: (a.resamples, a.seed) == (200, 3)),
        (
            ["efficiency"],
            {"train": "reviews", "eval": "reviews", "sizes": ["8pc", "all"], "shots": 4},
            lambda a: a.sizes == ["8pc", "all"] and a.shots == ["4"],
        ),
        (["runs"], {"prune": True, "yes": True}, lambda a: a.prune and a.yes),
        (["data", "reviews"], {"duplicates": True, "threshold": 0.5}, lambda a: a.duplicates and a.threshold == 0.5),
        (
            ["prompt"],
            {"train": "reviews", "eval": "reviews", "shots": [0, 4], "seed": 1, "calibrate": "pmi", "chat": True},
            lambda a: a.shots == [0, 4] and a.seed == [1] and a.calibration == "pmi" and a.use_chat_template,
        ),
        (["continual"], {"strategy": "replay", "replay_share": 0.5}, lambda a: from_args(ContinualConfig, a).replay_share == 0.5),
    ],
)
def test_every_subcommand_takes_a_config_file(tmp_path, command, obj, check):
    assert check(parse_args([command[0], "--config", write(tmp_path, obj), *command[1:]]))


@pytest.mark.parametrize(
    "content, sentence",
    [
        ({"train": "reviews", "eval": "reviews", "epoch": 3}, "finetune does not know: epoch"),
        ('{"epochs": 3,', "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ({"train": "reviews", "eval": "reviews", "epochs": -1}, "'epochs' must be a number above 0 and at most 100"),
        ({"train": "reviews", "eval": "reviews", "method": "prefix"}, "'method' must be one of: full"),
        ({"kind": "prompt", "model": "smollm2"}, "is the config of a prompt run, not of finetune"),
    ],
)
def test_a_bad_config_file_is_one_sentence_and_exit_2(tmp_path, capsys, content, sentence):
    assert main(["finetune", "--config", write(tmp_path, content)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and sentence in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_missing_config_file_is_one_sentence(tmp_path, capsys):
    assert main(["runs", "--config", str(tmp_path / "nope.json")]) == 2
    assert "Could not read the config file" in capsys.readouterr().err


def test_a_runs_config_json_re_runs_it(tmp_path, runs_dir, tiny_bert_dir):
    """A run's config.json (with its record-only keys and resolved learning rate) is a --config file: the re-run has
    the same settings and trains on the same rows."""
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
                "--max-train-examples",
                "24",
                "--patience",
                "0",
                "--lora-targets",
                "query",
                "value",
                "--seed",
                "5",
                "--out",
                "first",
            ]
        )
        == 0
    )
    first = json.loads((runs_dir / "first" / "config.json").read_text())
    assert main(["finetune", "--config", str(runs_dir / "first" / "config.json"), "--out", "again"]) == 0
    again = json.loads((runs_dir / "again" / "config.json").read_text())
    settings = [f.name for f in dataclasses.fields(FinetuneConfig)]
    assert {k: first[k] for k in settings} == {k: again[k] for k in settings}
    assert first["dataset"] == again["dataset"] and again["n_train_examples"] == 24


def test_flags_come_from_the_dataclass_metadata():
    """Every field with a flag is a CLI flag with the field's default; a page reads the same default, limits and choices."""
    from core.settings import widget_options

    for cls, command in ((FinetuneConfig, "finetune"), (PromptConfig, "prompt"), (ContinualConfig, "continual")):
        args = parse_args([command, "--train", "reviews", "--eval", "reviews"])
        assert dataclasses.asdict(
            from_args(cls, args, **({"shots": 0, "seed": 0} if cls is PromptConfig else {}))
        ) == dataclasses.asdict(cls())
    assert widget_options(FinetuneConfig, "max_length") | {"help": None} == {
        "value": 128,
        "min_value": 8,
        "max_value": 8192,
        "help": None,
    }
    assert widget_options(FinetuneConfig, "dev")["options"] == list(base.DEV_CHOICES)


def test_every_many_valued_flag_takes_space_separated_values_and_the_old_commas():
    args = parse_args(["finetune", "--train", "reviews", "--eval", "reviews", "--lora-targets", "query", "value"])
    assert from_args(FinetuneConfig, args).lora_target_modules == ["query", "value"]
    args = parse_args(["finetune", "--train", "reviews", "--eval", "reviews", "--lora-targets", "query,value"])
    assert from_args(FinetuneConfig, args).lora_target_modules == ["query", "value"]
    args = parse_args(
        [
            "efficiency",
            "--train",
            "reviews",
            "--eval",
            "reviews",
            "--sizes",
            "8pc",
            "all",
            "--shots",
            "0",
            "4",
            "--methods",
            "logreg,setfit",
            "full",
            "--seeds",
            "1",
            "2",
        ]
    )
    assert cli_compare.parse_sizes(args.sizes, 3) == [24, 0] and cli_compare.parse_counts(args.shots, "--shots") == [0, 4]
    assert cli_compare.split_list(args.methods) == ["logreg", "setfit", "full"] and cli_compare.parse_counts(
        args.seeds, "--seeds"
    ) == [1, 2]


@pytest.mark.parametrize("installed", [False, True])
def test_report_to_falls_back_to_none_when_its_package_is_missing(installed, monkeypatch, capsys, tmp_path):
    from core.runs import RunDir

    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name: object() if installed else None)
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    args = parse_args(["finetune", "--train", "reviews", "--eval", "reviews", "--report-to", "tensorboard"])
    config = from_args(FinetuneConfig, args)
    chosen = base.integration(config, RunDir(tmp_path))
    out = capsys.readouterr().out
    if installed:
        assert chosen == "tensorboard" and out == ""
        assert base.os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tensorboard")  # the logs stay with the run
    else:
        assert chosen == "none"
        assert "tensorboard is not installed; training goes on without it (pip install tensorboard)." in out
    assert base.integration(FinetuneConfig()) == "none"  # the default asks for nothing


def test_a_prompt_runs_config_json_re_runs_it(runs_dir, tiny_llama_dir):
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_llama_dir),
                "--shots",
                "2",
                "--seed",
                "4",
                "--label-words",
                "negative=bad",
                "--calibrate",
                "none",
                "--max-eval-examples",
                "6",
                "--out",
                "p1",
            ]
        )
        == 0
    )
    assert main(["prompt", "--config", str(runs_dir / "p1" / "config.json"), "--out", "p2"]) == 0
    first, again = (json.loads((runs_dir / n / "config.json").read_text()) for n in ("p1", "p2"))
    settings = [f.name for f in dataclasses.fields(PromptConfig)]
    assert {k: first[k] for k in settings} == {k: again[k] for k in settings} and again["label_words"] == {"negative": "bad"}


def test_a_continual_runs_config_json_is_a_config_file(tmp_path):
    record = {
        "kind": "continual",
        **ContinualConfig(strategy="ewc", epochs=1.0).to_dict(),
        "method": "ewc",
        "dataset": {
            "name": "a → b",
            "train": ["reviews:train", "finance_news:train"],
            "eval": ["reviews", "finance_news"],
            "eval_sha256": "x",
        },
        "tasks": [],
        "label_space": "",
        "labels": [],
        "n_train_examples": 3,
        "command": "...",
    }
    args = parse_args(["continual", "--config", write(tmp_path, record)])
    assert args.train == ["reviews:train", "finance_news:train"] and args.eval == ["reviews", "finance_news"]
    assert from_args(ContinualConfig, args).to_dict() == ContinualConfig(strategy="ewc", epochs=1.0).to_dict()


def test_a_run_asking_for_a_missing_logger_trains_without_it(runs_dir, tiny_bert_dir, monkeypatch, capsys):
    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert (
        main(
            [
                "finetune",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_bert_dir),
                "--method",
                "head",
                "--epochs",
                "1",
                "--max-train-examples",
                "16",
                "--report-to",
                "mlflow",
                "--out",
                "no-mlflow",
            ]
        )
        == 0
    )
    assert "mlflow is not installed; training goes on without it (pip install mlflow)." in capsys.readouterr().out
    assert json.loads((runs_dir / "no-mlflow" / "config.json").read_text())["report_to"] == "mlflow"


@pytest.mark.parametrize(
    "cls, name, value, sentence",
    [
        (FinetuneConfig, "lr", 1, "must be a number above 0 and below 1"),  # the flag took 1, the page stopped at 0.5
        (FinetuneConfig, "weight_decay", 1, "must be a number of at least 0 and below 1"),  # the flag took any number
        (ContinualConfig, "lora_alpha", 0, "must be a number above 0"),
        (PromptConfig, "max_demo_chars", 10, "must be a whole number of at least 20"),  # --config took 10, the config refused it
    ],
)
def test_a_setting_has_one_limit_for_flags_config_files_pages_and_python(cls, name, value, sentence, tmp_path):
    """Field metadata is the one check: the flag, a --config file and the dataclass refuse the same value in the same words,
    and the page widget's limits are the same numbers."""
    from core.errors import UserError
    from core.settings import widget_options

    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    flag, command = (
        field.metadata.get("flag"),
        {FinetuneConfig: "finetune", ContinualConfig: "continual", PromptConfig: "prompt"}[cls],
    )
    data = ["--train", "reviews", "--eval", "reviews"] if cls is not ContinualConfig else []
    with pytest.raises(UserError, match=f"{flag or repr(name)} {sentence}"):
        cls(**{name: value})
    with pytest.raises(UserError, match=f"'{name}' {sentence}"):
        parse_args([command, "--config", write(tmp_path, {name: value}), *data])
    if flag:
        with pytest.raises(UserError, match=f"{flag} {sentence}"):
            parse_args([command, flag, str(value), *data])
    kind = field.metadata["type"]
    options = widget_options(cls, name)
    assert options["min_value"] == kind.low and options["max_value"] == (None if kind.high is None else kind.high)


def test_continual_declares_no_setting_fine_tuning_already_has():
    """The settings both share are FinetuneConfig's (type, limits, flag); only the help may say it for continual."""
    fine = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    shared = [f for f in dataclasses.fields(ContinualConfig) if f.name in fine]
    assert {f.name for f in shared} == {
        "model",
        "epochs",
        "lr",
        "batch_size",
        "max_train_examples",
        "max_length",
        "lora_r",
        "lora_alpha",
        "seed",
        "device",
    }
    for f in shared:
        assert {k: v for k, v in f.metadata.items() if k != "help"} == {
            k: v for k, v in fine[f.name].metadata.items() if k != "help"
        }
        assert f.default == fine[f.name].default and f.type == fine[f.name].type
    from core.training.continual import DEFAULT_LR

    lr_help = next(f for f in shared if f.name == "lr").metadata["help"]
    assert f"{DEFAULT_LR['lora-per-task']:.0e}".replace("e-0", "e-") in lr_help  # the help says the rate the code uses


def test_efficiency_plan_defaults_are_its_flags_defaults():
    args = parse_args(["efficiency", "--train", "reviews", "--eval", "reviews"])
    plan = cli_compare.EfficiencyPlan(prefix="e", data_argv=[], sizes=[0], shots=[0])
    assert plan.methods == cli_compare.split_list(args.methods) and plan.seeds == cli_compare.parse_counts(args.seeds, "--seeds")
    assert plan.max_train_seconds == args.max_train_seconds


@pytest.mark.parametrize("values, expected", [("0, 4 8", [0, 4, 8]), (["8", "0,4", "8"], [8, 0, 4]), ("3;1", [3, 1])])
def test_one_parser_of_whole_number_lists(values, expected):
    from core.errors import UserError
    from core.settings import whole_numbers

    assert whole_numbers(values, "Shots", 0, 64) == expected
    with pytest.raises(UserError, match="Shots must be whole numbers from 0 to 64, separated by spaces or commas; '65' is not."):
        whole_numbers("4 65", "Shots", 0, 64)


@pytest.mark.parametrize("cls, name, value", [(PromptConfig, "shots", [1, 2]), (FinetuneConfig, "epochs", [1.0])])
def test_a_list_for_a_one_valued_setting_is_one_sentence(cls, name, value):
    """A Python caller (or a page) giving a list where one value goes: refused when the config is made, not a crash later
    (the --shots flag takes several values for a grid, but one PromptConfig holds one)."""
    from core.errors import UserError

    with pytest.raises(UserError, match="takes one value, not a list"):
        cls(**{name: value})
    assert FinetuneConfig(lora_target_modules=["query", "value"]).lora_target_modules == ["query", "value"]  # a list setting
