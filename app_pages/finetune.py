"""Fine-tune page: pick a model and a method, start a background job, watch its curves, cancel it."""

import streamlit as st

from core import charts, finetune, jobs, models, verdict
from core.errors import UserError
from core.runs import RunDir, new_run_name, resolve_out, runs_root
from ui import jobs as job_watcher
from ui import state

st.title("Fine-tune")
st.caption("Train a classifier on the loaded dataset in a background job; it keeps running if you close or reload the page.")
ds = state.require_dataset()
root = runs_root()
METHOD_CAPTIONS = {"full": "all weights", "head": "linear probe", "bitfit": "biases + head", "lora": "low-rank adapters",
                   "adapter": "bottleneck adapters (Houlsby)",
                   "logreg": "frozen embeddings + logistic regression (seconds)", "knn": "frozen embeddings + k nearest neighbours",
                   "setfit": "contrastive few-shot (SetFit)", "prompt-tuning": "soft prompt, scored like prompting",
                   "lora-lm": "LoRA on the label word, scored like prompting"}


@st.cache_data(show_spinner="Counting parameters…", max_entries=32)
def parameter_counts(model: str, method: str, lora_r: int, lora_alpha: float, lora_targets: str, n_labels: int,
                     pooling: str = "auto", adapter_reduction: int = 16, virtual_tokens: int = 20) -> tuple[int, int]:
    """(trainable, total) parameters for a model and method (loads the model once per combination)."""
    config = finetune.FinetuneConfig(model=model, method=method, lora_r=lora_r, lora_alpha=lora_alpha, lora_target_modules=lora_targets,
                                     pooling=pooling, adapter_reduction=adapter_reduction, virtual_tokens=virtual_tokens)
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
            st.warning(warning)
        st.caption(f"Stopped by: {m.get('stopped_by', '?')}. Compare it with other runs on the Compare page.")
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
    method = st.radio("Method", fitting, horizontal=True, key=state.scoped("ft_method"), captions=[METHOD_CAPTIONS[m] for m in fitting])
    if method is None or method not in fitting:  # a method kept from another model that does not fit this one
        method = fitting[0]
    eval_splits = [s for s in ds.split_names() if s != "train"] or ds.split_names()
    eval_split = st.selectbox("Evaluate on split", eval_splits, index=eval_splits.index("test") if "test" in eval_splits else 0,
                              key=state.scoped("ft_eval_split"))
with right:
    frozen = method in finetune.FROZEN_METHODS  # no gradient training: epochs and learning rate do not apply
    epochs = st.number_input("Epochs", 0.1, 100.0, 3.0, 0.5, key=state.scoped("ft_epochs"), disabled=frozen)
    lr = st.number_input("Learning rate", 1e-6, 0.5, finetune.DEFAULT_LR.get(method, 1e-4), format="%.0e", key=state.scoped(f"ft_lr_{method}"),
                         disabled=frozen)
    batch_size = st.number_input("Batch size", 1, 512, 16, key=state.scoped("ft_batch"))
    max_seconds = st.number_input("Time budget (s, 0 = none)", 0, 86400, finetune.PAGE_TIME_BUDGET_SECONDS, 30, key=state.scoped("ft_seconds"),
                                  help="Training stops when this many seconds have passed; a run stopped so is marked "
                                       "'time budget' everywhere it is shown.")
    max_examples = st.number_input("Max training rows (0 = all)", 0, 10_000_000, 0, 100, key=state.scoped("ft_examples"))
