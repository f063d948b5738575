"""CLI of `python -m core predict RUN FILE --out PRED.csv|.jsonl|.parquet`: a finished run labels an unlabelled file.

With --time-col the label shares per day (or week) are counted, and with --alert-label/--alert-threshold the periods
where that label's share surges are printed (core.predict.flag_surges). With --job NAME (how the Apply page starts it)
progress and the summary go into the run folder NAME as a background job's status."""

from __future__ import annotations

import argparse
import sys

from core.errors import UserError


def add_cli_args(sub) -> None:
    """Register the predict subcommand."""
    from core.cli import number

    p = sub.add_parser(
        "predict",
        help="label an unlabelled file with a finished run (label and every class probability per row)",
        description="Label every text of FILE with RUN; writes the input's columns, row, label, confidence and "
        "prob_<label> per row. Empty texts are skipped and counted.",
    )
    p.add_argument("run", nargs="?", help="a finished run: its name or folder")
    p.add_argument("file", nargs="?", help="CSV, TSV, JSONL or Parquet file to label")
    p.add_argument(
        "--out", default=None, help="where to write: PRED.csv, PRED.jsonl or PRED.parquet (replaced only when complete)"
    )
    p.add_argument("--text-col", default=None, help="text column (detected when unambiguous)")
    p.add_argument("--time-col", default=None, help="date/time column: count the label shares per day (or week, over 90 days)")
    p.add_argument("--alert-label", default=None, help="with --time-col: flag periods where this label's share surges")
    p.add_argument(
        "--alert-threshold",
        type=number(float, 0, 100),
        default=10.0,
        help="percentage points above the mean share of the 7 periods before it (default 10)",
    )
    p.add_argument(
        "--batch-rows", type=number(int, 1, 1_000_000), default=None, help="rows read and scored at a time (default 4096)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)  # the run folder of a job started by the Apply page
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    """Check everything that can be checked first, then stream the file through the run into --out."""
    from core import distributed, jobs, predict, progress, runs

    if not args.run or not args.file:
        raise UserError("Give a run and a file to label: python -m core predict RUN FILE --out PRED.csv.")
    if not args.out:
        raise UserError("Give --out PRED.csv, PRED.jsonl or PRED.parquet for the predictions.")
    if args.alert_label and not args.time_col:
        raise UserError("--alert-label needs --time-col, the column that dates each row.")
    folder = runs.RunDir(runs.resolve_out(args.job)) if args.job else None
    if distributed.world_size() > 1:
        distributed.join_process_group()
    with jobs.run_job(folder, "predict") as job:  # a cancel stops the file between chunks; its temp file is removed
        predictor = predict.load_predictor(args.run, args.device)
        if args.alert_label and args.alert_label not in predictor.label_names:
            raise UserError(
                f"--alert-label '{args.alert_label}' is not one of the run's labels: {', '.join(predictor.label_names)}."
            )
        if folder is not None and job.main:
            settings = {
                "run": predictor.name,
                "file": str(args.file),
                "out": str(args.out),
                "text_col": args.text_col,
                "time_col": args.time_col,
                "alert_label": args.alert_label,
                "alert_threshold": args.alert_threshold,
            }
            job.create(runs.RunRecord("predict", labels=predictor.label_names, command=runs.command_line(args.argv)), settings)
            job.start()
        with progress.Reporter(folder if job.main else None, f"predict {predictor.name}", unit="row") as report:
            summary = predict.predict_file(
                predictor,
                args.file,
                args.out if job.main else None,
                args.text_col,
                args.time_col,
                args.batch_rows or predict.CHUNK_ROWS,
                report if job.main else None,
            )
        if not job.main:
            return 0
        finish(args, predictor, summary, folder)
    return 0


def finish(args, predictor, summary, folder) -> None:
    """Print the summary (label shares, alerts); with --job, write shares.csv and metrics.json and mark the job succeeded."""
    from core import predict, runs

    print(
        f"{predictor.name}: labelled {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s) "
        f"-> {args.out}"
    )
    if summary.skipped:
        print(
            f"note: skipped {summary.skipped:,} rows with empty text (first: rows {', '.join(map(str, summary.skipped_rows))}; "
            "rows count from 0 after the header)."
        )
    shares = ", ".join(f"{lab} {n / max(summary.rows, 1):.1%}" for lab, n in summary.label_counts.items())
    print(f"labels: {shares}")
    record = summary.to_dict()
    if args.time_col:
        if summary.bad_times:
            print(
                f"note: {summary.bad_times:,} rows have no readable time in '{args.time_col}' "
                "and are left out of the shares over time."
            )
        period = predict.choose_period(summary.daily)
        share = predict.label_share(summary.daily, predictor.label_names, period)
        record["period"] = period
        if folder is not None:
            share.to_csv(folder.path / "shares.csv", index=False)
        if args.alert_label:
            flags = predict.flag_surges(share, args.alert_label, args.alert_threshold)
            flagged = flags[flags["flagged"]]
            record["alerts"] = [str(p.date()) for p in flagged["period"]]
            what = "day" if period == "D" else "week"
            if flagged.empty:
                print(
                    f"alert: no {what} where the share of {args.alert_label} rose more than {args.alert_threshold:g} points "
                    f"above its trailing {predict.ALERT_WINDOW}-{what} mean."
                )
            for _, r in flagged.iterrows():
                print(
                    f"alert: {what} of {r['period'].date()}: {args.alert_label} {r['share']:.1%} of {int(r['total'])} rows, "
                    f"{r['jump']:+.1f} points above the trailing mean {r['trailing_mean']:.1%}"
                )
    if folder is not None:
        folder.write("metrics.json", {"peak_memory_mb": runs.peak_memory_mb(), **record})
        folder.set_status("succeeded", progress=1.0)
    print(f"peak memory: {runs.peak_memory_mb()} MB", file=sys.stderr)
