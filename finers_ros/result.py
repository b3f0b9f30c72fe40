"""What one FineRS request returns: everything in native frame pixels."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .geometry import Box, CropWindow, Point


def is_count(key: str) -> bool:
    """Whether a ``timings_ms`` key holds a count (``<stage>_prompt_tokens``, ...), not ms."""
    return key.endswith("_tokens")


@dataclass
class FineRSResult:
    """
    The outcome of one request.

    ``box``/``region``: XYXY inclusive native pixels; ``points``: (x, y) native pixels;
    ``mask``: ``H x W`` bool at full resolution (None when nothing was segmented).

    ``found`` is True only with a non-empty mask. ``region`` is the GSE region clipped to the
    frame (the crop is placed on the region as the model gave it). ``timings_ms``: per stage
    (gse, lpr, segment, total) and, for backends that measure them, ``<stage>_prompt_tokens``,
    ``<stage>_generated_tokens`` (counts), ``<stage>_prefill_ms``, ``<stage>_decode_ms``.
    """

    instruction: str
    found: bool = False
    answer: str = ""
    box: Optional[Box] = None
    points: List[Point] = field(default_factory=list)
    region: Optional[Box] = None
    crop: Optional[CropWindow] = None
    mask: Optional[np.ndarray] = None
    score: Optional[float] = None
    gse_text: str = ""
    lpr_text: str = ""
    timings_ms: Dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None
    error_stage: Optional[str] = None
    backend: str = ""
    image_size: tuple = (0, 0)  # (W, H)

    @property
    def ok(self) -> bool:
        return self.error is None

    def timings_text(self) -> str:
        """``timings_ms`` for people: "gse 81 ms, ..., gse_prompt_tokens 2882"."""
        return ", ".join(f"{k} {v:.0f}" + ("" if is_count(k) else " ms")
                         for k, v in self.timings_ms.items())

    def to_json(self) -> dict:
        """JSON-ready summary (no mask pixels)."""
        def nums(values):
            return None if values is None else [round(float(v), 2) for v in values]

        return {
            "instruction": self.instruction,
            "found": self.found,
            "answer": self.answer,
            "box": nums(self.box),
            "points": [nums(p) for p in self.points],
            "region": nums(self.region),
            "crop": self.crop.as_list() if self.crop else None,
            "score": self.score,
            "mask_pixels": int(self.mask.sum()) if self.mask is not None else 0,
            "image_size": list(self.image_size),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "error": self.error,
            "error_stage": self.error_stage,
            "backend": self.backend,
            "gse_text": self.gse_text,
            "lpr_text": self.lpr_text,
        }
