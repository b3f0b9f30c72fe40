"""Builds the tracker a configuration names (same pattern as stages and segmenters)."""
from __future__ import annotations

from .base import Tracker
from .config import TrackerConfig


def build_tracker(config: TrackerConfig | None = None) -> Tracker:
    """Build a fresh tracker for one target (``template`` unless the config says ``sam2``)."""
    config = (config or TrackerConfig()).validate()
    if config.backend == "sam2":
        from .sam2_tracker import Sam2Tracker

        return Sam2Tracker(config)
    from .template import TemplateTracker

    return TemplateTracker(config)
