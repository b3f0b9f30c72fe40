"""Qwen2.5-VL through ``transformers``, loaded from a local checkpoint directory."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import StageConfig
from ..parsing import has_final_answer
from .base import Generation


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be loaded."""


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def chat_messages(prompt: str, system_prompt: str) -> list:
    """
    Return the chat of one stage request.

    A system turn, then one user turn with the image placeholder before the text. Training
    (finers_training) builds its prompts with this too.
    """
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
    ]


ANSWER_END = "</answer>"
# Answer-only mode: the assistant turn starts with an empty reasoning block and an open
# answer tag, so the model writes the JSON at once (fewer tokens, no reasoning).
ANSWER_ONLY_PREFIX = "<think> </think><answer>"


def answer_is_complete(text: str) -> bool:
    """
    Tell whether ``text`` holds the final ``</answer>``, by the parser's own rule.

    The rule (``parsing.has_final_answer``): an answer block closed after the reasoning, tags in
    any case. A model that quotes the prompt's template while thinking writes an ``</answer>``
    inside ``<think>``; generation must not stop there.
    """
    return has_final_answer(text)


class AnswerWatch:
    """
    A ``transformers`` stopping criterion that ends generation at the final ``</answer>``.

    It ends generation as soon as the final ``</answer>`` is out, and notes when the first
    token arrived (end of prefill).

    Each call decodes the tokens generated so far (batch of one); ``prefix`` is text the
    prompt already put in the answer (answer-only mode).
    """

    def __init__(self, tokenizer, prompt_len: int, prefix: str = ""):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.prefix = prefix
        self.first_token_at = None

    def __call__(self, input_ids, scores=None, **kwargs):
        import torch

        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        # Only a token holding '>' can complete "</answer>": skip the full decode otherwise.
        done = ">" in self.tokenizer.decode(input_ids[0, -1:], skip_special_tokens=True)
        if done:
            generated = self.tokenizer.decode(
                input_ids[0, self.prompt_len:], skip_special_tokens=True
            )
            done = answer_is_complete(self.prefix + generated)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class QwenVLModel:
    """
    A Qwen2.5-VL checkpoint directory (model + processor), greedy by default.

    Only local directories are accepted (``local_files_only``): nothing is fetched at run
    time. Weights load from safetensors through ``from_pretrained``. The image resolution
    limits come from the stage config, not from the checkpoint's preprocessor config: the
    published checkpoints were trained with 3136..12845056 pixels (2691 visual tokens for the
    1920x1080 GSE frame, 324 for the 512x512 LPR frame), and a checkpoint copied with other
    limits would otherwise see a smaller image than it was trained on.
    """

    def __init__(self, config: StageConfig):
        path = Path(config.checkpoint or "")
        if not config.checkpoint or not path.is_dir():
            raise CheckpointError(
                f"Qwen2.5-VL checkpoint directory not found: {config.checkpoint}"
            )
        if not (path / "config.json").is_file():
            raise CheckpointError(f"not a checkpoint directory (no config.json): {path}")
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        self.config = config
        self.name = f"qwen2_5_vl:{path.name}"
        self.device = config.device
        self.image_size = {"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels}
        try:
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
            self.model = (
                Qwen2_5_VLForConditionalGeneration.from_pretrained(
                    str(path),
                    dtype=_torch_dtype(config.dtype, config.device),
                    attn_implementation=config.attn_implementation,
                    local_files_only=True,
                    use_safetensors=True,
                )
                .to(config.device)
                .eval()
            )
        except Exception as exc:  # noqa: BLE001 -- loaders of untrusted files raise many types
            # (safetensors' SafetensorError for corrupt weights is neither OSError nor ValueError)
            raise CheckpointError(f"cannot load Qwen2.5-VL from {path}: {exc}") from exc

    @property
    def answer_prefix(self) -> str:
        return ANSWER_ONLY_PREFIX if self.config.answer_only else ""

    def chat_text(self, prompt: str) -> str:
        """Return the full prompt text: system turn, user turn (image, then text), assistant."""
        messages = chat_messages(prompt, self.config.system_prompt)
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return text + self.answer_prefix

    def generate(self, image: np.ndarray, prompt: str) -> Generation:
        import torch
        from PIL import Image
        from transformers import StoppingCriteriaList

        inputs = self.processor(
            text=[self.chat_text(prompt)],
            images=[Image.fromarray(image)],
            images_kwargs={"size": self.image_size},
            return_tensors="pt",
        )
        inputs = inputs.to(self.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        watch = AnswerWatch(self.processor.tokenizer, prompt_len, self.answer_prefix)
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=self.config.do_sample,
                stopping_criteria=StoppingCriteriaList([watch]),
            )
        end = time.perf_counter()
        new_tokens = output[0, prompt_len:]
        answer = self.answer_prefix + self.processor.tokenizer.decode(
            new_tokens, skip_special_tokens=True
        )
        first = watch.first_token_at or end
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos])
        ended = new_tokens.numel() > 0 and int(new_tokens[-1]) in eos
        truncated = (
            new_tokens.numel() >= self.config.max_new_tokens
            and not ended
            and not answer_is_complete(answer)
        )
        return Generation(
            answer,
            prompt_len,
            int(new_tokens.numel()),
            end - start,
            prefill_seconds=first - start,
            decode_seconds=end - first,
            truncated=truncated,
        )

    def close(self) -> None:
        self.model = None
        self.processor = None