with st.expander("More settings"):
    c1, c2, c3 = st.columns(3)
    weight_decay = c1.number_input("Weight decay", 0.0, 0.99, 0.01, key=state.scoped("ft_wd"))
    warmup = c1.number_input("Warm-up ratio", 0.0, 0.99, 0.1, key=state.scoped("ft_warmup"))
    max_length = c1.number_input("Max tokens per text", 8, 8192, 128, key=state.scoped("ft_maxlen"))
    eval_every = c2.text_input("Evaluate every ('epoch' or N steps)", "epoch", key=state.scoped("ft_eval_every"))
    patience = c2.number_input("Early-stopping patience (0 = off)", 0, 100, 2, key=state.scoped("ft_patience"))
    seed = c2.number_input("Seed", 0, 2**31 - 1, 42, key=state.scoped("ft_seed"))
    pooling = c2.selectbox("Classify from", finetune.POOLINGS, key=state.scoped("ft_pooling"),
                           help="mean: mean-pooled token states (auto picks it for sentence-transformer encoders such as minilm, "
                                "which were trained that way); cls: the model's own classification head")
    lora_r = c3.number_input("LoRA rank", 1, 256, 8, key=state.scoped("ft_lora_r"), disabled=method != "lora")
    lora_alpha = c3.number_input("LoRA alpha", 1.0, 1024.0, 16.0, key=state.scoped("ft_lora_alpha"), disabled=method != "lora")
    lora_dropout = c3.number_input("LoRA dropout", 0.0, 0.9, 0.1, key=state.scoped("ft_lora_dropout"), disabled=method != "lora")
    lora_targets = c3.text_input("LoRA target modules", "", placeholder="default for the model, e.g. query,value",
                                 key=state.scoped("ft_lora_targets"), disabled=method != "lora")
    adapter_reduction = c3.number_input("Adapter reduction factor", 1, 1024, 16, key=state.scoped("ft_adapter_reduction"),
                                        disabled=method != "adapter", help="hidden size / adapter bottleneck size")
    virtual_tokens = c3.number_input("Soft-prompt tokens", 1, 512, 20, key=state.scoped("ft_virtual_tokens"), disabled=method != "prompt-tuning")
    run_name = st.text_input("Run name (empty: automatic)", "", key=state.scoped("ft_run_name"))

if model:
    try:
        trainable, total = parameter_counts(model, method, int(lora_r), float(lora_alpha), lora_targets, len(ds.label_names), pooling,
                                            int(adapter_reduction), int(virtual_tokens))
        st.caption(f"**{trainable:,}** of {total:,} parameters will be trained ({100 * trainable / total:.2f}%).")
    except Exception as exc:  # a model that cannot load is explained, not thrown
        state.show_error(exc)

if st.button("Start fine-tuning", type="primary", key=state.scoped("ft_start"), disabled=not model):
    try:
        every = eval_every.strip().lower()
        if every != "epoch" and not every.isdigit():
            raise UserError(f"Evaluate every 'epoch' or every N steps (a whole number), not '{eval_every}'.")
        finetune.FinetuneConfig(model=model, method=method, epochs=epochs, lr=lr, batch_size=int(batch_size),
                                eval_strategy="epoch" if every == "epoch" else "steps", eval_steps=int(every) if every.isdigit() else 50,
                                weight_decay=weight_decay, warmup_ratio=warmup, max_length=int(max_length),
                                early_stopping_patience=int(patience), max_train_examples=int(max_examples),
                                max_train_seconds=float(max_seconds), lora_r=int(lora_r), lora_alpha=lora_alpha,
                                lora_dropout=lora_dropout, lora_target_modules=lora_targets, pooling=pooling, adapter_reduction=int(adapter_reduction),
                                virtual_tokens=int(virtual_tokens), seed=int(seed))
        name = run_name.strip() or new_run_name("finetune", f"{method}-{model.rstrip('/').split('/')[-1]}")
        argv = ["finetune", *state.dataset_argv(ds, eval_split), "--model", model, "--method", method, "--epochs", str(epochs),
                "--lr", str(lr), "--batch-size", str(int(batch_size)), "--weight-decay", str(weight_decay),
                "--warmup-ratio", str(warmup), "--eval-every", every, "--patience", str(int(patience)),
                "--max-train-examples", str(int(max_examples)), "--max-train-seconds", str(float(max_seconds)),
                "--max-length", str(int(max_length)), "--lora-r", str(int(lora_r)), "--lora-alpha", str(lora_alpha),
                "--lora-dropout", str(lora_dropout), "--lora-targets", lora_targets, "--pooling", pooling,
                "--adapter-reduction", str(int(adapter_reduction)), "--virtual-tokens", str(int(virtual_tokens)), "--seed", str(int(seed)),
                "--out", name]
        jobs.launch(argv, resolve_out(name, root))
        job_watcher.remember("finetune", [name])
        st.toast(f"Started {name}")
    except UserError as exc:
        state.show_error(exc)

job_watcher.panel("finetune", root, state.current_scope().fingerprints.values(), run_details)
