"""Fine-tune page: pick a model and a method, start a background job, watch its curves, cancel it."""

import pandas as pd
import streamlit as st

from core import charts, charts_search, jobs, models
from core import search as search_module
from core.comparison import verdict
from core.errors import UserError
from core.runs import RunDir, new_run_name, read_json, resolve_out, runs_root
from core.training import finetune
from ui import forms, state
from ui import jobs as job_watcher

st.title("Fine-tune")
st.caption("Train a classifier on the loaded dataset in a background job; it keeps running if you close or reload the page.")
ds = state.require_dataset()
root = runs_root()


@st.cache_data(show_spinner="Counting parameters…", max_entries=32)
def parameter_counts(
    model: str,
    method: str,
    lora_r: int,
    lora_alpha: float,
    lora_targets: tuple[str, ...],
    n_labels: int,
    pooling: str = "auto",
    adapter_reduction: int = 16,
    virtual_tokens: int = 20,
) -> tuple[int, int]:
    """(trainable, total) parameters for a model and method (loads the model once per combination)."""
    config = finetune.FinetuneConfig(
        model=model,
        method=method,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_target_modules=list(lora_targets),
        pooling=pooling,
        adapter_reduction=adapter_reduction,
        virtual_tokens=virtual_tokens,
    )
    counts = finetune.parameter_counts(config, n_labels)
    return counts.trainable, counts.total


def run_details(run: RunDir, status: dict) -> None:
    """What the job watcher (ui.jobs) shows of a fine-tuning run besides its progress: parameters, scores, curves."""
    if status.get("state") in jobs.ACTIVE_STATES and status.get("trainable_params"):
        st.caption(f"training {status['trainable_params']:,} of {status['total_params']:,} parameters")
    elif status.get("state") == "succeeded":
        m = run.metrics or {}
        cols = st.columns(4)
        cols[0].metric("accuracy", f"{m.get('accuracy', 0):.3f}")
        cols[1].metric("macro-F1", f"{m.get('macro_f1', 0):.3f}")
        cols[2].metric("training time", f"{m.get('train_seconds', 0):.0f} s")
        cols[3].metric("trainable parameters", f"{m.get('trainable_params', 0):,}")
        for warning in verdict.run_warnings(run.name, run.config, m):
            st.warning(state.plain(warning))
        st.caption(state.plain(f"Stopped by: {m.get('stopped_by', '?')}. Compare it with other runs on the Compare page."))
    history = run.history()
    if not history.empty:
        st.altair_chart(charts.training_curves(history), width="content")
    elif status.get("state") in jobs.ACTIVE_STATES:
        st.caption("The curves appear after the first logged steps.")


left, right = st.columns([1, 1])
with left:
    model = state.model_choice("Model", "encoder", key="ft_model")
    try:
        role = models.describe(model).role if model else "encoder"
    except UserError:
        role = "encoder"  # an unknown model is explained below, where its parameters are counted
    fitting = [m for m in finetune.METHODS if finetune.method_fits(m, role)]
    method = st.radio(
        "Method", fitting, horizontal=True, key=state.scoped("ft_method"), captions=[finetune.METHODS[m].caption for m in fitting]
    )
    if method is None or method not in fitting:  # a method kept from another model that does not fit this one
        method = fitting[0]
    eval_splits = [s for s in ds.split_names() if s != "train"] or ds.split_names()
    eval_split = st.selectbox(
        "Evaluate on split",
        eval_splits,
        index=eval_splits.index("test") if "test" in eval_splits else 0,
        key=state.scoped("ft_eval_split"),
    )
    # prompt-tuning and lora-lm learn to answer a word per label, as a prompt is scored on one
    label_words = forms.label_words(ds.label_names, state.scoped("ft_words")) if method in finetune.DECODER_ONLY else {}
F = finetune.FinetuneConfig  # defaults, limits, choices and help of every setting (the CLI flags' source too)
with right:
    frozen = finetune.METHODS[method].frozen  # no gradient training: epochs and learning rate do not apply
    epochs = forms.number(F, "epochs", "Epochs", step=0.5, key=state.scoped("ft_epochs"), disabled=frozen)
    lr = forms.number(
        F,
        "lr",
        "Learning rate",
        value=finetune.METHODS[method].default_lr or 1e-4,
        format="%.0e",
        key=state.scoped(f"ft_lr_{method}"),
        disabled=frozen,
        help=None,
    )
    batch_size = forms.number(F, "batch_size", "Batch size", key=state.scoped("ft_batch"))
    max_seconds = forms.number(
        F,
        "max_train_seconds",
        "Time budget (s, 0 = none)",
        value=finetune.PAGE_TIME_BUDGET_SECONDS,
        step=30.0,
        key=state.scoped("ft_seconds"),
        help="Training stops when this many seconds have passed; a run stopped so "
        "is marked 'time budget' everywhere it is shown.",
    )
    max_examples = forms.number(F, "max_train_examples", "Max training rows (0 = all)", step=100, key=state.scoped("ft_examples"))
