"""Issue 19: links in the runs folder are never written through, --config values are checked as flags are, hostile
inputs end in one sentence (exit status 2), never a traceback or a silent misread."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import jobs, runs
from core.cli import main
from core.errors import JobEnded, UserError


def tree(path: Path) -> set[str]:
    """Every entry under path (links not followed), as relative paths."""
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


# --- item 1: a dangling link in the runs folder -------------------------------------------------------------------


def test_a_job_is_not_started_through_a_dangling_link(runs_dir, tmp_path):
    outside = tmp_path / "elsewhere" / "outside"
    (runs_dir / "dang").symlink_to(outside)
    before = tree(tmp_path)
    with pytest.raises(UserError, match="symbolic link"):
        jobs.launch(["finetune", "--out", "dang"], runs_dir / "dang", settings={"epochs": 1})
    assert not outside.exists() and not (tmp_path / "elsewhere").exists()
    assert tree(tmp_path) - before <= {"runs/.jobs.lock"}


def test_out_naming_a_dangling_link_is_refused(runs_dir, tmp_path):
    (runs_dir / "dang").symlink_to(tmp_path / "outside")
    for out in ("dang", "runs/dang", str(runs_dir / "dang")):
        with pytest.raises(UserError, match="symbolic link"):
            runs.resolve_out(out)


LINK_KINDS = ("dangling", "outside folder", "sibling run", "plain run", "nothing")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(LINK_KINDS), min_size=1, max_size=4), pick=st.integers(0, 3))
def test_creating_a_run_never_writes_outside_the_runs_folder(tmp_path_factory, kinds, pick):
    base = tmp_path_factory.mktemp("prop")
    root, outside = base / "runs", base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "plain").mkdir()
    for i, kind in enumerate(kinds):
        entry = root / f"r{i}"
        if kind == "dangling":
            entry.symlink_to(base / f"missing{i}")
        elif kind == "outside folder":
            entry.symlink_to(outside, target_is_directory=True)
        elif kind == "sibling run":
            entry.symlink_to(root / "plain", target_is_directory=True)
        elif kind == "plain run":
            entry.mkdir()
    name = f"r{pick % len(kinds)}"
    before_root, before_base = tree(root), {p for p in tree(base) if not p.startswith("runs")}
    try:  # as a page starts a job (jobs.launch; its process is not started here)
        with mock.patch("core.jobs.subprocess.Popen") as popen:
            popen.return_value.pid = 0
            jobs.launch(["finetune", "--out", name], root / name, settings={})
    except UserError:
        assert tree(root) - before_root <= {".jobs.lock"}
        with pytest.raises(UserError):  # and as the CLI makes its folder
            runs.RunDir(runs.resolve_out(name, root)).create({"kind": "finetune"})
    else:
        assert kinds[pick % len(kinds)] == "nothing"
        assert (root / name).is_dir() and not (root / name).is_symlink()
    assert {p for p in tree(base) if not p.startswith("runs")} == before_base  # nothing appeared outside
    assert not tree(root / "plain")  # and nothing inside another run


# --- item 2: the crash path --------------------------------------------------------------------------------------


def crash(run: Path, made: bool) -> None:
    """A run that crashes inside its run_job block (made: the block's process made the folder)."""
    with pytest.raises(JobEnded, match="Training crashed"), jobs.run_job(runs.RunDir(run), "finetune", made=made):
        raise RuntimeError("boom")


def test_a_crash_before_the_folder_is_made_writes_into_no_other_run(runs_dir):
    other = runs_dir / "finished"
    other.mkdir()
    crash(other, made=False)
    assert not (other / "traceback.txt").exists()


def test_a_crash_replaces_a_linked_traceback_rather_than_following_it(runs_dir, tmp_path):
    run = runs_dir / "mine"
    run.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (run / "traceback.txt").symlink_to(target)
    crash(run, made=True)
    assert target.read_text() == "keep me"
    assert not (run / "traceback.txt").is_symlink() and "RuntimeError" in (run / "traceback.txt").read_text()


# --- item 11: compare's exports and runs --prune with links ---------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True])
def test_an_export_onto_a_link_is_refused_and_the_link_kept(tmp_path, dangling):
    from core.comparison.report import write_report

    target = tmp_path / "target.csv"
    if not dangling:
        target.write_text("keep me")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    with pytest.raises(UserError, match="link or not a regular file"):
        write_report(link, "a,b\n")
    assert link.is_symlink() and (dangling or target.read_text() == "keep me")


def test_an_export_onto_a_special_file_is_refused(tmp_path):
    from core.comparison.report import write_report

    fifo = tmp_path / "pipe"  # stands for /dev/stdout, which root's os.replace would swap for a file (never tried on a real one)
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        write_report(fifo, "a,b\n")
    assert fifo.is_fifo()


def test_prune_neither_lists_nor_claims_to_remove_linked_leftovers(runs_dir, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x")
    (runs_dir / ".ckpt-ghost").symlink_to(elsewhere, target_is_directory=True)
    (runs_dir / ".deleted-ghost-1").symlink_to(elsewhere, target_is_directory=True)
    assert main(["runs", "--prune", "--yes"]) == 0
    assert "nothing to prune" in capsys.readouterr().out
    assert (elsewhere / "keep.txt").exists()


def test_deleting_a_linked_run_removes_the_link_only(runs_dir, tmp_path):
    real = tmp_path / "real-run"
    real.mkdir()
    runs.RunDir(real).write("config.json", {"kind": "finetune"})
    runs.RunDir(real).set_status("failed")
    (runs_dir / "linked").symlink_to(real, target_is_directory=True)
    runs.RunRegistry(runs_dir).delete("linked")
    assert not os.path.lexists(runs_dir / "linked") and (real / "config.json").exists()
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".deleted-")]


