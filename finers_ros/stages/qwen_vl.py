"""Qwen2.5-VL through ``transformers``, loaded from a local checkpoint directory."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import StageConfig
from .base import Generation


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be loaded."""


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


class QwenVLModel:
    """A Qwen2.5-VL checkpoint directory (model + processor), greedy by default.

    Only local directories are accepted (``local_files_only``): nothing is fetched at run
    time. Weights load from safetensors through ``from_pretrained``.
    """

    def __init__(self, config: StageConfig):
        path = Path(config.checkpoint or "")
        if not config.checkpoint or not path.is_dir():
            raise CheckpointError(f"Qwen2.5-VL checkpoint directory not found: {config.checkpoint}")
        if not (path / "config.json").is_file():
            raise CheckpointError(f"not a checkpoint directory (no config.json): {path}")
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        self.config = config
        self.name = f"qwen2_5_vl:{path.name}"
        self.device = config.device
        try:
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                str(path),
                dtype=_torch_dtype(config.dtype, config.device),
                attn_implementation=config.attn_implementation,
                local_files_only=True,
                use_safetensors=True,
            ).to(config.device).eval()
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load Qwen2.5-VL from {path}: {exc}") from exc

    def generate(self, image: np.ndarray, prompt: str) -> Generation:
        import torch
        from PIL import Image

        messages = [
            {"role": "system", "content": [{"type": "text", "text": self.config.system_prompt}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
        ]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt")
        inputs = inputs.to(self.device)
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=self.config.do_sample,
            )
        seconds = time.perf_counter() - start
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_len:]
        answer = self.processor.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Generation(answer, int(prompt_len), int(new_tokens.numel()), seconds)

    def close(self) -> None:
        self.model = None
        self.processor = None
