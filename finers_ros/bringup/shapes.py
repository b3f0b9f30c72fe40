"""
Naming the shape of a component mask: circle, square, diamond, triangle, rectangle.

Scale-free features of the region: fill of its minimum-area rectangle, that rectangle's
aspect ratio, fill of its minimum enclosing circle and of its axis-aligned box.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

SHAPE_NAMES = ("circle", "square", "diamond", "triangle", "rectangle")


def classify_shape(mask: np.ndarray) -> Optional[str]:
    """Shape name of the largest region of a bool mask, or None when it is too small."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = float(mask.sum())
    if area < 12:
        return None
    (_, _), (w, h), _ = cv2.minAreaRect(contour)
    w, h = w + 1.0, h + 1.0  # pixel areas are inclusive
    rect_fill = area / (w * h)
    aspect = max(w, h) / min(w, h)
    _, radius = cv2.minEnclosingCircle(contour)
    circle_fill = area / (np.pi * (radius + 0.5) ** 2)
    x, y, bw, bh = cv2.boundingRect(contour)
    box_fill = area / float(bw * bh)
    if aspect > 1.6 and rect_fill > 0.75:
        return "rectangle"
    if rect_fill < 0.68:
        return "triangle"
    if circle_fill > 0.78:
        return "circle"
    return "square" if box_fill > 0.75 else "diamond"
