"""Continual page: fine-tune on a sequence of tasks in a background job and see what each step forgets."""

import streamlit as st

from core import charts_continual, continual, data, jobs
from core.errors import UserError
from core.runs import RunDir, RunRegistry, new_run_name, resolve_out, runs_root
from ui import jobs as job_watcher
from ui import state

st.title("Continual")
st.caption("Fine-tune one encoder on task after task (reviews today, financial news next quarter) and measure what it forgets: "
           "after every step the model is scored on every task.")
root = runs_root()
CURRENT = "(the dataset loaded in the sidebar)"


def task_argv(names: list[str]) -> list[str]:
    """--train/--eval flags for the chosen tasks, in order (a sample's train and test splits; the sidebar dataset saved as files)."""
    trains, evals = [], []
    for name in names:
        if name == CURRENT:
            ds = state.current_dataset()
            argv = state.dataset_argv(ds, "test" if "test" in ds.splits else ds.split_names()[-1])
            trains.append(argv[1])
            evals.append(argv[3])
        else:
            trains.append(f"{name}:train")
            evals.append(f"{name}:test")
    return ["--train", *trains, "--eval", *evals]


def show_results(run: RunDir) -> None:
    """Transfer metrics, the accuracy heatmap and the per-task lines of one continual run (as far as it got)."""
    summary = continual.load_summary(run.path)
    if not summary or not summary.get("matrix"):
        st.caption("The accuracy matrix appears after the first task is trained.")
        return
    st.caption(f"{summary['strategy']}: {summary['label_space']}.")
    if summary.get("average_accuracy") is not None:
        cols = st.columns(3)
        cols[0].metric("average accuracy", f"{summary['average_accuracy']:.3f}", help="mean accuracy over all tasks after the last step")
        cols[1].metric("backward transfer (BWT)", f"{summary['bwt']:+.3f}",
                       help="mean over earlier tasks of (final accuracy − accuracy just after training on it); negative = forgetting")
        cols[2].metric("forward transfer (FWT)", f"{summary['fwt']:+.3f}",
                       help="mean over later tasks of (accuracy just before training on it − accuracy of the untrained model)")
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
    chosen = st.multiselect("Tasks, in training order", options, default=[t for t in continual.DEFAULT_TRAIN if t in options],
                            key="cl_tasks", help="Each task trains on its train split and is scored on its test split.")
    strategy = st.radio("Strategy", continual.STRATEGIES, horizontal=True, key="cl_strategy",
                        captions=["plain sequential fine-tuning", "mix in earlier rows", "one adapter per task", "Fisher penalty"])
    replay_share = st.slider("Replay share of earlier tasks' rows", 0.05, 1.0, continual.ContinualConfig.replay_share, 0.05,
                             key="cl_replay", disabled=strategy != "replay")
    ewc_lambda = st.number_input("EWC strength (lambda)", 0.0, 1e9, continual.ContinualConfig.ewc_lambda, key="cl_ewc",
                                 disabled=strategy != "ewc")
with right:
    model = state.model_choice("Model", "encoder", key="cl_model")
    epochs = st.number_input("Epochs per task", 0.1, 100.0, continual.ContinualConfig.epochs, 0.5, key="cl_epochs")
    lr = st.number_input("Learning rate", 1e-6, 0.5, continual.DEFAULT_LR[strategy], format="%.0e", key=f"cl_lr_{strategy}")
    max_examples = st.number_input("Max training rows per task (0 = all)", 0, 10_000_000, 0, 100, key="cl_examples")
    seed = st.number_input("Seed", 0, 2**31 - 1, 42, key="cl_seed")
    run_name = st.text_input("Run name (empty: automatic)", "", key="cl_run_name")

if st.button("Start continual run", type="primary", key="cl_start", disabled=not model):
    try:
        if len(chosen) < 2:
            raise UserError("Choose two or more tasks: continual learning trains on one after the other.")
        continual.ContinualConfig(strategy=strategy, model=model, epochs=epochs, lr=lr, replay_share=replay_share,
                                  ewc_lambda=ewc_lambda, max_train_examples=int(max_examples), seed=int(seed))
        name = run_name.strip() or new_run_name("continual", strategy)
        argv = ["continual", *task_argv(chosen), "--strategy", strategy, "--model", model, "--epochs", str(epochs), "--lr", str(lr),
                "--replay-share", str(replay_share), "--ewc-lambda", str(ewc_lambda), "--max-train-examples", str(int(max_examples)),
                "--seed", str(int(seed)), "--out", name]
        jobs.launch(argv, resolve_out(name, root))
        job_watcher.remember("continual", [name])
        st.toast(f"Started {name}")
    except UserError as exc:
        state.show_error(exc)

job_watcher.panel("continual", root, details=lambda run, status: show_results(run))  # any dataset's: tasks are samples

st.divider()
st.subheader("Strategies side by side")
finished = RunRegistry().list(kind="continual", state="succeeded")
if finished.empty:
    st.caption("Finished continual runs appear here; run the same tasks with several strategies to compare them.")
else:
    picked = st.selectbox("Sequence of", finished["name"].tolist(), key="cl_compare_run",
                          help="Runs on the same tasks (same training and evaluation rows, same order) are shown together.")
    table = continual.strategies_frame(finished["path"].tolist())
    if not table.empty and picked in set(table["run"]):
        key = table.loc[table["run"] == picked, "sequence_key"].iloc[0]
        same = table[table["sequence_key"] == key].drop(columns=["sequence_key"])
        st.altair_chart(charts_continual.strategies_chart(same), width="content")
        st.dataframe(same, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                            for c in same.columns if c not in ("run", "strategy", "sequence")})
        with st.expander(f"Accuracy matrix of {picked}"):
            show_results(RunDir(root / picked))
