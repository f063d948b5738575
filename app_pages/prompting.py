"""Prompting: edit the prompt, preview it for any example, run it on the evaluation split as a background job,
then read accuracy, the confusion matrix, per-example probabilities, and a grid over shots, seeds and templates."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core import charts, endpoints, models, prompting, runs
from core.comparison import evaluate, verdict
from core.errors import UserError
from core.settings import whole_numbers
from ui import forms, state
from ui import jobs as job_watcher

P = prompting.PromptConfig  # defaults, choices and help of every setting (the CLI flags' source too)

st.title("Prompting")
st.caption(
    "Classify the evaluation split by asking a small language model. Label words are scored by log-likelihood; "
    "the shared few-shot prefix is computed once and reused for every example."
)
ds = state.require_dataset()
train = ds.splits.get("train")
if train is None:
    st.warning("This dataset has no train split, so only zero-shot prompting is possible.")
    train = ds.splits[ds.split_names()[0]].iloc[:0]
eval_splits = [s for s in ds.split_names() if s != "train"] or ds.split_names()
label_names = ds.label_names

# ---- the prompt ----
left, right = st.columns([3, 2])
with left:
    st.subheader("Prompt")
    instruction = st.text_area(
        "Instruction ({labels} = the label words)", P.instruction, height=68, key=state.scoped("pr_instruction")
    )
    example_template = st.text_area(
        "Demonstration template ({text}, {label})", P.example_template, height=90, key=state.scoped("pr_example")
    )
    query_template = st.text_area(
        "Query template ({text}; the label word is scored right after it)",
        P.query_template,
        height=68,
        key=state.scoped("pr_query"),
    )
    use_chat = st.checkbox("Wrap in the model's chat template", P.use_chat_template, key=state.scoped("pr_chat"))
    auto_template = st.checkbox(
        "Let the run choose the template",
        key=state.scoped("pr_template_auto"),
        help=f"auto: the best of {len(prompting.TEMPLATES)} built-in wordings ({', '.join(prompting.TEMPLATES)}) by "
        "macro-F1 on a small stratified slice of the training data; the wording above is then not used",
    )
    label_words = forms.label_words(label_names, state.scoped("pr_words"), st.container())
with right:
    st.subheader("Settings")
    source = st.radio(
        "Model",
        ["Local model", "Endpoint"],
        horizontal=True,
        key=state.scoped("pr_source"),
        help="Endpoint: any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, a hosted API)",
    )
    endpoint_mode = source == "Endpoint"
    if endpoint_mode:
        e1, e2 = st.columns(2)
        base_url = e1.text_input("Base URL", "http://127.0.0.1:8000/v1", key=state.scoped("pr_ep_url"))
        endpoint_model = e2.text_input(
            "Model name", key=state.scoped("pr_ep_model"), placeholder="e.g. meta-llama/Llama-3.1-8B-Instruct"
        )
        key_env = e1.text_input(
            "API key variable (its name)",
            key=state.scoped("pr_ep_key_env"),
            placeholder="e.g. OPENAI_API_KEY",
            help="the NAME of an environment variable of the app's process that holds the key; the key itself "
            "is never asked for, shown or saved",
        ).strip()
        scoring_mode = forms.choice(P, "scoring_mode", "Scoring mode", e2, key=state.scoped("pr_ep_mode"))
        concurrency = forms.number(P, "concurrency", "Concurrent requests", e1, key=state.scoped("pr_ep_concurrency"))
        price_input = e2.number_input(
            "USD per 1M prompt tokens", min_value=0.0, value=None, placeholder="no price", key=state.scoped("pr_ep_price_in")
        )
        price_output = e1.number_input(
            "USD per 1M completion tokens", min_value=0.0, value=None, placeholder="no price", key=state.scoped("pr_ep_price_out")
        )
        model = f"openai:{endpoint_model.strip()}@{base_url.strip()}"
        if not endpoint_model.strip():
            st.info("Give the model name the server serves (its /v1/models lists them).")
            st.stop()
        if key_env and not os.environ.get(key_env):
            st.warning(
                state.plain(
                    f"{key_env} is not set in the app's environment; runs will stop at once. Set it before "
                    "starting the app (scripts/run.sh passes the environment on)."
                )
            )
    else:
        model = state.model_choice("Model", "decoder", key="pr_model")
        key_env, scoring_mode, concurrency, price_input, price_output = None, prompting.AUTO, P.concurrency, None, None
    a, b = st.columns(2)
    shots_text = a.text_input(
        "Shots (several for a grid)", "4", key=state.scoped("pr_shots"), help="e.g. 0 4 8 runs three prompts side by side"
    )
    seeds_text = b.text_input(
        "Seeds (several for a grid)",
        "0",
        key=state.scoped("pr_seeds"),
        help="several seeds show how much the choice of demos matters",
    )
    selection = forms.choice(P, "selection", "Demonstrations", a, key=state.scoped("pr_selection"))
    calibration = forms.choice(
        P,
        "calibration",
        "Calibration",
        b,
        key=state.scoped("pr_calibration"),
        help="auto: the best of none / contextual / pmi by macro-F1 on a small stratified slice of the training "
        "data (never the evaluation split); contextual: divide by the probabilities the prompt gives a "
        "content-free input; pmi: subtract the label's log-probability after the bare answer cue",
    )
    scoring = forms.choice(
        P,
        "scoring",
        "Label scoring",
        a,
        key=state.scoped("pr_scoring"),
        help="mean: length-normalised, for multi-token label words",
    )
    eval_split = b.selectbox(
        "Evaluation split",
        eval_splits,
        index=eval_splits.index("test") if "test" in eval_splits else 0,
        key=state.scoped("pr_split"),
    )
    cap = forms.number(
        P,
        "max_eval_examples",
        "Evaluate at most (0 = all rows)",
        value=0,
        min_value=0,
        step=50,
        key=state.scoped("pr_cap"),
        help=None,
    )
    with st.expander("Advanced"):
        c, d = st.columns(2)
        batch_size = forms.number(P, "batch_size", "Batch size", c, key=state.scoped("pr_batch"))
        device = forms.text(P, "device", "Device", d, key=state.scoped("pr_device"))
        if not endpoint_mode:  # big local models on a GPU; on a CPU a run says in one sentence why not
            precision = forms.choice(P, "precision", "Precision", c, key=state.scoped("pr_precision"))
            quantize = forms.choice(
                P,
                "quantize",
                "Quantize",
                d,
                options=[None, *prompting.QUANTIZE],
                format_func=lambda q: q or "no",
                key=state.scoped("pr_quantize"),
            )
            backend = forms.choice(P, "backend", "Scoring engine", c, key=state.scoped("pr_backend"))
        else:
            precision, quantize, backend = P.precision, P.quantize, P.backend

eval_df = ds.splits[eval_split]
try:
    shots_list = whole_numbers(shots_text, "Shots", 0, prompting.MAX_SHOTS)
    seeds_list = whole_numbers(seeds_text, "Seeds")
    use_chat = use_chat and not endpoint_mode  # an endpoint's server applies its own chat template (chat modes)
    config = prompting.PromptConfig(
        model=model,
        instruction=instruction,
        example_template=example_template,
        query_template=query_template,
        use_chat_template=use_chat,
        label_words=label_words,
        shots=shots_list[0],
        selection=selection,
        calibration=calibration,
        template=prompting.AUTO if auto_template else "custom",
        scoring=scoring,
        seed=seeds_list[0],
        batch_size=int(batch_size),
        max_eval_examples=int(cap) or None,
        device=device,
        api_key_env=key_env or None,
        scoring_mode=scoring_mode,
        concurrency=int(concurrency),
        price_input=price_input,
        price_output=price_output,
        precision=precision,
        quantize=quantize,
        backend=backend,
    )
    prompting.verbalizer(config, label_names)
    if not endpoint_mode:  # a GPU option this machine cannot serve says why now, not when the job starts
        endpoints.local_options(config, models.choose_device(config.device))
except UserError as e:
    state.show_error(e)
    st.stop()

# ---- preview ----
st.subheader("Preview")
index = st.number_input(
    f"Example of the {eval_split} split", 0, max(len(eval_df) - 1, 0), 0, key=state.scoped("pr_example_index")
)
example = eval_df.iloc[int(index)]


def endpoint_preview() -> None:
    """The prompt as the server gets it (no local tokenizer, so no token counts), and a free-text answer on request."""
    try:
        text = prompting.endpoint_prompt(config, train, label_names, str(example["text"]))
    except Exception as e:
        state.show_error(e)
        st.stop()
    st.caption(
        f"True label: **{state.plain(example['label'])}** · sent to {state.plain(base_url)} as model "
        f"{state.plain(endpoint_model or '(none yet)')}; the scoring mode is probed when a run starts"
    )
    st.code(text, language=None, wrap_lines=True)
    if st.button("Ask the endpoint for a free-text answer to this example", key=state.scoped("pr_ep_generate")):
        try:
            answer, parsed = prompting.endpoint_answer(config, text, label_names)
            st.caption(state.plain(f"Model wrote: {answer.strip() or '(nothing)'} → parsed label: {parsed or 'none found'}"))
        except Exception as e:
            state.show_error(e)


def local_preview() -> None:
    """The exact prompt with its token counts and demonstrations, and the local model's free-text answer on request."""
    try:
        tokenizer = state.tokenizer(config.model)
        embeddings = (
            state.text_embeddings(tuple(train["text"].astype(str)), config.embedding_model)
            if config.selection == "nearest" and config.shots
            else None
        )
        preview = prompting.preview_prompt(config, tokenizer, train, label_names, str(example["text"]), embeddings)
    except Exception as e:
        state.show_error(e)
        st.stop()
    if preview.warnings:  # one collapsed notice, however many labels (77 intents give dozens of lines)
        named = sum(any(f"({lab})" in w or f"'{lab}'" in w for w in preview.warnings) for lab in label_names)
        title = f"⚠️ Label words that need attention ({len(preview.warnings)} notes on {named} of {len(label_names)} labels)"
        with st.expander(title):
            st.text("\n".join(preview.warnings))
    st.caption(
        f"True label: **{state.plain(example['label'])}** · "
        f"{preview.n_tokens} tokens ({preview.prefix_tokens} in the shared prefix) · "
        f"scored continuations: {state.plain(', '.join(repr(c) for c in preview.continuations))}"
    )
    st.code(preview.text, language=None, wrap_lines=True)
    if len(preview.demos):
        with st.expander(f"Demonstrations in prompt order ({len(preview.demos)})"):
            st.dataframe(preview.demos, hide_index=True, width="stretch")
    if st.button("Generate a free-text answer for this example", key=state.scoped("pr_generate")):
        try:
            answer, parsed = prompting.generate_answer(
                config, tokenizer, state.causal_lm(config.model), preview.text, label_names
            )
            st.caption(state.plain(f"Model wrote: {answer.strip() or '(nothing)'} → parsed label: {parsed or 'none found'}"))
        except Exception as e:
            state.show_error(e)


