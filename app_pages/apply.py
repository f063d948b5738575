"""Apply page: label an unlabelled file with a finished run as a background job (`python -m core predict`), then the label
share over time, the days where a label surges, and the labelled file to download."""

import io

import pandas as pd
import streamlit as st

from core import charts, data, predict
from core.runs import RunDir, runs_root
from ui import jobs as job_watcher
from ui import state
from ui.sidebar import upload_limit_mb

st.title("Apply")
st.caption(
    "Label new, unlabelled data with a finished run: upload a file, pick the run, and get every row's label and class "
    "probabilities. With a date column, see each label's share over time and the days where one surges."
)

root = runs_root()
TIME_NAMES = ("date", "time", "timestamp", "datetime", "published", "created", "created_at", "day")


@st.cache_data(show_spinner="Reading file…", max_entries=2)
def _columns(raw: bytes, filename: str) -> tuple[list[str], int]:
    frame = data.read_table(raw, filename)
    return [str(c) for c in frame.columns], len(frame)


try:
    finished = predict.finished_runs(root)
except Exception as exc:
    state.show_error(exc)
    st.stop()

if finished.empty:
    st.info("No finished run yet: start one on the Prompting or Fine-tune page; any run that succeeded can label new data.")
else:
    upload = st.file_uploader(
        "Unlabelled file (CSV, TSV, JSONL or Parquet)",
        type=["csv", "tsv", "jsonl", "parquet"],
        key="apply_upload",
        max_upload_size=upload_limit_mb(),
    )
    described = {
        row["name"]: f"{row['name']} · {row['kind']} · {row['method'] or ''} · macro-F1 "
        f"{'-' if pd.isna(row['macro_f1']) else format(row['macro_f1'], '.3f')}"
        for _, row in finished.iterrows()
    }
    run_name = st.selectbox(
        "Run",
        list(described),
        format_func=described.get,
        key="apply_run",
        help="Every run that succeeded, newest first; Compare says which one wins.",
    )
    if upload is not None:
        try:
            columns, n_rows = _columns(upload.getvalue(), upload.name)
            try:
                detected = data.detect_column(columns, data.TEXT_COLUMNS, "text", None)
            except Exception:
                detected = columns[0]
            c1, c2 = st.columns(2)
            text_col = c1.selectbox("Text column", columns, index=columns.index(detected), key="apply_text_col")
            times = ["(none)", *columns]
            guess = next((c for c in columns if c.lower() in TIME_NAMES), "(none)")
            time_col = c2.selectbox("Date/time column (optional)", times, index=times.index(guess), key="apply_time_col")
            st.caption(f"{n_rows:,} rows; empty texts are skipped and counted.")
            if st.button("Predict", type="primary", key="apply_start"):
                job = predict.start_job(
                    upload.getvalue(), upload.name, run_name, text_col, None if time_col == "(none)" else time_col, root
                )
                job_watcher.remember("predict", [job.name])
        except Exception as exc:
            state.show_error(exc)


def show_result(run: RunDir, status: dict) -> None:
    """A finished predict job: counts, the label share over time with the surge rule, a preview and the download."""
    if status.get("state") != "succeeded":
        return
    metrics, config = run.metrics or {}, run.config
    labels = [str(lab) for lab in config.get("labels") or []]
    st.caption(
        state.plain(
            f"{config.get('run', '?')} labelled {metrics.get('rows', 0):,} rows "
            f"({metrics.get('rows_per_second', 0):,.0f} rows/s); {metrics.get('skipped_empty', 0):,} empty texts skipped."
        )
    )
    counts = metrics.get("label_counts") or {}
    if counts:
        st.dataframe(pd.DataFrame({"label": list(counts), "rows": list(counts.values())}), hide_index=True)
    shares_path = run.path / "shares.csv"
    if shares_path.exists() and labels:
        share = pd.read_csv(shares_path, parse_dates=["period"], dtype={"label": str})
        period = metrics.get("period", "D")
        c1, c2 = st.columns(2)
        alert_label = c1.selectbox("Alert on label", labels, key=f"apply_alert_label_{run.name}")
        threshold = c2.number_input(
            "Threshold (percentage points above the trailing mean)", 1.0, 100.0, 10.0, 1.0, key=f"apply_threshold_{run.name}"
        )
        flags = predict.flag_surges(share, alert_label, threshold)
        st.altair_chart(charts.label_share_chart(share, flags, period), width="stretch")
        unit = "day" if period == "D" else "week"
        st.caption(
            f"A {unit} is flagged when its share of the label is more than the threshold above the mean share of the "
            f"{predict.ALERT_WINDOW} {unit}s before it, and it has at least {predict.ALERT_MIN_ROWS} rows."
        )
        flagged = flags[flags["flagged"]]
        if flagged.empty:
            st.success(state.plain(f"No {unit} where the share of {alert_label} surged by more than {threshold:g} points."))
        else:
            st.warning(
                state.plain(
                    f"{len(flagged)} {unit}(s) where the share of {alert_label} surged by more than {threshold:g} points."
                )
            )
            st.dataframe(
                flagged.assign(
                    share=flagged["share"].round(3),
                    trailing_mean=flagged["trailing_mean"].round(3),
                    jump=flagged["jump"].round(1),
                ).drop(columns="flagged"),
                hide_index=True,
            )
    if metrics.get("bad_times"):
        st.caption(f"{metrics['bad_times']:,} rows have no readable date and are left out of the chart.")
    out = run.path / predict.JOB_OUTPUT
    if out.exists():
        st.dataframe(
            pd.read_csv(out, nrows=50, dtype=str, keep_default_na=False), hide_index=True
        )  # data: a table, never Markdown
        with open(out, "rb") as f:
            st.download_button(
                "Download the labelled file (CSV)",
                io.BytesIO(f.read()),
                file_name=f"{run.name}.csv",
                mime="text/csv",
                key=f"apply_download_{run.name}",
            )


job_watcher.panel("predict", root, None, details=show_result)
if not job_watcher.find("predict", root):
    done = sorted(
        (p for p in root.glob("predict-*") if p.is_dir() and RunDir(p).config.get("kind") == "predict"),
        key=lambda p: RunDir(p).status.get("created", 0),
        reverse=True,
    )
    if done:
        st.subheader("Earlier predictions")
        chosen = st.selectbox("Job", [p.name for p in done], key="apply_past")
        run = RunDir(root / chosen)
        job_watcher.final_sentence(run.status)
        show_result(run, run.status)
