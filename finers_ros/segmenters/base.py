"""The interface every segmenter implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np

from ..geometry import Box, Point


@dataclass
class Segmentation:
    mask: np.ndarray  # crop.height x crop.width bool, crop pixels
    score: Optional[float] = None  # the model's own quality estimate, if it has one


class Segmenter(Protocol):
    name: str

    def segment(self, crop: np.ndarray, box: Box, points: Sequence[Point]) -> Segmentation:
        """
        Segment the object inside ``box`` of ``crop``.

        ``crop``: ``h x w x 3 uint8 RGB``; ``box`` XYXY inclusive and ``points`` (x, y),
        both in crop pixels; every point is a positive click.
        """
        ...

    def close(self) -> None: ...