if endpoint_mode:
    endpoint_preview()
else:
    local_preview()

# ---- run as a background job ----
st.subheader("Run on the evaluation split")
cells = len(shots_list) * len(seeds_list)
n_eval = min(len(eval_df), config.max_eval_examples or len(eval_df))
st.caption(f"{cells} run{'s' if cells > 1 else ''} × {n_eval} examples, one after another in a background job.")
if st.button("Run", type="primary", key=state.scoped("pr_run")):
    try:
        base = runs.new_run_name("prompt", f"{shots_list[0]}shot-{config.selection}")
        names = [name for name, _, _ in prompting.grid_run_names(base, shots_list, seeds_list)]
        forms.start_job(
            "prompt",
            config,
            base,
            first_run=names[0],
            shots=shots_list,
            seed=seeds_list,
            **forms.dataset_settings(ds, eval_split),
        )
        job_watcher.remember("prompt", names)
    except Exception as e:
        state.show_error(e)


job_watcher.panel("prompt", runs.runs_root(), state.current_scope().fingerprints.values())

# ---- results ----
st.subheader("Results")
table = prompting.prompt_runs_table(runs.runs_root(), state.current_scope().fingerprints[eval_split])  # this split's runs
if table.empty:
    st.info(
        "No finished prompting runs on this evaluation split yet. Run one above (or from the CLI: "
        f"`python -m core prompt {forms.cli_data_args(state.current_dataset())} --shots 8 --selection balanced`)."
    )
    st.stop()
