"""
A small LoRA update survives the merge: merged in fp32, checked against the base.

A bf16 base (what a bf16 LoRA run trains on) rounds an lr-1e-5 update away when the
adapters are merged into it; the saved checkpoint would be the base.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from finers_ros.data.synthetic import SceneConfig, write_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_update_model(base_dir):
    """Wrap the tiny Qwen in bf16 with LoRA adapters whose B holds a small, non-zero update."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(base_dir), dtype=torch.bfloat16, local_files_only=True)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    generator = torch.Generator().manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data = 1e-5 * torch.randn(parameter.shape, generator=generator)
    return model


def test_a_bf16_merge_loses_the_update_and_the_check_says_so(tiny_qwen_dir):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from finers_training.lora import adapters_fp32, check_update_kept, lora_updates, merged_copy

    model = small_update_model(tiny_qwen_dir)
    adapters = adapters_fp32(model, zero3=False)
    merged = merged_copy(model, tiny_qwen_dir, adapters)
    assert merged.dtype == torch.float32
    # each merged weight is the fp32 base plus scale x B @ A, to fp32 rounding
    base = dict(Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(tiny_qwen_dir), dtype=torch.float32, local_files_only=True).named_parameters())
    weights = dict(merged.named_parameters())
    updates = lora_updates(model)
    assert updates and all(".q_proj.weight" in name for name in updates)
    for name, (_, update) in updates.items():
        assert update.abs().max() > 0
        applied = (weights[name] - base[name]).detach()
        assert (applied - update).norm() < 1e-2 * update.norm()  # fp32 rounding of 0.02 + 3e-6
    # the merge peft does in place on the bf16 weights: most of the update rounds away
    with pytest.raises(RuntimeError, match="lost .*% of the trained update"):
        check_update_kept(model.merge_and_unload(), updates)


def test_a_bf16_lora_run_saves_the_trained_update(tiny_qwen_dir, tmp_path):
    from finers_training.config import TrainConfig
    from finers_training.train import train

    annotations = write_dataset(tmp_path / "scenes", 2, seed=4,
                                config=SceneConfig(width=640, height=480))
    val = write_dataset(tmp_path / "val", 1, seed=8, config=SceneConfig(width=640, height=480))
    config = TrainConfig(stage="lpr", base_model=str(tiny_qwen_dir),
                         annotations=str(annotations), output_dir=str(tmp_path / "run"),
                         num_generations=2, per_device_train_batch_size=2,
                         gradient_accumulation_steps=1, max_steps=1, max_completion_length=6,
                         save_steps=1, lora=True, lora_r=4, lora_alpha=8, bf16="true",
                         report_to=[], beta=0.0, eval_annotations=str(val), eval_steps=1)
    assert config.learning_rate == 1e-5  # LoRA's own default
    out = train(config)
    trained, base = load_file(out / "model.safetensors"), load_file(
        tiny_qwen_dir / "model.safetensors")
    moved = [name for name in base if "q_proj.weight" in name
             and not torch.equal(trained[name].float(), base[name].float())]
    assert moved, "the saved LoRA run equals its base"
    others = [name for name in base if "proj" not in name]
    assert all(torch.equal(trained[n].float(), base[n].float()) for n in others)
    assert np.isfinite([trained[n].float().sum().item() for n in moved]).all()
    # the evaluation merged a copy: the run went on with its adapters and kept the same update
    best = load_file(out / "best" / "model.safetensors")
    assert all(torch.equal(best[name], trained[name]) for name in base)
