"""CLI flags and entry point of `python -m core prompt` (imports heavy modules only when run).

Several --shots and --seed values make a grid: one run directory per (shots, seed), run one after another in this
process (the model is loaded once), named NAME-<k>shot-seed<s>."""

from __future__ import annotations

import argparse
import sys

from core.errors import UserError


def add_cli_args(sub) -> None:
    """Register the prompt subcommand: the data flags, then one flag per PromptConfig setting (core.settings)."""
    from core.cli import add_data_args
    from core.prompting import PromptConfig
    from core.settings import add_flags

    p = sub.add_parser(
        "prompt",
        help="classify the evaluation split by zero-/few-shot prompting a causal LM",
        description="Classify the evaluation split by prompting; writes a run directory (config, status, metrics, predictions).",
    )
    add_data_args(p)
    add_flags(p, PromptConfig)
    p.add_argument("--out", default=None, help="run name or runs/NAME (default: a new name like prompt-8shot-balanced-<time>)")
    p.set_defaults(func=cmd_prompt)


def build_config(args: argparse.Namespace, shots: int, seed: int):
    """A PromptConfig from the parsed flags, for one cell of the grid."""
    from core.prompting import PromptConfig
    from core.settings import from_args

    return from_args(PromptConfig, args, shots=shots, seed=seed)


def cmd_prompt(args) -> int:
    """Load data and model, then for each (shots, seed): create the run, score the eval split, write the results."""
    import os

    from core import data, distributed, endpoints, jobs, models, prompting, runs

    if len(args.shots) * len(args.seed) > 50:
        raise UserError("A grid of more than 50 runs was asked for; use fewer --shots or --seed values.")
    configs = [build_config(args, k, s) for k in args.shots for s in args.seed]  # validates every cell first
    if not endpoints.is_endpoint(configs[0].model):  # a GPU option this machine cannot serve: its sentence before any run folder
        endpoints.local_options(configs[0], models.choose_device(configs[0].device))
    train_ds, train_split, eval_ds, eval_split = data.load_train_eval(args.train, args.eval, args.text_col, args.label_col)
    train, eval_df = train_ds.splits[train_split], eval_ds.splits[eval_split]
    labels = data.combined_labels(train_ds, eval_ds)
    if warning := prompting.opaque_warning(configs[0], labels):
        print(warning, file=sys.stderr)
    missing = set(eval_df["label"]) - set(train["label"])
    if missing and max(args.shots) > 0:
        print(f"note: the training data has no examples of: {', '.join(sorted(missing))}")
    if distributed.world_size() > 1:  # torchrun: each process scores a shard, rank 0 writes the runs
        if not args.out:
            raise UserError("Give --out when running under torchrun, so every process works on the same run.")
        if distributed.join_process_group() != 0:
            for config in configs:
                prompting.run_prompting(config, train, eval_df, labels)
            return 0
    base = args.out or runs.new_run_name("prompt", f"{args.shots[0]}shot-{args.selection}")
    base_dir = runs.resolve_out(base)
    cells = prompting.grid_run_names(base_dir.name, args.shots, args.seed)
    paths = [base_dir.parent / name for name, _, _ in cells]
    for p in paths:  # all names checked before any folder is made; jobs.launch may have reserved the first for us
        if runs.not_a_link(p).exists() and not (runs.reserved_for_this_process(p) and not (p / "config.json").exists()):
            raise UserError(f"A run named '{p.name}' already exists; choose another name.")
    dataset = {
        "name": eval_ds.name,
        "train": args.train,
        "eval": args.eval,
        "train_split": train_split,
        "eval_split": eval_split,
        "train_sha256": data.fingerprint(train),
        "eval_sha256": data.fingerprint(eval_df),
    }
    command = runs.command_line(args.argv)
    run_dirs = []
    for config, path in zip(configs, paths):
        record = runs.RunRecord(
            "prompt",
            dataset,
            labels,
            command,
            method=config.method,
            n_train_examples=config.shots,
            grid=[p.name for p in paths] if len(paths) > 1 else None,
            **endpoints.config_record(config),
        )
        run_dirs.append(runs.RunDir(path).create(record.config(config.to_dict())))
        run_dirs[-1].set_status("queued", pid=os.getpid())
    for i, (config, run) in enumerate(zip(configs, run_dirs)):
        with jobs.run_job(run, "prompt", made=True, rest=run_dirs[i + 1 :]) as job:
            run_one(config, job, train, eval_df, labels)
        print(f"{run.name}: accuracy {run.metrics['accuracy']:.3f}, macro-F1 {run.metrics['macro_f1']:.3f} -> {run.path}")
    return 0


def run_one(config, job, train, eval_df, labels) -> None:
    """One prompting run with progress in status.json (and a bar on a terminal) after every batch."""
    from core import endpoints, progress, prompting, runs
    from core.comparison import evaluate

    run = job.run
    job.start(of=len(eval_df))
    with progress.Reporter(run, run.name) as report:  # examples scored of examples to score (of: examples in the split)
        result = prompting.run_prompting(config, train, eval_df, labels, lambda done, total: report(done, total, of=len(eval_df)))
    if result.auto:
        print(f"{run.name}: {prompting.describe_choice(result.auto)}")
        run.write(
            "config.json",
            {**run.config, **result.config.to_dict(), "method": f"{result.config.method} (auto)", "auto": result.auto},
        )
    elif "scoring_mode" in result.metrics:  # an endpoint run: the probed scoring mode is part of what ran
        run.write(
            "config.json",
            {**run.config, "scoring_mode": result.metrics["scoring_mode"], "calibration": result.config.calibration},
        )
    if "scoring_mode" in result.metrics:
        print(f"{run.name}: {endpoints.describe_usage(result.metrics)}")
    for w in result.warnings:
        print(f"warning: {w}")
    run.write(
        "demonstrations.json",
        {
            "demos": result.demos.to_dict(orient="records"),
            "warnings": result.warnings,
            "prefix_tokens": result.prefix_tokens,
            "example_prompt": result.example_prompt,
        },
    )
    below = evaluate.flag_below_majority(result.metrics, result.predictions["label"].tolist(), labels)
    runs.finish_with_metrics(run, result.metrics, result.predictions)
    if below:
        print(f"warning: {run.name}: {below}", file=sys.stderr)
