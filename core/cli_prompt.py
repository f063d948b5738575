"""CLI flags and entry point of `python -m core prompt` (imports heavy modules only when run).

Several --shots and --seed values make a grid: one run directory per (shots, seed), run one after another in this
process (the model is loaded once), named NAME-<k>shot-seed<s>."""

from __future__ import annotations

import argparse
import sys
import time

from core.errors import UserError


def add_cli_args(sub) -> None:
    """Register the prompt subcommand."""
    from core import prompting
    from core.cli import SEED, add_data_args, number
    from core.prompting import PromptConfig

    d = PromptConfig()  # one source of defaults for the page and the CLI

    def flag(text: str) -> str:
        return text.replace("\n", "\\n")  # templates are typed on one line, with \n for a newline

    p = sub.add_parser("prompt", help="classify the evaluation split by zero-/few-shot prompting a causal LM",
                       description="Classify the evaluation split by prompting; writes a run directory (config, status, metrics, predictions).")
    add_data_args(p)
    p.add_argument("--model", default="smollm2", help="causal LM: bundled 'smollm2' (default), a Hugging Face id or a local folder")
    p.add_argument("--shots", type=int, nargs="+", default=[0], metavar="K", help="demonstrations per prompt; several values make a grid")
    p.add_argument("--selection", choices=["random", "balanced", "nearest"], default=d.selection, help="how demonstrations are chosen")
    p.add_argument("--calibrate", choices=[prompting.AUTO, *prompting.CALIBRATIONS], default=d.calibration,
                   help="calibration of label probabilities; auto (default) picks the best by macro-F1 on a slice of the training data")
    p.add_argument("--template", choices=prompting.TEMPLATE_CHOICES, default=d.template,
                   help="custom: the instruction and templates given; auto: the best of a few built-in wordings on a training slice")
    p.add_argument("--scoring", choices=["sum", "mean"], default=d.scoring, help="label log-likelihood: sum over its tokens, or mean")
    p.add_argument("--seed", type=SEED, nargs="+", default=[0], metavar="S", help="seed of demonstration choice; several values make a grid")
    p.add_argument("--instruction", default=flag(d.instruction), help="first line; {labels} = the label words ('\\n' = newline)")
    p.add_argument("--example-template", default=flag(d.example_template), help="one demonstration, with {text} and {label}")
    p.add_argument("--query-template", default=flag(d.query_template), help="the text to classify, with {text}; the label word follows it")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--label-words", nargs="+", action="extend", default=[], metavar="LABEL=WORD", help="what the model should say for a label")
    p.add_argument("--batch-size", type=number(int, 1), default=d.batch_size)
    p.add_argument("--max-eval-examples", type=number(int, 1), default=None, help="score a fixed random subset of this many evaluation rows")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--out", default=None, help="run name or runs/NAME (default: a new name like prompt-8shot-balanced-<time>)")
    p.set_defaults(func=cmd_prompt)


def unescape(template: str) -> str:
    """Templates typed on a command line spell newlines as \\n and tabs as \\t."""
    return template.replace("\\n", "\n").replace("\\t", "\t")


def parse_label_words(pairs: list[str]) -> dict[str, str]:
    """LABEL=WORD pairs as a dict."""
    out = {}
    for pair in pairs:
        label, sep, word = pair.partition("=")
        if not sep or not label.strip() or not word.strip():
            raise UserError(f"'{pair}' is not LABEL=WORD; write e.g. --label-words negative=bad positive=good.")
        out[label.strip()] = word.strip()
    return out


def build_config(args: argparse.Namespace, shots: int, seed: int):
    """A PromptConfig from the parsed flags, for one cell of the grid."""
    from core.prompting import PromptConfig

    return PromptConfig(model=args.model, instruction=unescape(args.instruction), example_template=unescape(args.example_template),
                        query_template=unescape(args.query_template), use_chat_template=args.chat,
                        label_words=parse_label_words(args.label_words), shots=shots, selection=args.selection,
                        calibration=args.calibrate, template=args.template, scoring=args.scoring, seed=seed, batch_size=args.batch_size,
                        max_eval_examples=args.max_eval_examples, device=args.device)


def _interrupt(signum, frame) -> None:
    """SIGTERM handler: stop like Ctrl-C."""
    raise KeyboardInterrupt


