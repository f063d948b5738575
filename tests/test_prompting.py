"""Unit tests of core.prompting on the tiny random Llama: cached scoring equals re-encoding, calibration maths,
demonstration selection, multi-token labels, templates and label-word checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import models, prompting
from core.errors import UserError
from core.prompting import PromptConfig
from tests.conftest import CORPUS


@pytest.fixture(params=["sdpa", "eager"])
def tiny(tiny_llama_dir, request):
    """(name, tokenizer, model) of the tiny Llama, with the attention used for scoring (sdpa) and for attention views (eager)."""
    name = str(tiny_llama_dir)
    return name, models.load_tokenizer(name), models.load_causal_lm(name, "cpu", request.param)


def _train() -> pd.DataFrame:
    rows = [
        ("the movie was great", "positive"),
        ("i loved it", "positive"),
        ("good fine okay", "positive"),
        ("terrible service", "negative"),
        ("never again", "negative"),
        ("bad bad bad", "negative"),
        ("it is a kettle", "neutral"),
        ("it boils water", "neutral"),
        ("shares fell", "neutral"),
        ("please refund", "neutral"),
    ]
    return pd.DataFrame(
        {"id": [f"train-{i}" for i in range(len(rows))], "text": [r[0] for r in rows], "label": [r[1] for r in rows]}
    )


LABELS = ["negative", "neutral", "positive"]


def test_prefix_cache_scoring_equals_full_reencoding(tiny):
    """Batched queries of different lengths after a cached prefix score as the whole prompt re-encoded, to 1e-4."""
    _, tok, model = tiny
    prefix = prompting.encode(tok, "classify each text as positive negative neutral\n\nText: i loved it\nAnswer: positive\n\n")
    queries = [
        prompting.encode(tok, f"Text: {t}\nAnswer:")
        for t in ["the movie was great and i loved it", "bad", "where is my parcel ? it has not arrived", "okay fine"]
    ]
    assert len({len(q) for q in queries}) > 2
    label_ids = [prompting.encode(tok, " positive"), prompting.encode(tok, " negative"), prompting.encode(tok, " kettle")]
    fast = prompting.score_rows(
        model, prefix, prompting.label_rows(queries, label_ids), len(queries), 3, batch_size=3, pad_id=tok.pad_token_id
    )
    naive = prompting.score_rows_naive(model, prefix, queries, label_ids)
    assert np.abs(fast - naive).max() < 1e-4
    assert np.isfinite(fast).all() and (fast < 0).all()


def test_multi_token_labels_score_by_teacher_forcing(tiny):
    """Labels of several tokens (and of different lengths) sum the right token log-probs, with and without a prefix."""
    _, tok, model = tiny
    label_ids = [
        prompting.encode(tok, " dividend was raised"),
        prompting.encode(tok, " bad"),
        prompting.encode(tok, " refund my order"),
    ]
    assert sorted(len(ids) for ids in label_ids)[-1] > 1 and len({len(ids) for ids in label_ids}) > 1
    queries = [prompting.encode(tok, q) for q in ["profit rose and the", "terrible service , never", "please"]]
    for prefix in (prompting.encode(tok, "positive negative neutral\n"), []):
        rows = prompting.label_rows(queries, label_ids)
        assert len(rows) == 3  # one row per query: the query, then the label trie
        fast = prompting.score_rows(model, prefix, rows, 3, 3, batch_size=4, pad_id=tok.pad_token_id)
        naive = prompting.score_rows_naive(model, prefix, queries, label_ids)
        assert np.abs(fast - naive).max() < 1e-4


def test_single_token_labels_come_from_one_pass_and_match_multi_path(tiny):
    """All-single-token labels make one row per query, and give the same numbers as the teacher-forced path."""
    _, tok, model = tiny
    label_ids = [prompting.encode(tok, " good"), prompting.encode(tok, " bad")]
    assert all(len(ids) == 1 for ids in label_ids)
    queries = [prompting.encode(tok, "the movie was"), prompting.encode(tok, "it is a kettle . it boils")]
    rows = prompting.label_rows(queries, label_ids)
    assert len(rows) == 2
    one_pass = prompting.score_rows(model, prompting.encode(tok, "x "), rows, 2, 2)
    per_label = [
        prompting.ScoredRow(q, [(len(q) - 1, ids[0], n, c)]) for n, q in enumerate(queries) for c, ids in enumerate(label_ids)
    ]
    assert np.allclose(one_pass, prompting.score_rows(model, prompting.encode(tok, "x "), per_label, 2, 2), atol=1e-5)


def test_progress_counts_examples_whose_rows_are_all_scored(tiny):
    """Per-label rows (3 per example) and calibration rows (numbered from counted on) do not inflate the count."""
    _, tok, model = tiny
    label_ids = [prompting.encode(tok, " profit rose"), prompting.encode(tok, " bad"), prompting.encode(tok, " refund")]
    queries = [prompting.encode(tok, q) for q in ["shares fell after the", "terrible", "please", "okay fine", "N/A"]]
    seen: list[tuple[int, int]] = []
    prompting.score_rows(
        model,
        [],
        _per_label_rows(queries, label_ids),
        5,
        3,
        batch_size=2,
        pad_id=tok.pad_token_id,
        progress=lambda d, t: seen.append((d, t)),
        counted=4,
    )
    assert len(seen) == 8 and {t for _, t in seen} == {4} and seen[-1] == (4, 4)
    assert all(d <= (b + 1) * 2 // 3 for b, (d, _) in enumerate(seen))  # an example counts once all 3 of its rows are done


def _per_label_rows(queries, label_ids):
    """The scorer's former layout, kept as a reference: one teacher-forced row per (query, label)."""
    return [
        prompting.ScoredRow(q + ids[:-1], [(len(q) - 1 + j, t, n, c) for j, t in enumerate(ids)])
        for n, q in enumerate(queries)
        for c, ids in enumerate(label_ids)
    ]


