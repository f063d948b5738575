"""core.training.continual: the transfer arithmetic, label spaces, and every strategy on a tiny random BERT."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import UserError
from core.training import base, continual


def test_transfer_metrics_of_a_hand_made_matrix():
    matrix = [[0.9, 0.5, 0.4], [0.7, 0.8, 0.6], [0.6, 0.7, 0.9]]
    initial = [0.3, 0.3, 0.5]
    m = continual.transfer_metrics(matrix, initial)
    assert m["average_accuracy"] == pytest.approx((0.6 + 0.7 + 0.9) / 3)
    assert m["bwt"] == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)  # -0.2: forgetting
    assert m["fwt"] == pytest.approx(((0.5 - 0.3) + (0.6 - 0.5)) / 2)  # +0.15: earlier tasks helped


def test_no_forgetting_and_no_transfer_give_zero():
    m = continual.transfer_metrics([[0.8, 0.5], [0.8, 0.9]], [0.4, 0.5])
    assert m["bwt"] == pytest.approx(0.0) and m["fwt"] == pytest.approx(0.0) and m["average_accuracy"] == pytest.approx(0.85)


def test_transfer_metrics_refuse_a_ragged_matrix():
    with pytest.raises(ValueError):
        continual.transfer_metrics([[0.5, 0.5]], [0.5, 0.5])


def _task_files(tmp_path, name: str, rows: list[tuple[str, str]], copies: int = 6) -> tuple[str, str]:
    frame = pd.DataFrame(rows * copies, columns=["text", "label"])
    frame["text"] = [f"{t} {i}" for i, t in enumerate(frame["text"])]  # no exact duplicates (they would be dropped)
    train, test = tmp_path / f"{name}-train.csv", tmp_path / f"{name}-test.csv"
    frame.to_csv(train, index=False)
    frame.iloc[::3].to_csv(test, index=False)
    return str(train), str(test)


SENTIMENT_A = [("the movie was great and i loved it", "positive"), ("terrible service , never again", "negative")]
SENTIMENT_B = [("profit rose and the dividend was raised", "positive"), ("shares fell after the profit warning", "negative")]
INTENTS = [
    ("i cannot log in to my account", "account"),
    ("please refund my order", "refund"),
    ("where is my parcel ? it has not arrived", "delivery"),
]


def test_the_label_space_is_shared_only_when_label_names_agree(tmp_path):
    a, b, c = (_task_files(tmp_path, n, r) for n, r in (("a", SENTIMENT_A), ("b", SENTIMENT_B), ("c", INTENTS)))
    shared = continual.label_space(continual.load_tasks([a[0], b[0]], [a[1], b[1]]))
    assert shared.shared and shared.units == ["negative", "positive"] and shared.task_units == [[0, 1], [0, 1]]
    apart = continual.label_space(continual.load_tasks([a[0], c[0]], [a[1], c[1]]))
    assert not apart.shared and len(apart.units) == 5
    assert apart.task_units == [[0, 1], [2, 3, 4]] and apart.units[2] == "2:account"
    assert "one head per task" in apart.sentence()


@pytest.mark.parametrize(
    "train, evals, sentence",
    [
        (["reviews"], ["reviews"], "at least two tasks"),
        (["reviews", "finance_news"], ["reviews"], "one --eval source per --train source"),
    ],
)
def test_a_sequence_that_cannot_be_run_is_refused(train, evals, sentence):
    with pytest.raises(UserError, match=sentence):
        continual.load_tasks(train, evals)


def test_eval_labels_missing_from_training_are_refused(tmp_path):
    a = _task_files(tmp_path, "a", SENTIMENT_A)
    odd = tmp_path / "odd.csv"
    pd.DataFrame({"text": ["x one", "x two", "x three"], "label": ["positive", "negative", "sarcastic"]}).to_csv(odd, index=False)
    with pytest.raises(UserError, match="'sarcastic' never occur in its training rows"):
        continual.load_tasks([a[0], a[0]], [a[1], str(odd)])


def test_tasks_from_files_of_the_same_name_get_names_apart(tmp_path):
    """Two datasets each saved as train.csv were both named 'train.csv': one row of the heatmap, one key of a step's
    task_accuracy; the folder tells them apart, and the task number a task given twice."""
    (tmp_path / "sst").mkdir(), (tmp_path / "news").mkdir()
    a, b = _task_files(tmp_path / "sst", "x", SENTIMENT_A), _task_files(tmp_path / "news", "x", SENTIMENT_B)
    tasks = continual.load_tasks([a[0], b[0], a[0]], [a[1], b[1], a[1]])
    assert [t.name for t in tasks] == ["sst/x-train.csv", "news/x-train.csv", "sst/x-train.csv (3)"]
    assert [t.name for t in continual.load_tasks([a[0], "reviews"], [a[1], "reviews"])] == [
        "x-train.csv",
        "reviews",
    ]  # unique: as they were


def test_an_unknown_strategy_is_refused():
    with pytest.raises(UserError, match="Unknown --strategy 'gem'"):
        continual.ContinualConfig(strategy="gem")


def _run(tiny_bert_dir, tasks, strategy: str, **kw) -> continual.ContinualResult:
    config = continual.ContinualConfig(
        strategy=strategy,
        model=str(tiny_bert_dir),
        epochs=kw.pop("epochs", 2),
        lr=kw.pop("lr", 5e-3),
        batch_size=8,
        max_length=32,
        seed=0,
        device="cpu",
        **kw,
    )
    return continual.run_sequence(config, tasks)


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tasks")
    a, b = _task_files(tmp, "a", SENTIMENT_A), _task_files(tmp, "b", SENTIMENT_B)
    return continual.load_tasks([a[0], b[0]], [a[1], b[1]])


@pytest.mark.parametrize("strategy", continual.STRATEGIES)
def test_every_strategy_fills_the_matrix(strategy, two_domains, tiny_bert_dir):
    result = _run(tiny_bert_dir, two_domains, strategy)
    assert len(result.matrix) == 2 and all(len(row) == 2 for row in result.matrix)
    assert all(0.0 <= a <= 1.0 for row in result.matrix for a in row)
    summary = result.summary(continual.ContinualConfig(strategy=strategy))
    assert summary["average_accuracy"] == pytest.approx(sum(result.matrix[-1]) / 2)
    assert summary["bwt"] == pytest.approx(result.matrix[1][0] - result.matrix[0][0])
    final = result.step_predictions[-1]
    assert len(final) == sum(len(t.eval) for t in two_domains) and final["id"].is_unique
    assert (final["pred"] == final["label"]).groupby(final["task"], sort=False).mean().tolist() == pytest.approx(
        result.matrix[-1]
    )


def test_the_first_step_learns_its_task(two_domains, tiny_bert_dir):
    result = _run(tiny_bert_dir, two_domains, "naive", epochs=4)
    assert result.matrix[0][0] == 1.0 and result.initial[0] < 1.0  # two distinct sentences: a tiny model learns them


def test_lora_per_task_does_not_touch_earlier_tasks(two_domains, tiny_bert_dir):
    result = _run(tiny_bert_dir, two_domains, "lora-per-task")
    assert result.matrix[1][0] == result.matrix[0][0]  # task 1's adapter and head are frozen after its step
    assert result.matrix[0][1] == result.initial[1]  # task 2 before its step: the untrained adapter is the initial model


def test_ewc_adds_lambda_half_of_the_fisher_weighted_squared_distance(two_domains, tiny_bert_dir):
    import torch
    from transformers import DataCollatorWithPadding

    from core import models
    from core.training import finetune

    space = continual.label_space(two_domains)
    config = continual.ContinualConfig(
        strategy="ewc", model=str(tiny_bert_dir), batch_size=8, max_length=32, seed=0, device="cpu"
    )
    model = finetune.build_model(config.finetune_config(), space.units, "cpu")
    tokenizer = models.load_tokenizer(str(tiny_bert_dir))
    rows = continual.encode_rows(tokenizer, two_domains[0].train.assign(task=0), space, two_domains, 32)
    collator = DataCollatorWithPadding(tokenizer)
    mask = torch.ones(2, len(space.units), dtype=torch.bool)
    fisher = continual.fisher_diagonal(model, rows, collator, mask, 16, seed=0)
    weight, anchor = fisher["classifier.weight"]
    assert weight.sum() > 0 and torch.equal(anchor, model.classifier.weight.detach())  # the head was used: it has Fisher weight
    assert float(continual.ewc_penalty(model, [fisher])) == pytest.approx(0.0)  # at the anchor: no penalty
    shifted = {"classifier.weight": (weight, anchor - 0.5)}  # every head weight 0.5 away from its anchor
    assert float(continual.ewc_penalty(model, [shifted, shifted])) == pytest.approx(2 * 0.25 * float(weight.sum()), rel=1e-5)
    batch = collator([rows[i] for i in range(8)])
    losses = {}
    for lam in (0.0, 10.0):
        trainer = continual.continual_trainer_class()(
            model=model,
            args=base.training_arguments(
                config.finetune_config(), tiny_bert_dir.parent / "ewc-args", 8, "cpu", 1, remove_unused_columns=False
            ),
            unit_mask=mask,
            ewc_terms=[shifted],
            ewc_lambda=lam,
        )
        model.eval()
        losses[lam] = float(trainer.compute_loss(model, dict(batch)))
    assert losses[10.0] - losses[0.0] == pytest.approx(10.0 / 2 * 0.25 * float(weight.sum()), rel=1e-4)


def test_the_fisher_is_the_mean_of_each_rows_squared_gradient(two_domains, tiny_bert_dir):
    """Per row, not per batch: the square of a batch's mean gradient is much smaller (the rows' gradients cancel)."""
    import torch
    from transformers import DataCollatorWithPadding

    from core import models
    from core.training import finetune

    space = continual.label_space(two_domains)
    config = continual.ContinualConfig(strategy="ewc", model=str(tiny_bert_dir), max_length=32, seed=0, device="cpu")
    model = finetune.build_model(config.finetune_config(), space.units, "cpu")
    tokenizer = models.load_tokenizer(str(tiny_bert_dir))
    rows = continual.encode_rows(tokenizer, two_domains[0].train.assign(task=0), space, two_domains, 32)
    collator = DataCollatorWithPadding(tokenizer)
    mask = torch.ones(2, len(space.units), dtype=torch.bool)
    fisher = continual.fisher_diagonal(model, rows, collator, mask, len(rows), seed=0)  # every row: the order does not matter
    expected = torch.zeros_like(model.classifier.weight)
    for i in range(len(rows)):
        batch = collator([rows[i]])
        labels, task_id = batch.pop("labels"), batch.pop("task_id")
        model.zero_grad()
        log_p = torch.log_softmax(continual.masked_logits(model(**batch).logits, mask, task_id), dim=-1)[0, labels[0]]
        (-log_p).backward()
        expected += model.classifier.weight.grad**2
    assert torch.allclose(fisher["classifier.weight"][0], expected / len(rows), rtol=1e-4, atol=1e-9)


def test_ewc_holds_the_parameters_that_matter_to_the_first_task(two_domains, tiny_bert_dir, monkeypatch):
    """With a strong penalty, in the loss the optimizer follows, the Fisher-weighted distance from task 1's parameters
    after task 2 is a fraction of naive's (plain distance is no measure: parameters task 1 does not use move freely)."""
    penalties, terms = [], []
    original_penalty, original_fisher = continual.ewc_penalty, continual.fisher_diagonal
    monkeypatch.setattr(continual, "ewc_penalty", lambda model, t: penalties.append(float(v := original_penalty(model, t))) or v)
    monkeypatch.setattr(continual, "fisher_diagonal", lambda *a, **k: terms.append(original_fisher(*a, **k)) or terms[-1])
    final = {}
    for strategy in ("ewc", "naive"):  # both train task 1 identically (same seed), so task 1's Fisher and anchor serve both
        config = continual.ContinualConfig(
            strategy=strategy,
            model=str(tiny_bert_dir),
            epochs=4,
            lr=5e-3,
            batch_size=8,
            max_length=32,
            ewc_lambda=1e6,
            seed=0,
            device="cpu",
        )
        continual.run_sequence(
            config, two_domains, on_step=lambda result, i, trainer, model, s=strategy: final.update({s: model})
        )
    assert len(terms) == 1 and penalties and max(penalties) > 0  # ewc's second step: the penalty is computed while training
    distance = {s: float(original_penalty(m, terms)) for s, m in final.items()}
    assert distance["ewc"] < distance["naive"] / 5