def test_renaming_onto_a_dangling_link_is_one_sentence(runs_dir, tmp_path):
    run = runs.RunDir(runs_dir / "a")
    run.create({"kind": "finetune"})
    run.set_status("failed")
    (runs_dir / "b").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match="already exists"):
        runs.RunRegistry(runs_dir).rename("a", "b")
    assert (runs_dir / "a" / "config.json").exists() and (runs_dir / "b").is_symlink()


# --- items 5, 6, 8, 9, 10: --config values are checked as the flags are ---------------------------------------------


def write_config(tmp_path, obj) -> str:
    path = tmp_path / "settings.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_a_failed_run_survives_prune_with_false_as_text(runs_dir, tmp_path, capsys):
    run = runs.RunDir(runs_dir / "failed-run")
    run.create({"kind": "finetune"})
    run.set_status("failed")
    assert main(["runs", "--config", write_config(tmp_path, {"prune": "false", "yes": "no"})]) == 2
    assert "'yes' must be true or false" in capsys.readouterr().err
    assert main(["runs", "--config", write_config(tmp_path, {"prune": "false", "yes": "true"})]) == 0  # words as text: parsed
    assert (runs_dir / "failed-run" / "config.json").exists()


@pytest.mark.parametrize("value, chat", [(False, False), ("false", False), ("FALSE", False), (True, True), ("true", True)])
def test_chat_from_a_config_file_is_what_it_says(tmp_path, value, chat):
    from core.cli import parse_args

    args = parse_args(["prompt", "--config", write_config(tmp_path, {"train": "reviews", "eval": "reviews", "chat": value})])
    assert args.use_chat_template is chat


SETTINGS = {"train": "reviews", "eval": "reviews"}


@pytest.mark.parametrize(
    "command, obj, sentence",
    [
        ("prompt", {**SETTINGS, "chat": "no"}, "'chat' must be true or false"),
        ("prompt", {**SETTINGS, "chat": 1}, "'chat' must be true or false"),
        ("prompt", {**SETTINGS, "max_demo_chars": None}, "'max_demo_chars' cannot be null"),
        ("prompt", {**SETTINGS, "max_demo_chars": "abc"}, "'max_demo_chars' 'abc' is not a whole number"),
        ("prompt", {**SETTINGS, "query_template": None}, "'query_template' cannot be null"),
        ("prompt", {**SETTINGS, "batch_size": None}, "'batch_size' cannot be null"),
        ("prompt", {**SETTINGS, "batch_size": "abc"}, "'batch_size' 'abc' is not a whole number"),
        ("continual", {"fisher_examples": "abc"}, "'fisher_examples' 'abc' is not a whole number"),
        ("continual", {"replay_share": None}, "'replay_share' cannot be null"),
        ("continual", {"max_train_examples": None}, "'max_train_examples' cannot be null"),
        ("finetune", {**SETTINGS, "eval_steps": "abc"}, "'eval_steps' 'abc' is not a whole number"),
        ("finetune", {**SETTINGS, "eval_steps": 0}, "'eval_steps' must be a whole number of at least 1"),
        ("finetune", '{"train": "reviews", "eval": "reviews", "eval_steps": 1e400}', "'eval_steps' 'inf' is not a whole number"),
        ("finetune", {**SETTINGS, "model": True}, "'model' must be one text or number (got true)"),
        ("finetune", {**SETTINGS, "epochs": None}, "'epochs' cannot be null"),
        ("finetune", {**SETTINGS, "epochs": True}, "'epochs' must be one text or number (got true)"),
        ("finetune", {"train": ["reviews"], "eval": "reviews"}, "'train' must be one text or number (got [\"reviews\"])"),
        ("finetune", {**SETTINGS, "lora_targets": [["query"]]}, "'lora_targets' must be a list of texts or numbers"),
        ("prompt", {"train": "reviews", "eval": "reviews", "seed": []}, "'seed' needs at least one value (got an empty list)"),
        ("finetune", {**SETTINGS, "device": "meta"}, "'device' must be auto, cpu, cuda, cuda:N or mps"),
        ("finetune", {**SETTINGS, "device": "cpu:99"}, "'device' must be auto, cpu, cuda, cuda:N or mps"),
        ("finetune", "[" * 100_000 + "]" * 100_000, "nests its values too deeply"),
        ("finetune", '{"epochs": 1' + " " * 1_000_001 + "}", "larger than 1,000,000 bytes"),
    ],
)
def test_a_bad_config_value_is_one_sentence_and_exit_2(tmp_path, capsys, command, obj, sentence):
    assert main([command, "--config", write_config(tmp_path, obj)]) == 2
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err and err.count("\n") == 1