def test_label_trie_shares_leading_tokens_and_equals_per_label_scoring(tiny):
    """Labels sharing leading tokens share trie nodes; the one-row-per-query trie gives the per-label and the naive
    log-probs to 1e-4, with a cached prefix and without one (nearest selection), in batches mixing query lengths."""
    _, tok, model = tiny
    words = [" profit rose", " profit fell", " profit rose and the dividend", " bad", " refund my order", " refund"]
    label_ids = [prompting.encode(tok, w) for w in words]
    assert label_ids[0][0] == label_ids[1][0] and label_ids[2][: len(label_ids[0])] == label_ids[0]
    queries = [
        prompting.encode(tok, q) for q in ["shares fell after the", "terrible", "where is my parcel ? it has not", "please"]
    ]
    rows = prompting.label_rows(queries, label_ids)
    assert len(rows) == len(queries)
    distinct = {tuple(ids[: j + 1]) for ids in label_ids for j in range(len(ids) - 1)}
    assert all(len(r.tokens) == len(q) + len(distinct) for r, q in zip(rows, queries))  # shared prefixes counted once
    assert len(distinct) < sum(len(ids) - 1 for ids in label_ids)
    for prefix in (prompting.encode(tok, "classify each text\n\nText: i loved it\nAnswer: good\n\n"), []):
        trie = prompting.score_rows(model, prefix, rows, len(queries), len(words), batch_size=3, pad_id=tok.pad_token_id)
        per_label = prompting.score_rows(
            model, prefix, _per_label_rows(queries, label_ids), len(queries), len(words), batch_size=5, pad_id=tok.pad_token_id
        )
        naive = prompting.score_rows_naive(model, prefix, queries, label_ids)
        assert np.abs(trie - naive).max() < 1e-4
        assert np.abs(trie - per_label).max() < 1e-4