table = table.sort_values("created", ascending=False)
mine = [n for n in st.session_state.get(job_watcher.job_key("prompt")) or [] if n in set(table["run"])]
# keyed by the latest job, so the box starts on that job's first run each time a new job has finished
chosen = st.selectbox(
    "Run",
    table["run"].tolist(),
    index=table["run"].tolist().index(mine[0]) if mine else 0,
    key=state.scoped(f"pr_result_run_{mine[0] if mine else ''}"),
)
run = runs.RunDir(runs.runs_root() / chosen)
metrics, config_saved = run.metrics or {}, run.config
c1, c2, c3, c4 = st.columns(4)
c1.metric("Accuracy", f"{metrics.get('accuracy', 0):.3f}")
c2.metric("Macro-F1", f"{metrics.get('macro_f1', 0):.3f}")
c3.metric("Examples", metrics.get("n_examples", 0))
c4.metric("Examples / second", f"{metrics.get('examples_per_second') or 0:.1f}")
if "scoring_mode" in metrics:  # an endpoint run: how it was scored and what it cost
    e1, e2, e3, e4, e5 = st.columns(5)
    e1.metric("Scoring mode", metrics["scoring_mode"])
    e2.metric("Tokens (prompt + completion)", f"{metrics.get('prompt_tokens', 0):,} + {metrics.get('completion_tokens', 0):,}")
    e3.metric("Cost", f"${metrics['cost_usd']:.4f}" if metrics.get("cost_usd") is not None else "no price")
    e4.metric("Median latency", f"{metrics['latency_ms']:.0f} ms" if metrics.get("latency_ms") is not None else "n/a")
    e5.metric("Unparsed answers", metrics.get("unparsed", 0))
    st.caption(
        state.plain(
            f"{endpoints.describe_usage(metrics)}; endpoint {metrics.get('endpoint', {}).get('base_url', '')}, "
            f"model {metrics.get('endpoint', {}).get('model', '')}"
        )
    )
    for missing in endpoints.missing_views(metrics):
        st.info(state.plain(f"Not shown for this run: {missing}."))