def test_a_config_fifo_is_refused_without_waiting(tmp_path, capsys):
    fifo = tmp_path / "settings.json"
    os.mkfifo(fifo)  # opening it to read would wait for a writer for ever
    assert main(["runs", "--config", str(fifo)]) == 2
    assert "is not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--device", "meta"), ("--device", "cpu:99"), ("--device", "cuda:x")])
def test_a_device_torch_cannot_run_is_refused_on_the_command_line(runs_dir, capsys, flag, value):
    assert main(["finetune", "--train", "reviews", "--eval", "reviews", "--method", "logreg", flag, value]) == 2
    assert "must be auto, cpu, cuda, cuda:N or mps" in capsys.readouterr().err
    assert not list(runs_dir.iterdir())


@pytest.mark.parametrize("extra", [["--device", "cuda"], ["--device", "mps"], ["--precision", "fp16"]])
def test_logreg_refuses_a_device_or_precision_it_would_not_use(runs_dir, tiny_bert_dir, capsys, extra):
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
                "logreg",
                *extra,
                "--out",
                "lr",
            ]
        )
        == 2
    )
    assert "embeds on the CPU in full precision" in capsys.readouterr().err


def test_max_length_beyond_the_models_positions_is_one_sentence(runs_dir, tiny_bert_dir, capsys):
    from transformers import AutoConfig

    positions = AutoConfig.from_pretrained(tiny_bert_dir).max_position_embeddings
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
                "--max-length",
                str(positions + 1),
                "--out",
                "long",
            ]
        )
        == 2
    )
    assert f"more than {tiny_bert_dir} can read ({positions} token positions)" in capsys.readouterr().err


def test_logreg_says_report_to_logs_nothing(runs_dir, tiny_bert_dir, capsys):
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
                "logreg",
                "--report-to",
                "tensorboard",
                "--out",
                "lr",
            ]
        )
        == 0
    )
    assert "logreg trains outside the Trainer, so --report-to tensorboard logs nothing" in capsys.readouterr().out


def test_efficiency_with_an_unclosed_quote_in_prompt_args_is_one_sentence(capsys):
    assert main(["efficiency", "--train", "reviews", "--eval", "reviews", "--prompt-args", '"']) == 2
    assert "--prompt-args: cannot be split into flags (no closing quotation)" in capsys.readouterr().err


# --- item 3: the Hugging Face box never reads local files -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "csv",
        "json",
        "text",
        "parquet",
        "arrow",
        "imagefolder",
        "audiofolder",
        "webdataset",
        "pandas",
        "sql",
        "generator",
        "CSV",
        "xml",
    ],
)
def test_packaged_loader_names_are_not_dataset_ids(monkeypatch, name):
    import datasets

    from core import data

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail(f"load_dataset({name!r}) was called"))
    with pytest.raises(UserError, match="is not a Hugging Face dataset id"):
        data.load_hub(name)
    with pytest.raises(UserError, match="is not a Hugging Face dataset id"):
        data.load(name)


def test_a_local_folder_name_is_not_a_dataset_id(monkeypatch, tmp_path):
    import datasets

    from core import data

    (tmp_path / "mydata").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("load_dataset was called"))
    with pytest.raises(UserError, match="is not a Hugging Face dataset id"):
        data.load_hub("mydata")


