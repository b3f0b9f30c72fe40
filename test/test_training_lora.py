"""finers-train's whole path with LoRA: build the set, one GRPO step, merge, save, reload."""

import json

import numpy as np
import pytest

from finers_ros.config import StageConfig
from finers_ros.data.synthetic import SceneConfig, write_dataset
from finers_ros.stages.qwen_vl import QwenVLModel


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lora_run_saves_a_merged_node_loadable_checkpoint(tiny_qwen_dir, tmp_path):
    from finers_training.config import TrainConfig
    from finers_training.train import train

    annotations = write_dataset(
        tmp_path / "scenes", 2, seed=4, config=SceneConfig(width=640, height=480)
    )
    config = TrainConfig(
        stage="lpr",
        base_model=str(tiny_qwen_dir),
        annotations=str(annotations),
        output_dir=str(tmp_path / "run"),
        num_generations=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        max_steps=1,
        max_completion_length=6,
        save_steps=1,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        learning_rate=1e-3,
    )
    out = train(config)
    assert not (out / "adapter_config.json").exists()  # merged: a plain checkpoint
    from safetensors import safe_open

    with (
        safe_open(str(out / "model.safetensors"), "pt") as trained,
        safe_open(str(tiny_qwen_dir / "model.safetensors"), "pt") as base,
    ):
        assert set(trained.keys()) == set(base.keys())  # no peft prefixes or lora_ weights left
    hashes = json.loads((out / "finers_train_hashes.json").read_text())
    assert hashes["steps"] == 1 and len(hashes["data_set_sha256"]) == 64
    model = QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(out), max_new_tokens=3))
    assert isinstance(model.generate(np.zeros((512, 512, 3), np.uint8), "find it").text, str)