def cmd_prompt(args) -> int:
    """Load data and model, then for each (shots, seed): create the run, score the eval split, write the results."""
    import os
    import signal

    from core import data, prompting, runs

    signal.signal(signal.SIGTERM, _interrupt)  # jobs.cancel: mark the run cancelled rather than dying mid-write

    if len(args.shots) * len(args.seed) > 50:
        raise UserError("A grid of more than 50 runs was asked for; use fewer --shots or --seed values.")
    configs = [build_config(args, k, s) for k in args.shots for s in args.seed]  # validates every cell first
    train_ds, train_split = data.load_split(args.train, "train", args.text_col, args.label_col)
    eval_ds, eval_split = data.load_split(args.eval, "test", args.text_col, args.label_col)
    train, eval_df = train_ds.splits[train_split], eval_ds.splits[eval_split]
    labels = data.combined_labels(train_ds, eval_ds)
    opaque = prompting.opaque_labels(configs[0], labels)
    if opaque:
        shown = ", ".join(opaque[:5]) + (f" and {len(opaque) - 5} more" if len(opaque) > 5 else "")
        example = " ".join(f"{lab}=WORD" for lab in opaque[:2])
        print(f"warning: the label words {shown} are numbers or codes, which the model cannot read as meanings; "
              f"give label words that mean something with --label-words {example} (e.g. 0=negative).", file=sys.stderr)
    missing = set(eval_df["label"]) - set(train["label"])
    if missing and max(args.shots) > 0:
        print(f"note: the training data has no examples of: {', '.join(sorted(missing))}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: each process scores a shard, rank 0 writes the runs
        if not args.out:
            raise UserError("Give --out when running under torchrun, so every process works on the same run.")
        if join_process_group() != 0:
            for config in configs:
                prompting.run_prompting(config, train, eval_df, labels)
            return 0
    base = args.out or runs.new_run_name("prompt", f"{args.shots[0]}shot-{args.selection}")
    base_dir = runs.resolve_out(base)
    cells = prompting.grid_run_names(base_dir.name, args.shots, args.seed)
    paths = [base_dir.parent / name for name, _, _ in cells]
    for p in paths:  # all names checked before any folder is made; jobs.launch may have reserved the first for us
        if p.exists() and not (runs.reserved_for_this_process(p) and not (p / "config.json").exists()):
            raise UserError(f"A run named '{p.name}' already exists; choose another name.")
    dataset = {"name": eval_ds.name, "train": args.train, "eval": args.eval, "train_split": train_split, "eval_split": eval_split,
               "train_sha256": data.fingerprint(train), "eval_sha256": data.fingerprint(eval_df)}
    command = runs.command_line(args.argv)
    run_dirs = []
    for config, path in zip(configs, paths):
        record = {"kind": "prompt", "model": config.model, "method": config.method, "dataset": dataset,
                  "n_train_examples": config.shots, "seed": config.seed, "labels": labels, **config.to_dict(),
                  "grid": [p.name for p in paths] if len(paths) > 1 else None, "command": command}
        run_dirs.append(runs.RunDir(path).create(record))
        run_dirs[-1].set_status("queued", pid=os.getpid())
    for i, (config, run) in enumerate(zip(configs, run_dirs)):
        try:
            run_one(config, run, train, eval_df, labels)
        except BaseException as e:
            message = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {str(e)[:300]}"
            state = "cancelled" if isinstance(e, KeyboardInterrupt) else "failed"
            if state == "cancelled":
                message = f"Cancelled at {runs.reached(run.status, 'prompt') or 'the start'}."
            try:
                run.set_status(state, error=message)
                for later in run_dirs[i + 1 :]:
                    later.set_status(state, error=f"Not run: {run.name} {state} first ({message}).")
            except UserError:  # the first failure is what the user must read, not a status write that failed after it
                pass
            raise
        print(f"{run.name}: accuracy {run.metrics['accuracy']:.3f}, macro-F1 {run.metrics['macro_f1']:.3f} -> {run.path}")
    return 0


def join_process_group() -> int:
    """Start torch.distributed for a torchrun job (NCCL with one GPU per process, else gloo on CPU); this process's rank."""
    import os

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank()


def run_one(config, run, train, eval_df, labels) -> None:
    """One prompting run with progress in status.json (and a bar on a terminal) after every batch."""
    from core import evaluate, progress, prompting, runs

    started = time.time()
    run.set_status("running", progress=0.0, done=0, total=None, of=len(eval_df))

    def report(done: int, total: int) -> None:  # examples scored, examples to score (of: examples in the split)
        run.set_status("running", progress=round(done / total, 4), done=done, total=total, of=len(eval_df),
                       eta_seconds=prompting.eta_seconds(time.time() - started, done, total))
        progress.advance(bar, done, total)

    with progress.bar(run.name) as bar:
        result = prompting.run_prompting(config, train, eval_df, labels, report)
    if result.auto:
        print(f"{run.name}: {prompting.describe_choice(result.auto)}")
        run.write("config.json", {**run.config, **result.config.to_dict(), "method": f"{result.config.method} (auto)", "auto": result.auto})
    for w in result.warnings:
        print(f"warning: {w}")
    run.write("demonstrations.json", {"demos": result.demos.to_dict(orient="records"), "warnings": result.warnings,
                                      "prefix_tokens": result.prefix_tokens, "example_prompt": result.example_prompt})
    below = evaluate.flag_below_majority(result.metrics, result.predictions["label"].tolist(), labels)
    runs.finish_with_metrics(run, result.metrics, result.predictions)
    if below:
        print(f"warning: {run.name}: {below}", file=sys.stderr)


def config_argv(config, shots: list[int], seeds: list[int], out: str) -> list[str]:
    """The `prompt` CLI flags that reproduce a PromptConfig over a grid of shots and seeds (data flags not included)."""
    argv = ["--model", config.model, "--shots", *map(str, shots), "--selection", config.selection, "--calibrate", config.calibration,
            "--template", config.template,
            "--scoring", config.scoring, "--seed", *map(str, seeds), f"--instruction={config.instruction}",
            f"--example-template={config.example_template}", f"--query-template={config.query_template}",
            "--batch-size", str(config.batch_size), f"--device={config.device}", f"--out={out}"]
    if config.use_chat_template:
        argv.append("--chat")
    if config.label_words:
        argv += [f"--label-words={k}={v}" for k, v in config.label_words.items()]  # one flag each: a label may start with '-'
    if config.max_eval_examples:
        argv += ["--max-eval-examples", str(config.max_eval_examples)]
    return argv
