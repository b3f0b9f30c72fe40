"""
What a person watches while a run trains, and the checkpoint it keeps.

A tiny LPR run with a val split: TensorBoard event files (read back with TensorBoard's own
reader) hold every reward term, KL, completion length, the val metrics at each evaluation,
the run's config and hashes and decoded completions; the best checkpoint by the val metric
is kept and loads in the node's pipeline. Also: a val split sharing a frame with training
is refused, vLLM generation reaches TRL's config, LoRA's own learning-rate default.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from finers_ros.data.synthetic import SceneConfig, write_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_run(tiny_qwen_dir, tmp_path, **given):
    from finers_training.config import TrainConfig

    train = write_dataset(tmp_path / "train", 2, seed=4, config=SceneConfig(width=640, height=480))
    val = write_dataset(tmp_path / "val", 2, seed=9, config=SceneConfig(width=640, height=480))
    values = dict(stage="lpr", base_model=str(tiny_qwen_dir), annotations=str(train),
                  eval_annotations=str(val), output_dir=str(tmp_path / "run"),
                  num_generations=2, per_device_train_batch_size=2,
                  gradient_accumulation_steps=1, max_steps=2, max_completion_length=6,
                  save_steps=2, eval_steps=1, log_completions=2)
    values.update(given)
    return TrainConfig(**values).validate()


def event_data(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_a_run_writes_tensorboard_and_keeps_its_best_checkpoint(tiny_qwen_dir, tmp_path):
    from finers_ros.config import PipelineConfig, StageConfig
    from finers_ros.pipeline import FineRSPipeline
    from finers_training.train import train

    config = small_run(tiny_qwen_dir, tmp_path)
    out = train(config)
    events = event_data(out / "tensorboard")
    scalars = set(events.Tags()["scalars"])
    for term in ("lpr_iou", "lpr_think", "lpr_format", "lpr_points", "lpr_box_l1", "lpr_text"):
        assert f"train/rewards/{term}/mean" in scalars, sorted(scalars)
    assert {"train/kl", "train/completions/mean_length", "train/reward"} <= scalars
    giou = events.Scalars("eval/gIoU")
    assert [e.step for e in giou] == [1, 2]  # every eval_steps, and after the last step
    texts = set(events.Tags()["tensors"])
    assert {"run/config/text_summary", "run/hashes/text_summary",
            "completions/text_summary"} <= texts
    hashes = events.Tensors("run/hashes/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads((out / "finers_train_hashes.json").read_text())["data_set_sha256"] in hashes
    table = events.Tensors("completions/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "| completion | lpr_iou |" in table and len(table.splitlines()) == 2 + 2

    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [line for line in logged if "eval/gIoU" in line]
    assert [line["step"] for line in evals] == [1, 2]
    assert all(e.value == pytest.approx(line["eval/gIoU"]) for e, line in zip(giou, evals))
    best = json.loads((out / "best" / "finers_best.json").read_text())
    values = [line["eval/gIoU"] for line in evals]
    assert best["value"] == max(values) and best["step"] == evals[values.index(max(values))][
        "step"]
    assert (out / "eval" / "step-2" / "metrics.json").is_file()
    # best/ carries its run's config: a search with --lpr best/ writes as many tokens
    from finers_training.generation import lpr_token_budget

    assert lpr_token_budget(out / "best", None) == config.max_completion_length == 6
    assert not (out / "eval" / "candidate").exists()
    # the kept checkpoint is what the node loads
    pipeline = FineRSPipeline.from_config(PipelineConfig(lpr=StageConfig(
        backend="qwen2_5_vl", checkpoint=str(out / "best"), max_new_tokens=3)))
    result = pipeline.run(np.zeros((480, 640, 3), np.uint8), "find the red screw")
    assert isinstance(result.lpr_text, str)


def test_a_val_split_that_shares_a_frame_with_training_is_refused(tiny_qwen_dir, tmp_path):
    from finers_training.config import TrainConfigError
    from finers_training.train import train

    config = small_run(tiny_qwen_dir, tmp_path)
    config.eval_annotations = config.annotations
    with pytest.raises(TrainConfigError, match="shares 2 frame"):
        train(config)
    assert not (tmp_path / "run" / "data").exists()  # refused before anything was built


def test_report_to_none_writes_no_event_files(tiny_qwen_dir, tmp_path):
    from finers_training.train import train

    out = train(small_run(tiny_qwen_dir, tmp_path, report_to=[], eval_annotations=None,
                          max_steps=1))
    assert not (out / "tensorboard").exists() and (out / "log.jsonl").is_file()


def test_vllm_generation_is_reachable_from_the_config():
    from finers_training.config import TrainConfig, TrainConfigError, config_from_dict
    from finers_training.train import vllm_args

    server = config_from_dict({"use_vllm": True, "vllm_mode": "server",
                               "vllm_server_host": "10.0.0.2", "vllm_server_port": 8001})
    assert vllm_args(server) == {"use_vllm": True, "vllm_mode": "server",
                                 "vllm_server_host": "10.0.0.2", "vllm_server_port": 8001}
    colocate = TrainConfig(use_vllm=True, vllm_gpu_memory_utilization=0.4,
                           vllm_tensor_parallel_size=2)
    assert vllm_args(colocate) == {"use_vllm": True, "vllm_mode": "colocate",
                                   "vllm_gpu_memory_utilization": 0.4,
                                   "vllm_tensor_parallel_size": 2}
    assert vllm_args(TrainConfig()) == {}
    from finers_training.train import grpo_args

    grpo = grpo_args(server, [1.0] * 6, output_dir="unused")  # what TRL's trainer reads
    assert (grpo.use_vllm, grpo.vllm_mode, grpo.vllm_server_host, grpo.vllm_server_port) == (
        True, "server", "10.0.0.2", 8001)
    assert grpo_args(TrainConfig(), [1.0] * 6, output_dir="unused").use_vllm is False
    with pytest.raises(TrainConfigError, match="vllm_mode='remote'"):
        config_from_dict({"vllm_mode": "remote"})


def test_lora_has_its_own_learning_rate_default():
    from finers_training.config import TrainConfig, config_from_dict

    assert TrainConfig().learning_rate == 1e-6
    assert TrainConfig(lora=True).learning_rate == 1e-5
    assert config_from_dict({"lora": True, "learning_rate": 3e-5}).learning_rate == 3e-5