def test_label_trie_with_whole_prompts_per_row_equals_naive(tiny):
    """Nearest selection gives every query its own prompt and no shared prefix: the trie still scores each exactly."""
    _, tok, model = tiny
    label_ids = [prompting.encode(tok, " profit rose"), prompting.encode(tok, " profit fell"), prompting.encode(tok, " bad")]
    prompts = [
        prompting.encode(tok, p, special=True)
        for p in [
            "Text: i loved it\nAnswer: good\n\nText: shares fell\nAnswer:",
            "Text: never again\nAnswer: bad\n\nText: okay\nAnswer:",
        ]
    ]
    trie = prompting.score_rows(model, [], prompting.label_rows(prompts, label_ids), 2, 3, batch_size=2, pad_id=tok.pad_token_id)
    naive = np.vstack([prompting.score_rows_naive(model, p[:-1], [p[-1:]], label_ids) for p in prompts])
    assert np.abs(trie - naive).max() < 1e-4


def test_contextual_calibration_on_hand_made_numbers():
    probs = np.array([[0.6, 0.4], [0.8, 0.2]])
    content_free = np.array([[0.8, 0.2]])  # the model leans to class 0 with no input at all
    out = prompting.contextual_calibrate(probs, content_free)
    # [0.6/0.8, 0.4/0.2] = [0.75, 2] -> [0.2727, 0.7273]; [1, 1] -> [0.5, 0.5]
    assert np.allclose(out, [[0.75 / 2.75, 2 / 2.75], [0.5, 0.5]])
    assert np.allclose(out.sum(1), 1)


