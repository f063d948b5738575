"""CLI of `python -m core slices` (each run's metrics per slice of the evaluation split) `label-errors` (rows whose label
looks wrong) and `robustness` (predictions on perturbed texts)."""

from __future__ import annotations

from core.errors import UserError


def add_cli_args(sub) -> None:
    """Register the explorer's subcommands."""
    from core.cli import SEED, number

    p = sub.add_parser(
        "slices", help="each run's accuracy and macro-F1 per slice of the evaluation split, prompt vs fine-tune tests"
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (or run names) on one evaluation split")
    p.add_argument(
        "--by", default="length", help="length | label | negation | numbers | column:NAME | regex:PATTERN (default length)"
    )
    p.add_argument(
        "--data", default=None, help="the evaluation file whose extra columns column:NAME slices by (rows matched on text)"
    )
    p.add_argument("--text-col", default=None, help="text column of --data (detected when unambiguous)")
    p.add_argument(
        "--resamples",
        type=number(int, 100, 100_000),
        default=1000,
        help="bootstrap resamples for the 95%% intervals (default 1000)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--csv", default=None, help="also write the slice table to this CSV file")
    p.add_argument("--html", default=None, help="write the comparison's HTML report with the slices in it (two or more runs)")
    p.set_defaults(func=cmd_slices)
    add_label_errors_args(sub)
    add_robustness_args(sub)


def extra_columns(path: str, text_col: str | None) -> "pd.DataFrame | None":  # noqa: F821, UP037
    """The file's columns beside text and label (for column:NAME slices)."""
    from core import data, explore

    frame = data.read_file(path)
    text_col = data.detect_column(list(frame.columns), data.TEXT_COLUMNS, "text", text_col)
    label_col = next((c for c in frame.columns if c in data.LABEL_COLUMNS), None)
    return explore.extra_columns(frame, text_col, label_col)


def cmd_slices(args) -> int:
    """Print the slice table, slices where a prompt and a fine-tuned run differ significantly first."""
    import pandas as pd

    from core import explore
    from core.comparison import report

    kind, _ = explore.parse_by(args.by)  # a bad --by is refused before any run is read
    if kind == "column" and not args.data:
        raise UserError("Slicing by a column needs the file that holds it: add --data FILE.")
    extra = extra_columns(args.data, args.text_col) if args.data else None
    joined, kinds, labels = explore.load_joined(args.runs)
    result = explore.slice_report(joined, kinds, labels, args.by, extra, n_resamples=args.resamples, seed=args.seed)
    significant = result.tests[result.tests["significant"]]["slice"].unique()
    print(
        f"{len(joined)} evaluation examples in {result.table['slice'].nunique()} slices by {args.by}; "
        f"{len(significant)} with a significant difference (McNemar, Holm-adjusted p < {explore.ALPHA}) listed first."
    )
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60, "display.max_rows", 10_000
    ):
        print(explore.format_slices(result).to_string(index=False))
    if args.csv:
        report.write_report(args.csv, report.export_csv(result.table.merge(result.tests, on=["slice", "n"], how="left")))
        print(f"slices: {args.csv}")
    write_html(args, explore.report_sections(slices=result))
    return 0


def add_label_errors_args(sub) -> None:
    """Register label-errors."""
    from core.cli import SEED, number

    p = sub.add_parser("label-errors", help="rows whose label looks wrong (cleanlab on cross-validated logreg probabilities)")
    p.add_argument("source", metavar="DATASET", help="sample name, file, or Hugging Face dataset name")
    p.add_argument("--text-col", default=None)
    p.add_argument("--label-col", default=None)
    p.add_argument("--splits", nargs="+", default=None, metavar="SPLIT", help="splits to look in (default: all)")
    p.add_argument("--top", type=number(int, 1, 1_000_000), default=20, help="rows to print (default 20)")
    p.add_argument("--out", default=None, help="write the ranked suspects (all of them, or --top) to this CSV file")
    p.add_argument(
        "--encoder", default=None, help="encoder whose embeddings feed the logistic regression (default: the bundled one)"
    )
    p.add_argument("--seed", type=SEED, default=0, help="fold seed (default 0)")
    p.set_defaults(func=cmd_label_errors)


