"""
Drawing one tracked frame for people: every track's mask, box and state on the frame.

Only the downscaled frame is converted and drawn on: a 4K frame costs one nearest-neighbour
shrink of the message's own buffer, and each mask is tinted from its ROI, never expanded to
a whole-frame mask.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..overlay import tint_mask
from .base import TrackState
from .frames import FrameView

STATE_COLOURS = {  # RGB: box colour by state
    TrackState.TRACKING: (0, 255, 0),
    TrackState.SEARCHING: (255, 200, 0),
    TrackState.LOST: (255, 40, 40),
    TrackState.ENDED: (160, 160, 160),
}


def draw_tracked_frame(view: FrameView, tracks: Sequence[tuple], max_width: int = 1280
                       ) -> np.ndarray:
    """
    Overlay ``h x w x 3 uint8 RGB`` (``w <= max_width``) of one frame and its tracks.

    ``tracks``: ``(label, TrackUpdate)`` pairs for this frame. A tracking update shows its
    tinted mask and box; searching or lost ones their last known box in the state's colour.
    """
    width, height = view.size
    scale = min(1.0, max_width / float(width))
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    shrink = cv2.INTER_AREA if scale >= 0.5 else cv2.INTER_NEAREST
    canvas = cv2.resize(view.pixels, size, interpolation=shrink)
    if view.order == "bgr":
        canvas = np.ascontiguousarray(canvas[:, :, ::-1])
    font_scale = max(0.45, size[0] / 1800.0)
    for label, update in tracks:
        colour = STATE_COLOURS.get(update.state, STATE_COLOURS[TrackState.ENDED])
        if update.tracking and update.mask is not None:
            tint_mask(canvas, update.mask, update.mask_roi[:2], view.size)
        if update.box is None:
            continue
        x1, y1, x2, y2 = (int(round(v * scale)) for v in update.box)
        pad = 3
        cv2.rectangle(canvas, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), colour,
                      max(1, int(round(2 * max(scale, 0.5)))))
        text = f"{label} {update.state.value} {update.confidence:.2f}"
        (_, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                                     font_scale, 1)
        above = y1 - pad - 4
        # no room above the box (a target at the top edge): the label goes under it
        y = above if above - text_height >= 0 else y2 + pad + 4 + text_height
        cv2.putText(canvas, text, (max(0, x1 - pad), y), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    colour, 1, cv2.LINE_AA)
    return canvas
