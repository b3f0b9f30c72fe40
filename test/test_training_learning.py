"""
GRPO learns: a few dozen steps on a trivially learnable task raise the mean reward.

The task: answer with digits. The reward is the fraction of generated tokens that contain a
digit (about 6% of the tiny vocabulary, so a random model scores near 0.06). Same trainer
arguments as ``finers-train`` (``grpo_args``: constant lr from step one, KL, clip, grad
clip), a tiny random Qwen2.5-VL with a small image per prompt, higher lr and no KL so that
~40 steps suffice.
"""

import numpy as np
import pytest


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_grpo_raises_the_mean_reward_beyond_its_noise(tiny_qwen_dir, tmp_path):
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    from finers_ros.stages.qwen_vl import chat_messages
    from finers_training.config import TrainConfig
    from finers_training.train import grpo_args

    processor = AutoProcessor.from_pretrained(str(tiny_qwen_dir))
    vocab = processor.tokenizer.convert_ids_to_tokens(list(range(len(processor.tokenizer))))
    digit_ids = {i for i, token in enumerate(vocab) if any(c.isdigit() for c in token)}
    assert 0.02 < len(digit_ids) / len(vocab) < 0.2

    def digits(prompts, completions, completion_ids, **kwargs):
        return [sum(t in digit_ids for t in ids) / max(len(ids), 1) for ids in completion_ids]

    rng = np.random.default_rng(0)
    rows = [
        {
            "prompt": chat_messages(f"give me a number {i}", "You are a helpful assistant."),
            "image": Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)),
        }
        for i in range(8)
    ]
    steps = 40
    config = TrainConfig(
        output_dir=str(tmp_path),
        num_generations=8,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=1,
        max_steps=steps,
        max_completion_length=8,
        learning_rate=3e-3,
        beta=0.0,
        entropy_coef=0.0,
        save_steps=10_000,
        bf16="false",
    )
    trainer = GRPOTrainer(
        model=str(tiny_qwen_dir),
        reward_funcs=[digits],
        args=grpo_args(config, [1.0], disable_tqdm=True, save_strategy="no"),
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rewards/digits/mean" in entry]
    assert len(logs) == steps
    assert logs[0]["learning_rate"] == pytest.approx(3e-3)  # no lr-0 first update
    rewards = np.array([entry["rewards/digits/mean"] for entry in logs])
    first, last = rewards[:8], rewards[-8:]
    noise = np.sqrt(first.var(ddof=1) / len(first) + last.var(ddof=1) / len(last))
    print(
        f"mean reward first 8 steps {first.mean():.3f}, last 8 {last.mean():.3f}, "
        f"noise {noise:.3f}"
    )
    assert last.mean() - first.mean() > max(0.2, 5 * noise)
