"""Builds the segmenter a configuration names."""
from __future__ import annotations

from ..config import SegmenterConfig
from .base import Segmenter


def build_segmenter(config: SegmenterConfig) -> Segmenter:
    if config.backend == "bringup":
        from .bringup import BringupSegmenter

        return BringupSegmenter()
    from .sam import SamSegmenter
    from .sam_model import load_sam
    from .sam_runtimes import build_decoder, build_encoder

    sam = load_sam(config.model_type, config.checkpoint, config.device)
    encoder = None if config.encoder_runtime == "torch" else build_encoder(config, sam)
    return SamSegmenter(sam, build_decoder(config, sam), encoder)
