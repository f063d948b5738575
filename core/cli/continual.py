"""`python -m core continual`: fine-tune on a sequence of tasks and write the accuracy matrix (core/training/continual.py)."""

from __future__ import annotations

import argparse
import os


def add_cli_args(sub) -> None:
    """Register the continual subcommand."""
    from core.settings import add_flags
    from core.training.continual import DEFAULT_EVAL, DEFAULT_TRAIN, ContinualConfig

    p = sub.add_parser(
        "continual",
        help="fine-tune on a sequence of tasks and measure forgetting (naive, replay, lora-per-task, ewc)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--train",
        nargs="+",
        default=list(DEFAULT_TRAIN),
        metavar="T",
        help="training data of each task, in order: sample names (reviews, reviews:train) or files",
    )
    p.add_argument(
        "--eval",
        nargs="+",
        default=list(DEFAULT_EVAL),
        metavar="E",
        help="evaluation data of each task, in the same order (a sample's test split by default)",
    )
    p.add_argument("--text-col", default=None, help="text column of files (detected when unambiguous)")
    p.add_argument("--label-col", default=None, help="label column of files (detected when unambiguous)")
    add_flags(p, ContinualConfig)
    p.add_argument(
        "--out", default=None, help="run name; each step also becomes a run NAME.stepK (default: continual-STRATEGY-TIMESTAMP)"
    )
    p.set_defaults(func=cmd_continual)


def cmd_continual(args) -> int:
    """Validate, create the run folder, train task by task (saving each step), and print the matrix and transfer."""
    from core import jobs, models
    from core.errors import UserError
    from core.runs import RunRecord, command_line, finish_with_metrics, new_run_name, resolve_out
    from core.settings import from_args
    from core.training import continual

    config = from_args(continual.ContinualConfig, args)
    run = continual.TaskRun(resolve_out(args.out or new_run_name("continual", config.strategy)))
    with jobs.run_job(run, "continual", graceful=True) as job:  # cancel: training checks job.stop every step
        tasks = continual.load_tasks(args.train, args.eval, args.text_col, args.label_col, args.max_train_examples, config.seed)
        for k in range(1, len(tasks) + 1):
            sibling = resolve_out(continual.step_run_name(run.name, k), run.path.parent)
            if os.path.lexists(sibling):
                raise UserError(f"A run named '{sibling.name}' already exists; choose another --out.")
        models.check_max_length(config.model, config.max_length)
        space = continual.label_space(tasks)
        dataset = {
            "name": " → ".join(t.name for t in tasks),
            "train": args.train,
            "eval": args.eval,
            "eval_sha256": continual.union_fingerprint(tasks),
        }
        record = RunRecord(
            "continual",
            dataset,
            space.units,
            command_line(args.argv),
            method=config.strategy,
            n_train_examples=sum(len(t.train) for t in tasks),
            tasks=[t.describe() for t in tasks],
            label_space=space.sentence(),
        )
        run_config = record.config(config.to_dict())
        job.create(record, config.to_dict())
        job.start(task=0, tasks=len(tasks))
        print(f"run: {run.path}", flush=True)
        print(f"{len(tasks)} tasks: {' → '.join(t.name for t in tasks)}; {space.sentence()}", flush=True)

        def on_step(result, step, trainer, model) -> None:
            continual.save_step(run, config, run_config, result, step, trainer)
            row = "  ".join(f"{a:.3f}" for a in result.matrix[step])
            print(f"after step {step + 1} ({tasks[step].name}): accuracy per task {row}", flush=True)

        result = continual.run_sequence(config, tasks, run, job.stop, on_step=on_step)
        run.write("continual.json", result.summary(config))  # the finished steps, also when cancelled
        if result.cancelled:
            raise jobs.Cancelled
        summary = result.summary(config)
        metrics = continual.step_metrics(result, len(tasks) - 1)
        metrics.update(average_accuracy=summary["average_accuracy"], bwt=summary["bwt"], fwt=summary["fwt"])
        finish_with_metrics(run, metrics, result.step_predictions[-1])
    print(f"average accuracy {summary['average_accuracy']:.4f}  BWT {summary['bwt']:+.4f}  FWT {summary['fwt']:+.4f}", flush=True)
    return 0
