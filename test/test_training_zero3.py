"""
The frozen LPR of the online reward under a DeepSpeed ZeRO-3 run.

A ZeRO-3 trainer leaves its DeepSpeed config registered with transformers for the whole
run, and every ``from_pretrained`` made while it is registered builds the model inside
ZeRO-3's partitioning (weights of shape ``(0,)`` on each rank: the first forward fails).
The frozen LPR must load whole. ``make train-smoke`` runs the real 2-process combination.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def zero3_registered():
    """Register a ZeRO-3 config with transformers as a ZeRO-3 trainer does, for one test."""
    from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    config = HfDeepSpeedConfig(
        {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1}
    )
    assert is_deepspeed_zero3_enabled()
    yield config
    unset_hf_deepspeed_config()


def test_the_frozen_lpr_loads_whole_while_a_zero3_run_is_registered(
    tiny_qwen_dir, zero3_registered
):
    from safetensors.torch import load_file
    from transformers.integrations import is_deepspeed_zero3_enabled

    from finers_training.generation import FrozenModel

    model = FrozenModel(tiny_qwen_dir, "You are a helpful assistant.", "cpu", 3)
    assert is_deepspeed_zero3_enabled()  # the run's registration is left as it was
    saved = load_file(str(tiny_qwen_dir / "model.safetensors"))
    weights = dict(model.model.named_parameters())
    assert len(weights) == len(saved)
    for name, tensor in model.model.state_dict().items():
        if name in saved:
            assert tensor.shape == saved[name].shape, name
            assert bool((tensor == saved[name].to(tensor.dtype)).all()), name
    text = model.answer([np.zeros((56, 56, 3), np.uint8)], ["find the screw"])
    assert len(text) == 1 and isinstance(text[0], str)
