"""Continual page: fine-tune on a sequence of tasks in a background job and see what each step forgets."""

import streamlit as st

from core import charts_continual, data
from core.errors import UserError
from core.runs import RunDir, RunRegistry, new_run_name, runs_root
from core.training import continual
from ui import forms, state
from ui import jobs as job_watcher

st.title("Continual")
st.caption(
    "Fine-tune one encoder on task after task (reviews today, financial news next quarter) and measure what it forgets: "
    "after every step the model is scored on every task."
)
root = runs_root()
CURRENT = "(the dataset loaded in the sidebar)"
C = continual.ContinualConfig  # defaults, limits and help of every setting (the CLI flags' source too)


def task_settings(names: list[str]) -> dict:
    """train/eval of the chosen tasks, in order (a sample's train and test splits; the sidebar dataset saved as files)."""
    trains, evals = [], []
    for name in names:
        if name == CURRENT:
            ds = state.current_dataset()
            files = forms.dataset_settings(ds, "test" if "test" in ds.splits else ds.split_names()[-1])
            trains.append(files["train"])
            evals.append(files["eval"])
        else:
            trains.append(f"{name}:train")
            evals.append(f"{name}:test")
    return {"train": trains, "eval": evals}


def show_results(run: RunDir) -> None:
    """Transfer metrics, the accuracy heatmap and the per-task lines of one continual run (as far as it got)."""
    summary = continual.load_summary(run.path)
    if not summary or not summary.get("matrix"):
        st.caption("The accuracy matrix appears after the first task is trained.")
        return
    st.caption(state.plain(f"{summary['strategy']}: {summary['label_space']}."))  # label names are data
    if summary.get("average_accuracy") is not None:
        cols = st.columns(3)
        cols[0].metric(
            "average accuracy", f"{summary['average_accuracy']:.3f}", help="mean accuracy over all tasks after the last step"
        )
        cols[1].metric(
            "backward transfer (BWT)",
            f"{summary['bwt']:+.3f}",
            help="mean over earlier tasks of (final accuracy − accuracy just after training on it); negative = forgetting",
        )
        cols[2].metric(
            "forward transfer (FWT)",
            f"{summary['fwt']:+.3f}",
            help="mean over later tasks of (accuracy just before training on it − accuracy of the untrained model)",
        )
    frame = continual.matrix_frame(summary)
    left, right = st.columns(2)
    left.altair_chart(charts_continual.accuracy_heatmap(frame), width="content")
    right.altair_chart(charts_continual.task_lines(frame), width="content")
    steps = [continual.step_run_name(run.name, k) for k in range(1, len(summary["matrix"]) + 1)]
    st.caption("Every step is also a run of its own, scored on all tasks' evaluation rows; pick them on the Compare page:")
    st.code("\n".join(steps), language=None)


samples = data.list_samples()
ds = state.current_dataset()
options = samples + ([CURRENT] if ds is not None and ds.source not in samples else [])
left, right = st.columns([1, 1])
with left:
    chosen = st.multiselect(
        "Tasks, in training order",
        options,
        default=[t for t in continual.DEFAULT_TRAIN if t in options],
        key="cl_tasks",
        help="Each task trains on its train split and is scored on its test split.",
    )
    strategy = st.radio(
        "Strategy",
        continual.STRATEGIES,
        horizontal=True,
        key="cl_strategy",
        captions=[continual.STRATEGY_CAPTIONS[s] for s in continual.STRATEGIES],
    )
    replay_share = st.slider(
        "Replay share of earlier tasks' rows", 0.05, 1.0, C.replay_share, 0.05, key="cl_replay", disabled=strategy != "replay"
    )
    ewc_lambda = forms.number(C, "ewc_lambda", "EWC strength (lambda)", key="cl_ewc", disabled=strategy != "ewc")
with right:
    model = state.model_choice("Model", "encoder", key="cl_model")
    epochs = forms.number(C, "epochs", "Epochs per task", step=0.5, key="cl_epochs")
    lr = forms.number(
        C, "lr", "Learning rate", value=continual.DEFAULT_LR[strategy], format="%.0e", key=f"cl_lr_{strategy}", help=None
    )
    max_examples = forms.number(C, "max_train_examples", "Max training rows per task (0 = all)", step=100, key="cl_examples")
    seed = forms.number(C, "seed", "Seed", key="cl_seed")
    run_name = st.text_input("Run name (empty: automatic)", "", key="cl_run_name")
with st.expander("Advanced"):
    c1, c2, c3 = st.columns(3)
    batch_size = forms.number(C, "batch_size", "Batch size", c1, key="cl_batch")
    max_length = forms.number(C, "max_length", "Max tokens per text", c2, key="cl_maxlen")
    device = forms.text(C, "device", "Device", c3, key="cl_device")
    lora_r = forms.number(C, "lora_r", "LoRA rank", c1, key="cl_lora_r", disabled=strategy != "lora-per-task")
    lora_alpha = forms.number(C, "lora_alpha", "LoRA alpha", c2, key="cl_lora_alpha", disabled=strategy != "lora-per-task")

if st.button("Start continual run", type="primary", key="cl_start", disabled=not model):
    try:
        if len(chosen) < 2:
            raise UserError("Choose two or more tasks: continual learning trains on one after the other.")
        config = C(
            strategy=strategy,
            model=model,
            epochs=epochs,
            lr=lr,
            replay_share=replay_share,
            ewc_lambda=ewc_lambda,
            max_train_examples=int(max_examples),
            seed=int(seed),
            batch_size=int(batch_size),
            max_length=int(max_length),
            lora_r=int(lora_r),
            lora_alpha=float(lora_alpha),
            device=device,
        )
        name = run_name.strip() or new_run_name("continual", strategy)
        forms.start_job("continual", config, name, root, **task_settings(chosen))
        job_watcher.remember("continual", [name])
        st.toast(state.plain(f"Started {name}"))
    except UserError as exc:
        state.show_error(exc)

job_watcher.panel("continual", root, details=lambda run, status: show_results(run))  # any dataset's: tasks are samples

st.divider()
st.subheader("Strategies side by side")
finished = RunRegistry().list(kind="continual", state="succeeded")
if finished.empty:
    st.caption("Finished continual runs appear here; run the same tasks with several strategies to compare them.")
else:
    picked = st.selectbox(
        "Sequence of",
        finished["name"].tolist(),
        key="cl_compare_run",
        help="Runs on the same tasks (same training and evaluation rows, same order) are shown together.",
    )
    table = continual.strategies_frame(finished["path"].tolist())
    if not table.empty and picked in set(table["run"]):
        key = table.loc[table["run"] == picked, "sequence_key"].iloc[0]
        same = table[table["sequence_key"] == key].drop(columns=["sequence_key"])
        st.altair_chart(charts_continual.strategies_chart(same), width="content")
        st.dataframe(
            same,
            hide_index=True,
            column_config={
                c: st.column_config.NumberColumn(format="%.3f") for c in same.columns if c not in ("run", "strategy", "sequence")
            },
        )
        with st.expander(f"Accuracy matrix of {picked}"):
            show_results(RunDir(root / picked))
