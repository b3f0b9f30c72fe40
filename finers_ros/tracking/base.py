"""
The interface every tracker implements, and what one tracker update returns.

A tracker is seeded once from a FineRS answer (the frame it was answered on, the box and
the full-resolution mask) and then updated with each newer frame. Coordinates are native
pixels of the camera frame; boxes are XYXY inclusive, top-left origin (see ``geometry``).
A tracker reads only the windows it needs from a frame (``FrameView.window``), never the
whole frame.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from ..geometry import Box
from .frames import FrameView


class TrackState(str, enum.Enum):
    """Where a track stands after an update."""

    TRACKING = "tracking"    # the target was seen in this frame; box and mask are valid
    SEARCHING = "searching"  # not seen in this frame; the search window is widening
    LOST = "lost"            # not seen for ``lost_after`` frames; still searched for
    ENDED = "ended"          # stopped (by a client, max age, an error): no more updates


@dataclass
class TrackUpdate:
    """
    One tracker step on one frame.

    ``box``: XYXY inclusive native pixels (the last known box when not tracking).
    ``mask``: ``h x w`` bool inside ``mask_roi`` = ``(x0, y0, w, h)`` native pixels, or None
    when not tracking. ``confidence``: 0..1, the tracker's own belief that ``box`` is the
    target. ``reason``: one line when the state is not TRACKING (why searching, lost, ended).
    """

    state: TrackState
    box: Optional[Box]
    confidence: float
    mask: Optional[np.ndarray] = None
    mask_roi: tuple = (0, 0, 0, 0)
    reason: str = ""

    @property
    def tracking(self) -> bool:
        """Return True when this frame's box and mask are valid."""
        return self.state is TrackState.TRACKING

    def full_mask(self, size) -> np.ndarray:
        """Return the mask as ``H x W`` bool over a ``(W, H)`` frame (all False if none)."""
        width, height = size
        full = np.zeros((height, width), bool)
        if self.mask is not None:
            x0, y0, w, h = self.mask_roi
            full[y0:y0 + h, x0:x0 + w] = self.mask
        return full


class TrackerError(RuntimeError):
    """A tracker that cannot go on (a frame of another size, a seed with no pixels)."""


class Tracker(Protocol):
    """Follows one target from frame to frame; one instance per target."""

    name: str

    def seed(self, frame: FrameView, box: Box, mask: Optional[np.ndarray]) -> TrackUpdate:
        """
        Start on ``frame`` where the target is ``box`` with ``mask`` (``H x W`` bool, or None).

        Raises ``TrackerError`` when the seed cannot be tracked (empty box, off the frame).
        """
        ...

    def update(self, frame: FrameView) -> TrackUpdate:
        """Find the target in the next frame (frames in time order)."""
        ...

    def close(self) -> None:
        """Free what the tracker holds (models, buffers)."""
        ...
