"""
Batched greedy answers of a frozen Qwen2.5-VL checkpoint (search and online reward).

The requests are laid out exactly as the node lays them out (``chat_messages``, the same
processor, images at the nominal frame size the caller resized them to); only the
batching differs: prompts are left-padded so that one ``generate`` call answers many.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

from finers_ros.stages.qwen_vl import CheckpointError, chat_messages


def resolve_device(device: str) -> str:
    """``auto``: this process's GPU (``LOCAL_RANK`` under ``accelerate launch``), else the CPU."""
    import os

    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


REFERENCE_LPR_TOKENS = 820  # the reference LPR's max_response_length


def lpr_token_budget(checkpoint: str | Path, configured: Optional[int]) -> int:
    """
    Return the new-token budget of a frozen LPR: ``configured``, else what it was trained to write.

    A ``finers-train lpr`` run records its ``max_completion_length`` in ``finers_train.yaml``;
    another checkpoint gets the reference LPR's 820. A smaller ``configured`` budget is kept
    but said on stderr: cut answers do not parse and score 0 (in the search, every window
    then ties and the centred one wins).
    """
    import sys

    import yaml

    recipe = Path(checkpoint) / "finers_train.yaml"
    trained = REFERENCE_LPR_TOKENS
    if recipe.is_file():
        data = yaml.safe_load(recipe.read_text()) or {}
        if isinstance(data.get("max_completion_length"), int):
            trained = data["max_completion_length"]
    if configured is None:
        return trained
    if configured < trained:
        print(
            f"warning: the frozen LPR {checkpoint} may write {configured} new tokens, fewer than "
            f"the {trained} it was trained to write: answers cut short score 0",
            file=sys.stderr,
        )
    return configured


@contextlib.contextmanager
def outside_zero3() -> Iterator[None]:
    """
    Load models whole while a DeepSpeed ZeRO-3 run is registered with transformers.

    A ZeRO-3 trainer registers its config for the whole run and every ``from_pretrained``
    made meanwhile builds the model inside ZeRO-3's partitioning (each rank holds weights of
    shape ``(0,)``; a frozen model used outside the engine then fails on its first forward).
    The registration is lifted for the load and restored after.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    registered = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = registered


class FrozenModel:
    """A checkpoint directory loaded for inference only (no gradients, eval mode)."""

    def __init__(
        self,
        checkpoint: str | Path,
        system_prompt: str,
        device: str = "auto",
        max_new_tokens: int = 256,
    ):
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        path = Path(checkpoint)
        if not (path / "config.json").is_file():
            raise CheckpointError(f"not a checkpoint directory (no config.json): {path}")
        self.device = resolve_device(device)
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self.processor.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        with outside_zero3():  # the online reward's LPR loads during a ZeRO-3 run
            self.model = (
                Qwen2_5_VLForConditionalGeneration.from_pretrained(
                    str(path), dtype=dtype, local_files_only=True, use_safetensors=True
                )
                .to(self.device)
                .eval()
            )
        self.model.requires_grad_(False)

    def answer(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> List[str]:
        """One greedy answer per (``H x W x 3 uint8 RGB`` image, prompt) pair."""
        import torch
        from PIL import Image

        if not images:
            return []
        texts = [
            self.processor.apply_chat_template(
                chat_messages(p, self.system_prompt), tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
        inputs = self.processor(
            text=texts,
            images=[Image.fromarray(np.ascontiguousarray(i)) for i in images],
            return_tensors="pt",
            padding=True,
        ).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
            )
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
