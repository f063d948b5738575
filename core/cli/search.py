"""CLI of `python -m core search`: hyperparameter search with Optuna (core/search.py), every trial an ordinary run."""

from __future__ import annotations

import json


def json_value(what: str):
    """An argparse type: a JSON text (one sentence when it is not)."""
    import argparse

    def parse(text: str):
        try:
            return json.loads(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'is not valid JSON ({what}, e.g. {{"lr": [0.001, 0.0003]}})') from None

    return parse


def add_cli_args(sub) -> None:
    """Register the search subcommand."""
    from core.cli import add_data_args
    from core.search import BACKENDS
    from core.settings import SEED, number

    p = sub.add_parser(
        "search",
        help="hyperparameter search (Optuna) for a fine-tune method or for prompting; every trial is a run",
        description="Tune a method on a dev split carved from the training data (20%, stratified, seeded), then "
        "re-train the best settings on all training rows and evaluate them on the evaluation split as run NAME.",
    )
    add_data_args(p)
    p.add_argument(
        "--method",
        required=True,
        help="prompt, or a fine-tune method: full, head, bitfit, lora, adapter, setfit, prompt-tuning, lora-lm",
    )
    p.add_argument("--trials", type=number(int, 0), default=20, help="finished trials wanted (complete or pruned; default 20)")
    p.add_argument(
        "--budget",
        type=number(float, -1e12),
        default=1200.0,
        help="seconds of trials; no trial starts after they are spent (default 1200)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="the search's name: its folder runs/NAME holds study.db and becomes the result run; "
        "trials are runs NAME.trialK (an existing search of that name resumes)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed of the dev split, the sampler and every trial")
    p.add_argument("--model", default=None, help="the model (default: the method's default model)")
    p.add_argument(
        "--max-train-examples", type=number(int, 0), default=0, help="use at most N training rows, a seeded sample (0: all)"
    )
    p.add_argument(
        "--space",
        type=json_value("the space"),
        default={},
        help='JSON object overriding the method\'s space: a list of values or {"low", "high", "log", "int"} per '
        'setting; one value fixes it (e.g. {"epochs": [1]})',
    )
    p.add_argument(
        "--enqueue",
        type=json_value("settings to try first"),
        default=[],
        help="JSON list of settings objects tried first (default: the method's defaults)",
    )
    p.add_argument("--jobs", type=number(int, 1, 64), default=1, help="trials at once on this machine")
    p.add_argument(
        "--storage",
        default=None,
        help="study database shared by several processes or machines: a database URL "
        "(sqlite:///PATH, postgresql://...) or journal:PATH (default: runs/NAME/study.db)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="optuna", help="optuna (trials as local processes) or ray (Ray Tune)")
    p.add_argument("--ray-address", default=None, help="with --backend ray: the cluster to join (default: a local Ray)")
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    """Validate, prepare the folder and study, run the trials, re-train the best; a failure ends in the folder's status."""
    from core import jobs
    from core.runs import RunDir, new_run_name
    from core.search import Search, optimize, prepare, retrain

    search = Search(
        method=str(args.method).lower(),
        train=args.train,
        eval=args.eval,
        trials=args.trials,
        budget=args.budget,
        out=args.out or new_run_name("search", args.method),
        seed=args.seed,
        model=args.model,
        space=args.space,
        enqueue=args.enqueue,
        jobs=args.jobs,
        storage=args.storage,
        max_train_examples=args.max_train_examples,
        text_col=args.text_col,
        label_col=args.label_col,
    )
    if args.backend == "ray":
        from core.search_ray import check_ray

        check_ray()
    with jobs.run_job(RunDir(search.folder), "search"):  # a cancel stops the trials; the study keeps what finished
        prepare(search)
        print(f"search: {search.folder}", flush=True)
        if args.backend == "ray":
            from core.search_ray import optimize_ray

            study = optimize_ray(search, args.ray_address)
        else:
            study = optimize(search, log=lambda line: print(line, flush=True))
        return retrain(search, study, log=lambda line: print(line, flush=True))
