"""The interface every GSE/LPR backend implements."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Protocol

import numpy as np


@dataclass
class Generation:
    """
    What a vision-language model said, and what it cost.

    ``prefill_seconds`` / ``decode_seconds`` split ``seconds`` when the backend can measure
    them (prompt processing up to the first token, then the rest); None otherwise.
    ``truncated``: generation stopped at ``max_new_tokens`` before the answer was complete.
    ``timings_ms``: further times the backend measured (a model server: ``network``, the
    server's ``server_queue`` / ``server_prefill`` / ``server_decode``), milliseconds.
    """

    text: str
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    prefill_seconds: Optional[float] = None
    decode_seconds: Optional[float] = None
    truncated: bool = False
    timings_ms: Dict[str, float] = field(default_factory=dict)


class VisionLanguageModel(Protocol):
    """
    A vision-language model answering one stage's prompt about one image.

    ``generate`` takes an ``H x W x 3 uint8 RGB`` image already in the stage's nominal
    frame (GSE: the whole frame; LPR: the crop) and the stage's prompt text.

    A backend that can use where GSE looked sets ``uses_focus = True`` and accepts
    ``generate(image, prompt, focus=(x, y))``: the GSE region's centre in the LPR frame.
    The checkpoints see only the crop and do not take it.
    """

    name: str

    def generate(self, image: np.ndarray, prompt: str) -> Generation: ...

    def close(self) -> None: ...