for warning in verdict.run_warnings(chosen, config_saved, metrics):  # e.g. no better than always answering the majority label
    st.warning(state.plain(warning))
st.caption(
    state.plain(
        f"{config_saved.get('method', '')} · model {config_saved.get('model', '')} · scoring {config_saved.get('scoring', '')} · "
        f"{config_saved.get('command', '')}"
    )
)
if metrics.get("auto"):
    with st.expander(
        f"Chosen automatically: template '{metrics['auto']['template']}', calibration {metrics['auto']['calibration']}"
    ):
        st.text(prompting.describe_choice(metrics["auto"]))
        if metrics["auto"].get("candidates"):
            st.dataframe(pd.DataFrame(metrics["auto"]["candidates"]), hide_index=True, width="stretch")
left, right = st.columns([2, 3])
with left:
    run_labels, matrix = metrics.get("labels", []), metrics.get("confusion_matrix", [])
    if len(run_labels) <= charts.MAX_MATRIX_LABELS:
        st.altair_chart(charts.prompt_confusion_matrix(matrix, run_labels))
    else:  # too many labels for a matrix: the most frequent mistakes
        cells = pd.DataFrame(
            [(chosen, t, p, int(matrix[i][j])) for i, t in enumerate(run_labels) for j, p in enumerate(run_labels)],
            columns=["run", "true", "pred", "count"],
        )
        st.caption(f"Most confused of {len(run_labels)} labels")
        st.dataframe(evaluate.most_confused(cells, top=25)[["true", "pred", "count"]], hide_index=True)
with right:
    try:
        predictions = run.predictions()
        only_wrong = st.checkbox("Only the mistakes", key=state.scoped("pr_only_wrong"))
        shown = predictions[predictions["label"] != predictions["pred"]] if only_wrong else predictions
        order = [
            "id",
            "label",
            "pred",
            "confidence",
            *[c for c in predictions.columns if c.startswith("prob_")],
            "text",
            *(["answer"] if "answer" in predictions.columns else []),
        ]  # an endpoint's generated answer (generate mode)
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            height=320,
            column_order=order,
            column_config={
                c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.2f")
                for c in predictions.columns
                if c.startswith("prob_") or c == "confidence"
            },
        )
    except (OSError, ValueError, pd.errors.ParserError) as e:
        state.show_error(UserError(f"Could not read the predictions of {chosen}: {e}"))

st.subheader("Side by side: templates, shot counts and seeds")
st.caption(
    "Every finished prompting run on this evaluation split. A variant is one wording (template id) with one selection and "
    "calibration; dots are seeds, the line their mean with a ±1 std band."
)
st.altair_chart(charts.prompt_grid(table), width="stretch")
st.dataframe(prompting.seed_variance(table), hide_index=True, width="stretch")
with st.expander("Templates"):
    st.dataframe(
        table.drop_duplicates("template")[["template", "instruction", "query_template"]], hide_index=True, width="stretch"
    )
