"""CLI flags and entry point of `python -m core finetune` (imports heavy modules only when run)."""

from __future__ import annotations

import argparse
import sys


def add_cli_args(sub) -> None:
    """Register the finetune subcommand: the data flags, then one flag per FinetuneConfig setting (core.settings)."""
    from core.cli import add_data_args
    from core.settings import add_flags
    from core.training.base import rate_text
    from core.training.finetune import METHODS, FinetuneConfig

    p = sub.add_parser(
        "finetune",
        help=f"fine-tune a classifier ({', '.join(METHODS)}) and evaluate it",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_data_args(p)
    add_flags(p, FinetuneConfig)
    rates = ", ".join(f"{name} {rate_text(m.default_lr)}" for name, m in METHODS.items() if not m.frozen)
    frozen = "/".join(n for n, m in METHODS.items() if m.frozen)
    p._option_string_actions["--lr"].help = f"peak learning rate (default: {rates}; {frozen}: none)"
    p.add_argument("--out", default=None, help="run name (a folder in the runs folder); default: finetune-METHOD-TIMESTAMP")
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args) -> int:
    """Load data, create the run folder (rank 0), train, evaluate, and write the run contract; failures end in status.json."""
    from core import data, distributed, jobs, models
    from core.comparison import evaluate
    from core.errors import UserError
    from core.runs import (
        RunDir,
        RunRecord,
        checkpoint_dir,
        command_line,
        finish_with_metrics,
        new_run_name,
        not_a_link,
        resolve_out,
    )
    from core.settings import from_args
    from core.training import finetune
    from core.training.finetune import FinetuneConfig

    world_size = distributed.world_size()
    if world_size > 1 and not args.out:
        raise UserError("Give --out when running under torchrun, so every process writes to the same run.")
    run = RunDir(resolve_out(args.out or new_run_name("finetune", f"{args.method}-{args.model}")))
    with jobs.run_job(run, "finetune", graceful=True) as job:  # cancel: training checks job.stop every step
        config = from_args(FinetuneConfig, args)
        if world_size > 1 and config.method not in finetune.SHARDED_METHODS:
            raise UserError(
                f"Method '{config.method}' does not run under torchrun; run it as one process (python -m core finetune ...)."
            )
        train_ds, train_split, eval_ds, eval_split = data.load_train_eval(args.train, args.eval, args.text_col, args.label_col)
        eval_frame = eval_ds.splits[eval_split]
        label_names = data.combined_labels(train_ds, eval_ds)
        train_frame, dev_frame, dev_description = finetune.choose_dev(config, train_ds, train_split, eval_frame)
        train_frame = finetune.cap_rows(train_frame, config.max_train_examples, config.seed)
        models.resolve(config.model)
        finetune.check_method_fits(config)
        if config.method in finetune.DECODER_ONLY and job.main:  # trained to answer a label word: numbers teach it little
            from core import prompting
            from core.training.prompt_learning import prompt_config

            if warning := prompting.opaque_warning(prompt_config(config), label_names):
                print(warning, file=sys.stderr)
        dataset = {
            "name": eval_ds.name,
            "train": args.train,
            "eval": args.eval,
            "train_split": train_split,
            "eval_split": eval_split,
            "train_sha256": data.fingerprint(train_frame),
            "eval_sha256": eval_ds.fingerprint(eval_split),
        }
        record = RunRecord(
            "finetune",
            dataset,
            label_names,
            command_line(args.argv),
            n_train_examples=len(train_frame),
            dev_set=dev_description,
            n_dev_examples=0 if dev_frame is None else len(dev_frame),
            world_size=world_size,
        )
        if job.main:
            job.create(record, config.to_dict())
            job.start()
            print(f"run: {run.path}", flush=True)
            print(
                f"train: {len(train_frame)} rows; dev: {dev_description}; eval: {len(eval_frame)} rows ({eval_split})", flush=True
            )

        def announce(params: finetune.ParameterCount) -> None:
            if job.main:
                print(params.sentence(), flush=True)
                run.set_status("running", trainable_params=params.trainable, total_params=params.total)

        result = finetune.train(
            config,
            train_frame,
            dev_frame,
            eval_frame,
            label_names,
            run if job.main else None,
            job.stop,
            work_dir=not_a_link(checkpoint_dir(run.path)),
            on_model_ready=announce,
        )
        if not job.main:
            return 0
        if result.cancelled:
            raise jobs.Cancelled
        below = evaluate.flag_below_majority(result.metrics, result.predictions["label"].tolist(), label_names)
        finish_with_metrics(run, result.metrics, result.predictions)
    m = result.metrics
    print(
        f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  ({m['n_examples']} examples, "
        f"{m['train_seconds']:.1f} s training, stopped by {m['stopped_by']})",
        flush=True,
    )
    if below:
        print(f"warning: {below}", file=sys.stderr, flush=True)
    return 0
