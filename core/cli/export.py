"""CLI of `python -m core export RUN DIR`: a finished run as a folder that standard libraries load (see core/export.py)."""

from __future__ import annotations


def add_cli_args(sub) -> None:
    """Register the export subcommand."""
    p = sub.add_parser(
        "export", help="export a finished run as a standard Hugging Face / SetFit / prompt folder with a model card"
    )
    p.add_argument("run", help="run name (under the runs folder) or run folder")
    p.add_argument("dir", help="folder to write; must be new or empty (or an earlier export, with --force)")
    p.add_argument(
        "--force", action="store_true", help="replace an earlier export in DIR (a folder export did not make is never replaced)"
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    import json

    from core import export

    dest = export.export_run(args.run, args.dir, force=args.force)
    record = json.loads((dest / export.MARKER).read_text(encoding="utf-8"))
    print(f"exported {record['run']} to {dest}: {record['how_to_load']}")
    return 0
