"""
A resumed run continues from the checkpoint's weights, not from the base model's.

The Trainer reloads ``checkpoint-N/model.safetensors`` with a plain ``load_state_dict``;
Qwen2.5-VL's checkpoints are saved under other names than its modules carry in
transformers 5 (``visual.*``, ``model.layers.*`` against ``model.visual.*``,
``model.language_model.layers.*``), so nearly every weight stayed at the base model's value
while the optimizer state came from the trained run.
"""

import dataclasses
import json

import pytest

from finers_ros.data.synthetic import SceneConfig, write_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_resumed_run_starts_from_the_checkpoint_weights(tiny_qwen_dir, tmp_path, monkeypatch):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from finers_training.config import TrainConfig
    from finers_training.train import train

    annotations = write_dataset(
        tmp_path / "scenes", 2, seed=4, config=SceneConfig(width=640, height=480)
    )
    config = TrainConfig(
        stage="lpr", base_model=str(tiny_qwen_dir), annotations=str(annotations),
        output_dir=str(tmp_path / "run"), num_generations=2, per_device_train_batch_size=2,
        gradient_accumulation_steps=1, max_steps=1, max_completion_length=4, save_steps=1,
        learning_rate=1e-2, beta=0.0, report_to=[],
    )
    train(config)
    checkpoint = tmp_path / "run" / "checkpoint-1"
    trained = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(checkpoint)).state_dict()
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(tiny_qwen_dir)).state_dict()
    assert any((trained[k] - base[k]).abs().max() > 0 for k in base)  # the step moved weights

    from transformers import TrainerCallback

    from finers_training import train as train_module

    seen = {}

    class FirstWeights(TrainerCallback):
        """Keep the weights the resumed run starts its first step from."""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    real = train_module.build_trainer

    def watched(*args, **kwargs):
        trainer = real(*args, **kwargs)
        trainer.add_callback(FirstWeights())
        return trainer

    monkeypatch.setattr(train_module, "build_trainer", watched)
    train(dataclasses.replace(config, max_steps=2))  # resumes from checkpoint-1
    assert set(seen) == set(trained)
    moved_back = [k for k in trained if not bool((seen[k] == trained[k]).all())]
    assert not moved_back, f"{len(moved_back)} of {len(trained)} weights are not the checkpoint's"
    hashes = json.loads((tmp_path / "run" / "finers_train_hashes.json").read_text())
    assert hashes["steps"] == 2