def test_pmi_calibration_and_mean_scoring_on_hand_made_numbers():
    scores = np.log(np.array([[0.5, 0.25]]))
    domain = np.log(np.array([[0.5, 0.125]]))
    # PMI: log 1 vs log 2 -> softmax [1/3, 2/3]
    assert np.allclose(prompting.pmi_calibrate(scores, domain), [[1 / 3, 2 / 3]])
    sums = np.array([[-2.0, -3.0]])
    assert np.allclose(prompting.label_scores(sums, [1, 3], "mean"), [[-2.0, -1.0]])
    assert np.allclose(prompting.label_scores(sums, [1, 3], "sum"), sums)
    assert np.allclose(prompting.softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


def test_balanced_selection_is_balanced_and_seeded():
    train = _train()
    picks = prompting.select_demonstrations(train, 6, "balanced", seed=1, label_names=LABELS)
    assert len(set(picks)) == 6
    assert train.iloc[picks]["label"].value_counts().tolist() == [2, 2, 2]
    assert picks == prompting.select_demonstrations(train, 6, "balanced", seed=1, label_names=LABELS)
    others = {tuple(prompting.select_demonstrations(train, 6, "balanced", seed=s, label_names=LABELS)) for s in range(2, 8)}
    assert len(others) > 1
    counts = train.iloc[prompting.select_demonstrations(train, 5, "balanced", 0, LABELS)]["label"].value_counts()
    assert counts.max() - counts.min() <= 1 and len(counts) == 3
    rand = prompting.select_demonstrations(train, 4, "random", seed=3, label_names=LABELS)
    assert rand == prompting.select_demonstrations(train, 4, "random", seed=3, label_names=LABELS) and len(set(rand)) == 4
    with pytest.raises(UserError, match="only 10 rows"):
        prompting.select_demonstrations(train, 11, "balanced", 0, LABELS)


def test_nearest_demonstrations_put_the_closest_last():
    train_emb = np.eye(4)
    query = np.array([[0.9, 0.1, 0.0, 0.3]])
    assert prompting.nearest_demonstrations(train_emb, query, 2).tolist() == [[3, 0]]


def test_nearest_selection_embeds_with_the_encoder(tiny_bert_dir):
    emb = prompting.embed_texts(["i loved it", "terrible service", "i loved it"], str(tiny_bert_dir))
    assert emb.shape[0] == 3 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(emb[0], emb[2])


def test_config_validation_names_the_problem():
    with pytest.raises(UserError, match=r"\{text\}"):
        PromptConfig(query_template="Answer:")
    with pytest.raises(UserError, match="Unknown --selection .closest.; choose one of"):
        PromptConfig(selection="closest")
    with pytest.raises(UserError, match="shots"):
        PromptConfig(shots=-1)
    with pytest.raises(UserError, match="same label word"):
        prompting.verbalizer(PromptConfig(label_words={"negative": "bad", "neutral": "Bad"}), LABELS)
    assert prompting.verbalizer(PromptConfig(label_words={"negative": "bad"}), LABELS) == ["bad", "neutral", "positive"]
    assert PromptConfig(shots=8, selection="balanced", calibration="none").method == "8-shot balanced"
    assert PromptConfig(shots=8).method == "8-shot balanced +auto"  # calibration chosen on a training slice by default
    assert PromptConfig(calibration="pmi").method == "zero-shot +pmi"


def test_label_word_check_warns_on_multi_token_and_shared_first_token(tiny):
    _, tok, _ = tiny
    config = PromptConfig(label_words={"negative": "profit rose", "positive": "profit fell"})
    warnings = prompting.check_label_words(config, tok, LABELS)
    assert any("is 2 tokens" in w or "tokens (" in w for w in warnings)
    assert any("start with the same token" in w for w in warnings)
    assert (
        prompting.check_label_words(
            PromptConfig(label_words={"negative": "bad", "neutral": "fine", "positive": "good"}), tok, LABELS
        )
        == []
    )


def test_prompt_parts_and_chat_template(tiny):
    _, tok, _ = tiny
    demos = _train().iloc[[0, 3]]
    plain = prompting.prompt_parts(PromptConfig(shots=2), tok, LABELS, demos, LABELS, "hello {label}")
    assert plain.prefix.startswith("Classify each text as one of: negative, neutral, positive.\n\n")
    assert "Text: the movie was great\nCategory: positive\n\n" in plain.prefix
    assert plain.query == "Text: hello {label}\nCategory:" and plain.continuations[0] == " negative"
    chat = prompting.prompt_parts(PromptConfig(use_chat_template=True), tok, LABELS, demos.iloc[:0], LABELS, "hi")
    assert chat.prefix.startswith("<|im_start|>user\n") and chat.query.endswith("<|im_start|>assistant\n")
    assert chat.continuations[0] == "negative"  # the reply starts on a new line: no leading space


def test_parse_label_takes_the_first_word_found():
    assert prompting.parse_label(" Positive, not negative", LABELS, LABELS) == "positive"
    assert prompting.parse_label("neutrality", LABELS, LABELS) is None


def test_run_prompting_end_to_end_with_calibration(tiny, tiny_bert_dir):
    """A whole run on the tiny model: probabilities sum to one, metrics are consistent, every calibration works."""
    name, _, _ = tiny
    train = _train()
    eval_df = train.assign(id=[f"test-{i}" for i in range(len(train))])
    for calibration in ("none", "contextual", "pmi"):
        for selection in ("balanced", "nearest"):
            config = PromptConfig(
                model=name,
                shots=3,
                selection=selection,
                calibration=calibration,
                batch_size=4,
                max_eval_examples=6,
                embedding_model=str(tiny_bert_dir),
            )
            seen: list[tuple[int, int]] = []
            result = prompting.run_prompting(config, train, eval_df, LABELS, progress=lambda d, t, seen=seen: seen.append((d, t)))
            probs = result.predictions[[f"prob_{lab}" for lab in LABELS]].to_numpy()
            assert len(result.predictions) == 6 and np.allclose(probs.sum(1), 1, atol=1e-4)
            assert result.metrics["n_examples"] == 6 and 0 <= result.metrics["accuracy"] <= 1
            assert seen[-1] == (6, 6) and {t for _, t in seen} == {6}  # examples, not rows (calibration rows not counted)
            assert [d for d, _ in seen] == sorted(d for d, _ in seen)
            assert len(result.demos) == 3


def _bigger_train() -> pd.DataFrame:
    texts = list(dict.fromkeys(" ".join(c.split()[:5]) for c in CORPUS))  # 9 distinct texts
    rows = [(f"{t} {i}", LABELS[(i + k) % 3]) for k, t in enumerate(texts) for i in range(3)]
    return pd.DataFrame(
        {"id": [f"train-{i}" for i in range(len(rows))], "text": [r[0] for r in rows], "label": [r[1] for r in rows]}
    )


@pytest.mark.parametrize("selection", ["balanced", "nearest"])
def test_all_calibrations_from_one_pass_equal_each_calibration_run_alone(tiny_llama_dir, tiny_bert_dir, selection):
    name, train = str(tiny_llama_dir), _train()
    eval_df = train.assign(id=[f"test-{i}" for i in range(len(train))])
    common = dict(model=name, shots=2, selection=selection, batch_size=4, max_eval_examples=5, embedding_model=str(tiny_bert_dir))
    together = prompting.run_prompting(PromptConfig(calibration="none", **common), train, eval_df, LABELS, all_calibrations=True)
    assert set(together.calibrated) == {"none", "contextual", "pmi"}
    for calibration in ("none", "contextual", "pmi"):
        alone = prompting.run_prompting(PromptConfig(calibration=calibration, **common), train, eval_df, LABELS)
        assert np.allclose(alone.calibrated[calibration], together.calibrated[calibration], atol=1e-6)
        assert list(alone.calibrated) == (["none"] if calibration == "none" else ["none", calibration])


def test_selection_slice_is_stratified_capped_and_seeded():
    train = pd.DataFrame(
        {"id": range(300), "text": [f"t{i}" for i in range(300)], "label": ["a"] * 200 + ["b"] * 90 + ["c"] * 9 + ["d"]}
    )
    part, rest = prompting.selection_slice(train, ["a", "b", "c", "d"], seed=3)
    counts = part["label"].value_counts().to_dict()
    assert counts == {
        "a": prompting.SLICE_PER_CLASS,
        "b": prompting.SLICE_PER_CLASS,
        "c": 4,
    }  # c: at most half; d: one row, kept out
    assert len(part) + len(rest) == 300 and not set(part["id"]) & set(rest["id"])
    assert part.equals(prompting.selection_slice(train, ["a", "b", "c", "d"], seed=3)[0])
    many = pd.DataFrame({"id": range(770), "text": [f"t{i}" for i in range(770)], "label": [f"l{i % 77}" for i in range(770)]})
    part, _ = prompting.selection_slice(many, [f"l{i}" for i in range(77)], seed=0)
    assert len(part) <= prompting.SLICE_MAX and part["label"].nunique() == 77


def test_auto_chooses_on_a_training_slice_and_never_reads_the_evaluation_rows(tiny_llama_dir, monkeypatch):
    train = _bigger_train()
    eval_df = pd.DataFrame(
        {"id": [f"test-{i}" for i in range(6)], "text": [f"held out text {i}" for i in range(6)], "label": LABELS * 2}
    )
    calls = []
    original = prompting.run_prompting

    def spy(config, train_rows, eval_rows, labels, progress=None, all_calibrations=False):
        calls.append((config, set(train_rows["id"]), set(eval_rows["id"]), all_calibrations))
        return original(config, train_rows, eval_rows, labels, progress, all_calibrations)

    monkeypatch.setattr(prompting, "run_prompting", spy)
    config = PromptConfig(model=str(tiny_llama_dir), shots=2, calibration="auto", template="auto", batch_size=8)
    result = original(config, train, eval_df, LABELS)
    assert len(calls) == len(prompting.TEMPLATES)  # one scoring pass per template; calibrations share it
    for candidate, demo_pool, scored, all_calibrations in calls:
        assert scored <= set(train["id"]) and not scored & set(eval_df["id"])  # the slice is training data
        assert not scored & demo_pool  # slice rows are never demonstrations
        assert all_calibrations and candidate.calibration != "auto" and candidate.template == "custom"
    record = result.auto
    assert len(record["candidates"]) == len(prompting.TEMPLATES) * len(prompting.AUTO_CALIBRATIONS)
    top = max(c["macro_f1"] for c in record["candidates"])
    first_close = next(
        c for c in record["candidates"] if c["macro_f1"] >= top - record["standard_error"]
    )  # one-standard-error rule
    assert record["best_slice_macro_f1"] == top and record["standard_error"] == pytest.approx(
        (top * (1 - top) / 12) ** 0.5, abs=1e-4
    )
    assert (record["template"], record["calibration"], record["slice_macro_f1"]) == (
        first_close["template"],
        first_close["calibration"],
        first_close["macro_f1"],
    )
    assert result.config.calibration == record["calibration"] and result.config.template == "custom"
    assert result.config.query_template == prompting.TEMPLATES[record["template"]]["query_template"]
    assert result.metrics["auto"] == record and result.metrics["calibration"] == record["calibration"]
    assert record["slice_rows"] == 3 * 4 and record["slice_classes"] == 3  # 9 rows per class: at most half (4) each
    again = original(config, train, eval_df, LABELS)
    assert again.auto == record  # seeded


def test_auto_with_too_little_training_data_falls_back_to_the_defaults(tiny_llama_dir):
    train = _train().iloc[[0, 3, 6]]  # one row per class: nothing can be held out
    result = prompting.run_prompting(
        PromptConfig(model=str(tiny_llama_dir), calibration="auto", template="auto"), train, _train(), LABELS
    )
    assert result.auto["note"] and result.config.calibration == "contextual"
    assert result.config.query_template == prompting.DEFAULT_QUERY_TEMPLATE and result.metrics["n_examples"] == 10


@pytest.mark.parametrize(
    ("word", "opaque"),
    [
        ("0", True),
        ("-1", True),
        ("2.5", True),
        ("LABEL_3", True),
        ("class-2", True),
        ("C1", True),
        ("A", True),
        ("x", True),
        ("negative", False),
        ("no", False),
        ("Sci/Tech", False),
        ("card arrival", False),
        ("5 stars", False),
    ],
)
def test_opaque_label_words_are_detected(word, opaque):
    assert prompting.is_opaque(word) is opaque


def test_default_label_words_turn_underscores_into_spaces_and_opaque_ones_are_named(tiny_llama_dir):
    labels = ["card_arrival", "LABEL_1", "0"]
    config = PromptConfig()
    assert prompting.verbalizer(config, labels) == ["card arrival", "LABEL 1", "0"]
    assert prompting.opaque_labels(config, labels) == ["LABEL_1", "0"]
    assert prompting.opaque_labels(PromptConfig(label_words={"LABEL_1": "refund", "0": "other"}), labels) == []
    tok = models.load_tokenizer(str(tiny_llama_dir))
    notes = prompting.check_label_words(config, tok, labels)
    assert "Label word '0' (0) is a number or code, not a word: the model cannot tell what it means." in notes


def test_label_words_from_a_page_are_kept_as_given_even_with_an_equals_sign():
    """The page hands label words over as a dict; re-splitting it at '=' turned label 'x=1' into label 'x'."""
    labels = ["x=1", "y"]
    assert prompting.verbalizer(PromptConfig(label_words={"x=1": "one"}), labels) == ["one", "y"]
    assert PromptConfig(label_words=["neg=bad", "pos=good"]).label_words == {"neg": "bad", "pos": "good"}
    with pytest.raises(UserError, match="The label word for 'y' is empty"):
        PromptConfig(label_words={"y": "  "})
