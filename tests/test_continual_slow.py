"""Continual learning with the bundled MiniLM (slow, kept small): the default sequence fills the matrix, and every
step's saved model reloads and reproduces that step's accuracies."""

from __future__ import annotations

import pytest

from core import models
from core.runs import RunDir
from core.training import base, continual, finetune

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("strategy", ["naive", "lora-per-task"])
def test_default_sequence_on_minilm_saves_models_that_reproduce_the_matrix(strategy, tmp_path):
    config = continual.ContinualConfig(
        strategy=strategy, model=models.ENCODER, epochs=1, max_train_examples=48, max_length=64, seed=0, device="cpu"
    )
    tasks = continual.load_tasks(list(continual.DEFAULT_TRAIN), list(continual.DEFAULT_EVAL), max_train_examples=48)
    run = continual.TaskRun(tmp_path / "seq").create({"kind": "continual"})
    result = continual.run_sequence(
        config, tasks, run, on_step=lambda r, i, trainer, m: continual.save_step(run, config, {}, r, i, trainer)
    )
    assert result.space.shared and len(result.matrix) == 2
    assert {h.get("task") for h in run.history().to_dict("records")} == {1, 2}
    for step in (1, 2):
        model, tokenizer = finetune.load_run_model(run.path / "steps" / str(step))
        task = tasks[step - 1]  # the task trained at this step, scored by the saved model (for LoRA: its adapter, merged)
        probs = base.predict_probs(model.eval(), tokenizer, list(task.eval["text"]), max_length=64)
        accuracy = float((probs.argmax(axis=1) == [result.space.units.index(lab) for lab in task.eval["label"]]).mean())
        assert accuracy == pytest.approx(result.matrix[step - 1][step - 1], abs=0.011)  # at most one borderline row apart
        assert RunDir(tmp_path / f"seq.step{step}").metrics["task_accuracy"][task.name] == result.matrix[step - 1][step - 1]
