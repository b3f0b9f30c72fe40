"""
A run started again keeps nothing of a run it does not continue.

A run killed before its first complete checkpoint starts over: the dead run's ``log.jsonl``
steps and its ``best/`` (an evaluation of weights that no longer exist, perhaps of other
settings) must not survive into the new run. A resumed run keeps what came before its
checkpoint and drops the evaluations after it (those steps are trained again).
"""

import json

import pytest

from finers_ros.data.synthetic import SceneConfig, write_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dead_run(run, best_step):
    """Leave what a killed run leaves: log lines, best/ and eval/ of step ``best_step``."""
    (run / "best").mkdir(parents=True)
    (run / "best" / "finers_best.json").write_text(json.dumps(
        {"step": best_step, "metric": "gIoU", "value": 0.9}))
    (run / "eval" / f"step-{best_step}").mkdir(parents=True)
    (run / "log.jsonl").write_text("".join(
        json.dumps({"step": step, "loss": 99.0, "dead_run": True}) + "\n"
        for step in range(1, 4)))


def test_a_fresh_start_clears_the_dead_run_and_a_resume_its_later_evaluations(
        tiny_qwen_dir, tmp_path):
    from finers_training.config import TrainConfig
    from finers_training.train import train

    annotations = write_dataset(
        tmp_path / "scenes", 2, seed=4, config=SceneConfig(width=640, height=480))
    run = tmp_path / "run"
    dead_run(run, best_step=1)  # killed before checkpoint-1 was complete
    (run / "checkpoint-1").mkdir()  # cut off while saving: no trainer_state.json
    config = TrainConfig(
        stage="lpr", base_model=str(tiny_qwen_dir), annotations=str(annotations),
        output_dir=str(run), num_generations=2, per_device_train_batch_size=2,
        gradient_accumulation_steps=1, max_steps=1, max_completion_length=4, save_steps=1,
        beta=0.0, report_to=[])
    train(config)
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged and not any(entry.get("dead_run") for entry in logged)
    assert not (run / "best").exists() and not (run / "eval" / "step-1").exists()

    (run / "log.jsonl").unlink()
    dead_run(run, best_step=3)  # evaluated after checkpoint-1, then killed
    train(config)  # resumes from checkpoint-1
    assert not (run / "best").exists() and not (run / "eval" / "step-3").exists()
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged if entry.get("dead_run")] == [1]
