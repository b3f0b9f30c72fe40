"""
Named colours as HSV ranges (OpenCV convention: H in [0, 180), S and V in [0, 256)).

The bring-up grounder classifies pixels with these ranges; the synthetic scene generator
paints objects from ``REFERENCE_RGB`` and checks each one classifies as its own name.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import cv2
import numpy as np

# name -> list of (h_lo, h_hi, s_lo, s_hi, v_lo, v_hi), inclusive bounds.
HSV_RANGES: Dict[str, List[Tuple[int, int, int, int, int, int]]] = {
    "red": [(0, 6, 130, 255, 90, 255), (172, 179, 130, 255, 90, 255)],
    "orange": [(9, 19, 150, 255, 170, 255)],
    "yellow": [(23, 34, 120, 255, 150, 255)],
    "green": [(40, 80, 110, 255, 70, 255)],
    "blue": [(100, 125, 130, 255, 80, 255)],
    "purple": [(132, 152, 90, 255, 70, 255)],
    "pink": [(158, 171, 70, 200, 170, 255)],
    "white": [(0, 179, 0, 28, 205, 255)],
    "black": [(0, 179, 0, 255, 0, 32)],
    "grey": [(0, 179, 0, 25, 95, 170)],
    "brown": [(5, 17, 120, 255, 60, 130)],
}

# Representative sRGB of each name, well inside its range (for painting scenes).
REFERENCE_RGB: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 25, 25),
    "orange": (255, 130, 10),
    "yellow": (245, 220, 30),
    "green": (30, 180, 40),
    "blue": (25, 60, 220),
    "purple": (140, 40, 190),
    "pink": (250, 120, 190),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
    "grey": (128, 128, 128),
    "brown": (110, 60, 20),
}

COLOUR_NAMES = tuple(HSV_RANGES)
SYNONYMS = {"gray": "grey", "violet": "purple", "magenta": "pink", "crimson": "red",
            "scarlet": "red", "golden": "yellow", "gold": "yellow", "silver": "grey",
            "color": None, "colour": None}


def colour_mask(rgb: np.ndarray, name: str) -> np.ndarray:
    """``H x W`` bool mask of the pixels of an ``H x W x 3 uint8 RGB`` image in colour ``name``."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    for h0, h1, s0, s1, v0, v1 in HSV_RANGES[name]:
        mask |= cv2.inRange(hsv, (h0, s0, v0), (h1, s1, v1))
    return mask > 0


def classify_rgb(rgb: Tuple[int, int, int]) -> List[str]:
    """Every colour name whose range holds one RGB value (used to validate palettes)."""
    pixel = np.array([[rgb]], np.uint8)
    return [name for name in COLOUR_NAMES if colour_mask(pixel, name)[0, 0]]