with st.expander("More settings"):
    c1, c2, c3 = st.columns(3)
    weight_decay = forms.number(F, "weight_decay", "Weight decay", c1, key=state.scoped("ft_wd"))
    warmup = forms.number(F, "warmup_ratio", "Warm-up ratio", c1, key=state.scoped("ft_warmup"))
    max_length = forms.number(F, "max_length", "Max tokens per text", c1, key=state.scoped("ft_maxlen"))
    eval_every = forms.text(F, "eval_strategy", "Evaluate every ('epoch' or N steps)", c2, key=state.scoped("ft_eval_every"))
    patience = forms.number(
        F, "early_stopping_patience", "Early-stopping patience (0 = off)", c2, key=state.scoped("ft_patience")
    )
    seed = forms.number(F, "seed", "Seed", c2, key=state.scoped("ft_seed"))
    pooling = forms.choice(F, "pooling", "Classify from", c2, key=state.scoped("ft_pooling"))
    lora_r = forms.number(F, "lora_r", "LoRA rank", c3, key=state.scoped("ft_lora_r"), disabled=method != "lora")
    lora_alpha = forms.number(F, "lora_alpha", "LoRA alpha", c3, key=state.scoped("ft_lora_alpha"), disabled=method != "lora")
    lora_dropout = forms.number(
        F, "lora_dropout", "LoRA dropout", c3, key=state.scoped("ft_lora_dropout"), disabled=method != "lora"
    )
    lora_targets = forms.text(
        F,
        "lora_target_modules",
        "LoRA target modules",
        c3,
        value="",
        placeholder="default for the model, e.g. query value",
        key=state.scoped("ft_lora_targets"),
        disabled=method != "lora",
    ).split()
    adapter_reduction = forms.number(
        F,
        "adapter_reduction",
        "Adapter reduction factor",
        c3,
        key=state.scoped("ft_adapter_reduction"),
        disabled=method != "adapter",
    )
    virtual_tokens = forms.number(
        F, "virtual_tokens", "Soft-prompt tokens", c3, key=state.scoped("ft_virtual_tokens"), disabled=method != "prompt-tuning"
    )
    run_name = st.text_input("Run name (empty: automatic)", "", key=state.scoped("ft_run_name"))
with st.expander("Advanced"):
    c1, c2, c3 = st.columns(3)
    dev = forms.choice(F, "dev", "Dev set (in-training evaluation)", c1, key=state.scoped("ft_dev"))
    precision = forms.choice(F, "precision", "Precision", c2, key=state.scoped("ft_precision"))
    device = forms.text(F, "device", "Device", c3, key=state.scoped("ft_device"))
    report_to = forms.choice(F, "report_to", "Also log to", c1, key=state.scoped("ft_report_to"))

if model:
    try:
        trainable, total = parameter_counts(
            model,
            method,
            int(lora_r),
            float(lora_alpha),
            tuple(lora_targets),
            len(ds.label_names),
            pooling,
            int(adapter_reduction),
            int(virtual_tokens),
        )
        st.caption(f"**{trainable:,}** of {total:,} parameters will be trained ({100 * trainable / total:.2f}%).")
    except Exception as exc:  # a model that cannot load is explained, not thrown
        state.show_error(exc)

if st.button("Start fine-tuning", type="primary", key=state.scoped("ft_start"), disabled=not model):
    try:
        config = finetune.FinetuneConfig(
            model=model,
            method=method,
            epochs=epochs,
            lr=lr,
            batch_size=int(batch_size),
            eval_strategy=eval_every,
            weight_decay=weight_decay,
            warmup_ratio=warmup,
            max_length=int(max_length),
            early_stopping_patience=int(patience),
            max_train_examples=int(max_examples),
            max_train_seconds=float(max_seconds),
            dev=dev,
            lora_r=int(lora_r),
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_target_modules=lora_targets,
            virtual_tokens=int(virtual_tokens),
            adapter_reduction=int(adapter_reduction),
            label_words=label_words,
            pooling=pooling,
            seed=int(seed),
            precision=precision,
            device=device,
            report_to=report_to,
        )
        name = run_name.strip() or new_run_name("finetune", f"{method}-{model.rstrip('/').split('/')[-1]}")
        forms.start_job("finetune", config, name, root, **forms.dataset_settings(ds, eval_split))
        job_watcher.remember("finetune", [name])
        st.toast(state.plain(f"Started {name}"))
    except UserError as exc:
        state.show_error(exc)