# --- item 4 (and 12's links in labels): run-derived text is never Markdown --------------------------------------------

MARKDOWN_CALLS = {"caption", "markdown", "info", "warning", "error", "success", "toast", "subheader", "header", "title"}
DATA_NAMES = re.compile(
    r"\b(name|note|notes|warning|state|status|summary|config|config_saved|label|labels|strategy|label_space|"
    r"stopped_by|root|kind|model|title|job_state|prediction|source)\b"
)


# plain escapes; the others give numbers, a bundled sample's own card, or a command made safe for a code span
SAFE_CALLS = {"plain", "len", "int", "float", "round", "nunique", "sample_card", "cli_data_args"}


def unescaped(node) -> list[str]:
    """The pieces of a Markdown call's argument that interpolate run or data values without ui.state.plain."""
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in SAFE_CALLS:
        return []
    if isinstance(
        node, ast.JoinedStr
    ):  # a value with a format spec ({n:,}, {p:.2f}) is a number; one in a `code span` is literal
        values = node.values
        return [
            piece
            for i, v in enumerate(values)
            if isinstance(v, ast.FormattedValue)
            and v.format_spec is None
            and not (
                0 < i < len(values) - 1
                and str(getattr(values[i - 1], "value", "")).endswith("`")
                and str(getattr(values[i + 1], "value", "")).startswith("`")
            )
            for piece in unescaped(v.value)
        ]
    if isinstance(node, (ast.BinOp, ast.IfExp)):
        return [piece for child in ast.iter_child_nodes(node) for piece in unescaped(child)]
    text = ast.unparse(node)
    return [text] if not isinstance(node, ast.Constant) and DATA_NAMES.search(text) else []