def cmd_label_errors(args) -> int:
    """Print the top suspected label errors and a count per split; optionally write them to CSV."""
    import pandas as pd

    from core import data, explore
    from core.comparison import report

    ds = data.load(args.source, args.text_col, args.label_col)
    issues = explore.label_issues(ds, args.splits, args.encoder, seed=args.seed)
    per_split = issues["split"].value_counts()
    splits = args.splits or ds.split_names()
    print(
        f"{len(issues)} rows look mislabelled: " + ", ".join(f"{s} {per_split.get(s, 0)} of {len(ds.splits[s])}" for s in splits)
    )
    top = issues.head(args.top)
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.max_rows", 10_000):
        print(top.to_string(index=False) if len(top) else "none")
    if args.out:
        report.write_report(args.out, report.export_csv(top))
        print(f"rows: {args.out}")
    return 0


def add_robustness_args(sub) -> None:
    """Register robustness."""
    from core.cli import SEED, number
    from core.explore import PERTURBATIONS

    p = sub.add_parser("robustness", help="share of each run's predictions that stay the same on perturbed evaluation texts")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (or run names) on one evaluation split")
    p.add_argument(
        "--perturbations",
        nargs="+",
        default=list(PERTURBATIONS),
        metavar="KIND",
        help=f"any of: {', '.join(PERTURBATIONS)} (quote 'irrelevant sentence'; default all)",
    )
    p.add_argument(
        "--max-examples",
        type=number(int, 1),
        default=None,
        help="a seeded random sample of the evaluation rows (prompt runs are slow)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed of the sample and the perturbations (default 0)")
    p.add_argument("--csv", default=None, help="also write the table to this CSV file")
    p.add_argument("--html", default=None, help="write the comparison's HTML report with this table in it (two or more runs)")
    p.set_defaults(func=cmd_robustness)


def cmd_robustness(args) -> int:
    """Re-predict every run on each perturbation of the (sampled) evaluation rows and print the invariance table."""
    import pandas as pd

    from core import explore
    from core.comparison import report
    from core.comparison.evaluate import run_names

    unknown = [k for k in args.perturbations if k not in explore.PERTURBATIONS]
    if unknown:
        raise UserError(f"Perturbations are {', '.join(explore.PERTURBATIONS)}; '{unknown[0]}' is none of these.")
    joined, _, labels = explore.load_joined(args.runs)
    rows = (
        joined.sample(args.max_examples, random_state=args.seed).sort_index()
        if args.max_examples and args.max_examples < len(joined)
        else joined
    )
    predictors = dict(zip(run_names(joined), (explore.run_predictor(p) for p in args.runs), strict=True))
    table = explore.robustness(predictors, rows, args.perturbations, args.seed, sentiment=explore.is_sentiment(labels))
    print(
        f"{len(rows)} of {len(joined)} evaluation examples, {len(args.perturbations)} perturbation(s); "
        "unchanged predictions: share of the perturbed texts whose prediction stayed the same."
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 10_000):
        print(explore.format_robustness(table).to_string(index=False))
    if args.csv:
        report.write_report(args.csv, report.export_csv(table))
        print(f"robustness: {args.csv}")
    write_html(args, explore.report_sections(robustness_table=table))
    return 0


def write_html(args, sections) -> None:
    """--html: the comparison report of args.runs with the explorer's sections appended."""
    if not args.html:
        return
    from core.comparison import evaluate, report

    if len(args.runs) < 2:
        raise UserError("The HTML report compares two or more runs; name another run or leave out --html.")
    report.write_report(args.html, report.build_report(evaluate.compare_runs(args.runs), sections=sections))
    print(f"report: {args.html}")