job_watcher.panel("finetune", root, state.current_scope().fingerprints.values(), run_details)


# ---- Search: tune a method's settings (core/search.py) -------------------------------------------------------
st.divider()
st.header("Search")
st.caption(
    "Let Optuna tune a method: every trial trains on 80% of the training rows and is scored on the other 20% "
    "(stratified, seeded; never the evaluation split), the median pruner stops trials whose dev curve falls behind, "
    "and the best settings are re-trained on all training rows as the search's run. Trials are runs NAME.trialK."
)
searchable = [m for m in fitting if finetune.SEARCH_SPACE.get(m)] + ["prompt"]
s1, s2, s3 = st.columns(3)
search_method = s1.selectbox(
    "Method to tune",
    searchable,
    key=state.scoped("search_method"),
    help="prompt tunes the wording, calibration, shots and demonstration choice on the bundled decoder",
)
search_trials = s2.number_input("Trials", 1, 500, 20, key=state.scoped("search_trials"))
search_budget = s3.number_input(
    "Budget (s of trials)",
    10,
    86400,
    1200,
    step=60,
    key=state.scoped("search_budget"),
    help="no trial starts once the trials have taken this many seconds",
)
space = search_module.space_for(search_method, {})
st.caption(
    "Space: "
    + "; ".join(
        f"{k} "
        + (", ".join(map(str, v)) if isinstance(v, list) else f"{v['low']:g}–{v['high']:g}{' (log)' if v.get('log') else ''}")
        for k, v in space.items()
    )
)
search_name = s1.text_input("Search name (empty: automatic)", "", key=state.scoped("search_name"))
if st.button("Start search", key=state.scoped("search_start"), disabled=not model):
    try:
        name = search_name.strip() or new_run_name("search", search_method)
        settings = {
            "method": search_method,
            "trials": int(search_trials),
            "budget": float(search_budget),
            "seed": int(seed),
            "max_train_examples": int(max_examples),
            **forms.dataset_settings(ds, eval_split),
        }
        if search_method != "prompt":
            settings["model"] = model
        jobs.launch(["search", "--out", name], resolve_out(name, root), settings=settings)
        st.session_state[state.scoped("search_shown")] = name
        st.toast(state.plain(f"Started search {name}"))
    except UserError as exc:
        state.show_error(exc)

searches = (
    sorted((p for p in root.iterdir() if (p / "search.json").is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    if root.is_dir()
    else []
)
if searches:
    names = [p.name for p in searches]
    shown = st.session_state.get(state.scoped("search_shown"))
    chosen = st.selectbox("Search", names, index=names.index(shown) if shown in names else 0, key=state.scoped("search_pick"))
    folder = RunDir(root / chosen)
    status = jobs.refresh(folder)
    info = read_json(folder.path / "search.json") or {}
    st.caption(
        state.plain(
            f"{info.get('method')} on {info.get('train')} · {status.get('state')} · "
            f"{status.get('done', 0)} of {status.get('total', info.get('trials'))} trials finished"
            + (f" · {status['error']}" if status.get("error") else "")
        )
    )
    if status.get("state") in jobs.ACTIVE_STATES and st.button("Cancel search", key=state.scoped("search_cancel")):
        jobs.cancel(folder)
    if status.get("state") in ("failed", "cancelled") and not folder.metrics:  # the study keeps every finished trial
        how = (
            f"`python -m core search --config {folder.path / jobs.JOB_SETTINGS} --out {chosen}`"
            if (folder.path / jobs.JOB_SETTINGS).is_file()
            else "the command that started it"
        )
        st.caption(f"To resume this search where it stopped, run {how} again.")
    if (folder.path / "trials.csv").is_file():
        trials = pd.read_csv(folder.path / "trials.csv")
        if folder.metrics and "search_trials" in folder.metrics:
            m = folder.metrics
            st.success(
                f"Result run {chosen}: macro-F1 {m['macro_f1']:.3f} on the evaluation split, with the settings of trial "
                f"{m['search_best_trial']} (dev macro-F1 {m['search_dev_macro_f1']:.3f}); {m['search_trials']} trials "
                f"took {m['search_seconds']:,.0f} s. Compare it with other runs on the Compare page."
            )
        st.dataframe(trials, hide_index=True, width="stretch")
        st.altair_chart(charts_search.trial_history(trials), width="stretch")
        importance = read_json(folder.path / "importance.json") or {}
        if importance:
            st.altair_chart(charts_search.importance_chart(importance), width="stretch")
        else:
            st.caption("Setting importances appear once two trials have completed.")
        st.altair_chart(charts_search.parallel_coordinates(trials), width="stretch")
