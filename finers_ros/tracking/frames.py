"""
A camera frame as the tracker sees it: windows cut on demand, no whole-frame copy.

``FrameView`` wraps an ``H x W x 3 uint8`` array in RGB or BGR channel order (a zero-copy
view of a ROS message's buffer, for example); ``window`` copies and converts only the
requested window to RGB.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..geometry import Box, Size


class FrameView:
    """One frame's pixels, ``H x W x 3 uint8``, channel order ``"rgb"`` or ``"bgr"``."""

    def __init__(self, pixels: np.ndarray, order: str = "rgb"):
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected H x W x 3 uint8, got {pixels.shape} {pixels.dtype}")
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order={order!r}: expected 'rgb' or 'bgr'")
        self.pixels = pixels
        self.order = order

    @property
    def size(self) -> Size:
        """``(W, H)`` native pixels."""
        return (int(self.pixels.shape[1]), int(self.pixels.shape[0]))

    def clip_window(self, box: Box) -> Tuple[int, int, int, int]:
        """Half-open integer window ``(x0, y0, x1, y1)`` covering ``box``, inside the frame."""
        width, height = self.size
        x0 = int(np.clip(np.floor(box[0]), 0, width))
        y0 = int(np.clip(np.floor(box[1]), 0, height))
        x1 = int(np.clip(np.floor(box[2]) + 1, x0, width))
        y1 = int(np.clip(np.floor(box[3]) + 1, y0, height))
        return x0, y0, x1, y1

    def window(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Return the RGB pixels of the half-open box (a fresh ``h x w x 3`` array, clipped)."""
        width, height = self.size
        x0, x1 = max(0, x0), min(width, x1)
        y0, y1 = max(0, y0), min(height, y1)
        part = self.pixels[y0:max(y0, y1), x0:max(x0, x1)]
        if self.order == "bgr":
            return np.ascontiguousarray(part[:, :, ::-1])
        return np.array(part, order="C")
