"""
Weight-free segmentation: colour-region growing seeded by the LPR box and points.

The seed colour is the median CIELAB colour around the points; pixels near the box whose
colour distance to the seed falls below an Otsu threshold (found inside the box) and that
connect to a point form the mask, holes filled.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..geometry import Box, Point
from .base import Segmentation


class BringupSegmenter:
    name = "bringup"

    def __init__(self, margin: float = 0.25, min_threshold: float = 10.0,
                 max_threshold: float = 45.0):
        self.margin = margin
        self.min_threshold = min_threshold
        self.max_threshold = max_threshold

    def segment(self, crop: np.ndarray, box: Box, points: Sequence[Point]) -> Segmentation:
        height, width = crop.shape[:2]
        mask = np.zeros((height, width), bool)
        x1, y1, x2, y2 = box
        pad = max(4.0, self.margin * max(x2 - x1 + 1, y2 - y1 + 1))
        wx1, wy1 = int(max(0, np.floor(x1 - pad))), int(max(0, np.floor(y1 - pad)))
        wx2, wy2 = int(min(width - 1, np.ceil(x2 + pad))), int(min(height - 1, np.ceil(y2 + pad)))
        if wx2 < wx1 or wy2 < wy1:
            return Segmentation(mask, 0.0)
        window = cv2.GaussianBlur(crop[wy1:wy2 + 1, wx1:wx2 + 1], (3, 3), 0)
        lab = cv2.cvtColor(window, cv2.COLOR_RGB2LAB).astype(np.float32)
        seeds = [(int(round(px - wx1)), int(round(py - wy1))) for px, py in points]
        seeds = [(x, y) for x, y in seeds if 0 <= x < lab.shape[1] and 0 <= y < lab.shape[0]]
        if not seeds:
            return Segmentation(mask, 0.0)
        samples = np.concatenate(
            [lab[max(0, y - 1):y + 2, max(0, x - 1):x + 2].reshape(-1, 3) for x, y in seeds])
        distance = np.linalg.norm(lab - np.median(samples, axis=0), axis=2)
        scaled = np.clip(distance * 2.0, 0, 255).astype(np.uint8)
        otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = float(np.clip(otsu / 2.0, self.min_threshold, self.max_threshold))
        inside = (distance <= threshold).astype(np.uint8)
        count, labels = cv2.connectedComponents(inside, connectivity=8)
        keep = {int(labels[y, x]) for x, y in seeds if labels[y, x] > 0}
        region = np.isin(labels, list(keep)) if keep else np.zeros_like(inside, bool)
        region = _fill_holes(region)
        mask[wy1:wy2 + 1, wx1:wx2 + 1] = region
        contrast = float(np.median(distance[~region])) if (~region).any() else 0.0
        score = float(min(1.0, contrast / (2 * threshold))) if region.any() else 0.0
        return Segmentation(mask, score)

    def close(self) -> None:
        pass


def _fill_holes(region: np.ndarray) -> np.ndarray:
    """Fill the background pockets that do not reach the border."""
    padded = np.pad(region.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return region | holes