def test_every_page_escapes_run_and_data_text_it_renders_as_markdown():
    root = Path(__file__).resolve().parent.parent
    found = []
    for path in sorted([*root.glob("app_pages/*.py"), *root.glob("ui/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in MARKDOWN_CALLS and node.args:
                found += [f"{path.name}:{node.lineno}: {piece}" for piece in unescaped(node.args[0])]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "text",
    ["see https://example.org", "HTTP://x.y", "www.example.org", "mail me@example.org", "ftp://x", "![](https:127.0.0.1:8999)"],
)
def test_plain_leaves_no_bare_link_for_gfm_to_make(text):
    from ui.state import plain

    shown = plain(text)
    assert not re.search(r"(?i)(https?|ftp):|www\.|(?<!\\)@", shown.replace("\\:", "").replace("\\.", "")), shown
    assert re.sub(r"\\(.)", r"\1", shown) == text  # every escape is a backslash before the same character


# --- item 7: a header of 100,000 names ------------------------------------------------------------------------------


def test_a_table_of_too_many_columns_is_refused_in_one_sentence():
    from core import data

    header = ",".join(f"c{i}" for i in range(data.MAX_COLUMNS + 1))
    with pytest.raises(UserError, match=f"has {data.MAX_COLUMNS + 1:,} columns; the limit is {data.MAX_COLUMNS:,}"):
        data.read_table(f"{header}\n{','.join('x' * (data.MAX_COLUMNS + 1))}\n".encode(), "wide.csv")
    frame = pd.DataFrame({f"c{i}": ["x"] for i in range(data.MAX_COLUMNS + 1)})  # the same for JSON Lines and Parquet
    with pytest.raises(UserError, match="columns; the limit is"):
        data.read_table(frame.to_json(orient="records", lines=True).encode(), "wide.jsonl")


def test_a_repeated_name_in_a_wide_header_is_still_named():
    from core import data

    header = [f"c{i}" for i in range(500)] + ["c7"]
    with pytest.raises(UserError, match="names the column 'c7' more than once"):
        data.check_fields(",".join(header) + "\n", ",", "wide.csv")


# --- item 12: smaller ones --------------------------------------------------------------------------------------------


def test_a_jsonl_line_that_is_not_an_object_is_named():
    from core import data

    raw = b'{"text": "a", "label": "x"}\n\n[1, 2]\n{"text": "b", "label": "y"}\n'
    with pytest.raises(UserError, match=r"Line 3 of d.jsonl is a JSON list, not an object"):
        data.read_table(raw, "d.jsonl")
    with pytest.raises(UserError, match=r"Line 2 of d.jsonl is not valid JSON"):
        data.read_table(b'{"text": "a", "label": "x"}\n{"text": \n', "d.jsonl")


def test_a_million_character_cell_is_one_sentence_of_ours():
    from core import data

    raw = b'text,label\n"' + b"a" * 1_000_000 + b'",x\nb,y\n'
    with pytest.raises(UserError, match="has a cell longer than 131,072 characters") as e:
        data.read_table(raw, "big.csv")
    assert "field limit" not in str(e.value)


def test_a_file_that_is_not_a_table_is_neither_read_nor_quoted(tmp_path, capsys):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    assert main(["data", str(secret)]) == 2
    err = capsys.readouterr().err
    assert "passwd is not a table file" in err and "root:x" not in err


def test_data_shows_a_labels_terminal_escapes_as_text(tmp_path, capsys):
    red = "\x1b[31mred\x07"
    rows = ["text,label"] + [f"text number {i},{red if i % 2 else 'blue'}" for i in range(12)]
    (tmp_path / "esc.csv").write_text("\n".join(rows) + "\n")
    assert main(["data", str(tmp_path / "esc.csv")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mred\\x07" in out


def test_continual_refuses_a_dangling_step_link_before_training(runs_dir, tmp_path, capsys):
    (runs_dir / "seq.step1").symlink_to(tmp_path / "nowhere")
    assert main(["continual", "--train", "reviews", "reviews", "--eval", "reviews", "reviews", "--out", "seq"]) == 2
    assert "seq.step1" in capsys.readouterr().err
    assert not (runs_dir / "seq").exists()


def test_a_device_as_config_file_is_refused_unread(capsys):
    assert main(["runs", "--config", "/dev/zero"]) == 2  # only stat()ed: reading it would never end
    assert "is not a regular file" in capsys.readouterr().err


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["true", "false", "no", "1e400", "abc", "", "cuda:0", "lora"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=6,
)


@pytest.mark.parametrize(
    "command, cls",
    [
        ("finetune", "core.training.finetune.FinetuneConfig"),
        ("prompt", "core.prompting.PromptConfig"),
        ("continual", "core.training.continual.ContinualConfig"),
    ],
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_hostile_config_is_a_config_or_one_sentence(tmp_path, command, cls, data):
    """Any JSON value for any setting: the settings parse to values of the field's own kind, or end in a UserError."""
    import dataclasses
    import importlib

    from core.cli import build_parser, parse_args
    from core.settings import from_args

    module, name = cls.rsplit(".", 1)
    config_cls = getattr(importlib.import_module(module), name)
    keys = sorted({f.name for f in dataclasses.fields(config_cls)})
    obj = {"train": "reviews", "eval": "reviews"} if command != "continual" else {}
    obj.update(data.draw(st.dictionaries(st.sampled_from(keys), JSON_VALUES, min_size=1, max_size=3)))
    path = tmp_path / f"{command}.json"
    path.write_text(json.dumps(obj))
    build_parser()  # fresh parsers: defaults from an earlier example never leak
    try:
        args = parse_args([command, "--config", str(path)])
        if command == "prompt":  # one cell of the shots x seeds grid, as the command builds it
            from core.cli import prompt as cli_prompt

            config = cli_prompt.build_config(args, args.shots[0], args.seed[0])
        else:
            config = from_args(config_cls, args)
    except UserError as e:
        assert str(e) and "\n" not in str(e)
        return
    for f in dataclasses.fields(config_cls):
        value, default = getattr(config, f.name), dataclasses.MISSING if f.default is dataclasses.MISSING else f.default
        if isinstance(default, bool):
            assert isinstance(value, bool), (f.name, value)
        elif isinstance(default, (int, float)) and f.name in obj:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (f.name, value)


@pytest.mark.parametrize("linked", ["_data", "_data/abc"])
def test_the_pages_dataset_copy_is_not_written_through_a_link(runs_dir, tmp_path, linked):
    from core import data

    outside = tmp_path / "outside"
    outside.mkdir()
    if linked == "_data/abc":
        (runs_dir / "_data").mkdir()
    (runs_dir / linked).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="symbolic link"):
        data.save_splits(data.load("reviews"), runs_dir / "_data" / "abc")
    assert not list(outside.iterdir())


@pytest.mark.parametrize("entry", [".jobs.lock", "index.sqlite", "index.sqlite-wal"])
def test_the_runs_folders_own_files_are_not_written_through_links(runs_dir, tmp_path, entry):
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    (runs_dir / entry).symlink_to(precious)
    with pytest.raises(UserError, match="symbolic link"):
        if entry == ".jobs.lock":
            jobs.launch(["finetune", "--out", "x"], runs_dir / "x", settings={})
        else:
            runs.RunRegistry(runs_dir).list()
    assert precious.read_text() == "keep me"
