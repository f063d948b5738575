"""CLI flags and entry point of `python -m core finetune` (imports heavy modules only when run)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback


def add_cli_args(sub) -> None:
    """Register the finetune subcommand: the data flags, then one flag per FinetuneConfig setting (core.settings)."""
    from core.cli import add_data_args
    from core.settings import add_flags
    from core.training.base import rate_text
    from core.training.finetune import METHODS, FinetuneConfig

    p = sub.add_parser("finetune", help=f"fine-tune a classifier ({', '.join(METHODS)}) and evaluate it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(p)
    add_flags(p, FinetuneConfig)
    rates = ", ".join(f"{name} {rate_text(m.default_lr)}" for name, m in METHODS.items() if not m.frozen)
    p._option_string_actions["--lr"].help = (f"peak learning rate (default: {rates}; "
                                             f"{'/'.join(n for n, m in METHODS.items() if m.frozen)}: none)")
    p.add_argument("--out", default=None, help="run name (a folder in the runs folder); default: finetune-METHOD-TIMESTAMP")
    p.set_defaults(func=cmd_finetune)


def one_sentence(exc: BaseException) -> str:
    """An unexpected exception as one line for status.json and stderr."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"Training crashed ({type(exc).__name__}{': ' + first if first else ''})."


def cmd_finetune(args) -> int:
    """Load data, create the run folder (rank 0), train, evaluate, and write the run contract; failures end in status.json."""
    from core import data, models
    from core.comparison import evaluate
    from core.distributed import is_main_process, world_size
    from core.errors import UserError
    from core.runs import (
        RunDir,
        checkpoint_dir,
        command_line,
        finish_with_metrics,
        new_run_name,
        not_a_link,
        reached,
        reserved_for_this_process,
        resolve_out,
    )
    from core.settings import from_args
    from core.training import finetune
    from core.training.finetune import FinetuneConfig

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # graceful cancel: training checks the flag every step
    main_rank = is_main_process()
    distributed = world_size() > 1
    if distributed and not args.out:
        raise UserError("Give --out when running under torchrun, so every process writes to the same run.")
    run_path = resolve_out(args.out or new_run_name("finetune", f"{args.method}-{args.model}"))
    run = RunDir(run_path)
    created = False
    try:
        config = from_args(FinetuneConfig, args)
        if distributed and config.method not in finetune.SHARDED_METHODS:
            raise UserError(f"Method '{config.method}' does not run under torchrun; run it as one process (python -m core finetune ...).")
        train_ds, train_split = data.load_split(args.train, "train", args.text_col, args.label_col, seed=config.seed)
        eval_ds, eval_split = data.load_split(args.eval, "test", args.text_col, args.label_col, seed=config.seed)
        eval_frame = eval_ds.splits[eval_split]
        label_names = data.combined_labels(train_ds, eval_ds)
        train_frame, dev_frame, dev_description = finetune.choose_dev(config, train_ds, train_split, eval_frame)
        train_frame = finetune.cap_rows(train_frame, config.max_train_examples, config.seed)
        models.resolve(config.model)
        finetune.check_method_fits(config)
        if config.method in finetune.DECODER_ONLY and main_rank:  # trained to answer a label word: numbers teach it little
            from core import prompting
            from core.training.prompt_learning import prompt_config

            if warning := prompting.opaque_warning(prompt_config(config), label_names):
                print(warning, file=sys.stderr)
        run_config = {
            "kind": "finetune",
            **config.to_dict(),
            "dataset": {"name": eval_ds.name, "train": args.train, "eval": args.eval, "train_split": train_split,
                        "eval_split": eval_split, "train_sha256": data.fingerprint(train_frame),
                        "eval_sha256": eval_ds.fingerprint(eval_split)},
            "dev_set": dev_description,
            "n_dev_examples": 0 if dev_frame is None else len(dev_frame),
            "n_train_examples": len(train_frame),
            "labels": label_names,
            "world_size": world_size(),
            "command": command_line(args.argv),
        }
        if main_rank:
            run.create(run_config)
            created = True
            run.set_status("running", pid=os.getpid(), progress=0.0, done=0, total=None, eta_seconds=None, error=None)
            print(f"run: {run.path}", flush=True)
            print(f"train: {len(train_frame)} rows; dev: {dev_description}; eval: {len(eval_frame)} rows ({eval_split})", flush=True)

        def announce(params: finetune.ParameterCount) -> None:
            if main_rank:
                print(params.sentence(), flush=True)
                run.set_status("running", trainable_params=params.trainable, total_params=params.total)

        result = finetune.train(config, train_frame, dev_frame, eval_frame, label_names, run if main_rank else None, stop,
                                work_dir=not_a_link(checkpoint_dir(run.path)), on_model_ready=announce)
        if not main_rank:
            return 0
        if result.cancelled:
            run.set_status("cancelled", error=f"Cancelled by the user at {reached(run.status, 'finetune') or 'the start'}.")
            print(f"cancelled; what was saved is kept in {run.path}", file=sys.stderr)
            return 1
        below = evaluate.flag_below_majority(result.metrics, result.predictions["label"].tolist(), label_names)
        finish_with_metrics(run, result.metrics, result.predictions)
        m = result.metrics
        print(f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  ({m['n_examples']} examples, "
              f"{m['train_seconds']:.1f} s training, stopped by {m['stopped_by']})", flush=True)
        if below:
            print(f"warning: {below}", file=sys.stderr, flush=True)
        return 0
    except UserError as e:
        _mark(run, created or reserved_for_this_process(run.path), "failed", str(e))
        raise
    except KeyboardInterrupt:
        _mark(run, created, "cancelled", f"Interrupted at {reached(run.status, 'finetune') or 'the start'}.")
        raise
    except Exception as e:
        return report_crash(run, created or reserved_for_this_process(run.path), e, main_rank)


def report_crash(run, ours: bool, exc: BaseException, main_rank: bool = True) -> int:
    """An unexpected exception: its traceback in the run folder, the run failed with one sentence, that sentence on
    stderr; returns exit status 1."""
    from core.runs import write_atomic

    sentence = one_sentence(exc)
    if main_rank and ours and run.path.is_dir() and not run.path.is_symlink():  # only into a folder this run made or reserved
        try:  # atomic: a link planted as traceback.txt is replaced, never followed
            write_atomic(run.path / "traceback.txt", "".join(traceback.format_exception(exc)))
        except OSError:
            pass
    _mark(run, ours, "failed", sentence)
    print(f"error: {sentence}", file=sys.stderr)
    return 1


def _mark(run, ours: bool, state: str, error: str) -> None:
    """Write a final state into a run folder this process owns (never into someone else's run)."""
    from core.distributed import is_main_process

    if ours and is_main_process() and run.path.is_dir():
        try:
            run.set_status(state, error=error)
        except Exception:  # the original error matters more than a failed status write
            pass
