"""Builds the segmenter a configuration names."""
from __future__ import annotations

from ..config import SegmenterConfig
from .base import Segmenter


def build_segmenter(config: SegmenterConfig) -> Segmenter:
    if config.backend == "bringup":
        from .bringup import BringupSegmenter

        return BringupSegmenter()
    from .sam import SamSegmenter, TorchDecoder
    from .sam_model import load_sam

    sam = load_sam(config.model_type, config.checkpoint, config.device)
    if config.runtime == "torch":
        decoder = TorchDecoder(sam)
    elif config.runtime == "onnxruntime":
        from .sam_onnx import OnnxRuntimeDecoder

        decoder = OnnxRuntimeDecoder(config.decoder_onnx, device=config.device)
    else:
        from .sam_tensorrt import TensorRTDecoder

        decoder = TensorRTDecoder(config.decoder_onnx)
    return SamSegmenter(sam, decoder)