def test_replay_mixes_earlier_rows_in(two_domains, tiny_bert_dir, monkeypatch):
    seen = []
    original = continual.encode_rows

    def spy(tokenizer, frame, *args):
        seen.append(frame["task"].value_counts().to_dict())
        return original(tokenizer, frame, *args)

    monkeypatch.setattr(continual, "encode_rows", spy)
    _run(tiny_bert_dir, two_domains, "replay", replay_share=0.5, epochs=1)
    n_first = len(two_domains[0].train)
    assert seen[0] == {0: n_first}
    assert seen[1] == {1: len(two_domains[1].train), 0: round(0.5 * n_first)}


def test_separate_heads_predict_only_their_own_labels(tmp_path, tiny_bert_dir):
    a, c = _task_files(tmp_path, "a", SENTIMENT_A), _task_files(tmp_path, "c", INTENTS)
    tasks = continual.load_tasks([a[0], c[0]], [a[1], c[1]])
    result = _run(tiny_bert_dir, tasks, "naive", epochs=1)
    final = result.step_predictions[-1]
    for task in tasks:
        assert set(final[final["task"] == task.name]["pred"]) <= set(task.labels)


def test_ewc_keeps_one_consolidated_term_with_the_same_gradient_as_one_per_task():
    """Ten finished tasks cost the memory of one: the consolidated term's gradient is the sum of the tasks' terms'."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    terms = [
        {n: (torch.rand_like(p) * (torch.rand_like(p) > 0.3), torch.randn_like(p)) for n, p in model.named_parameters()}
        for _ in range(10)
    ]
    merged = None
    for term in terms:
        merged = continual.consolidate(merged, term)
    assert set(merged) == {n for n, _ in model.named_parameters()} and all(len(v) == 2 for v in merged.values())

    def grads(ts):
        model.zero_grad()
        continual.ewc_penalty(model, ts).backward()
        return [p.grad.clone() for p in model.parameters()]

    for got, want in zip(grads([merged]), grads(terms), strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
