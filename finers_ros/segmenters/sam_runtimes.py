"""
Chooses SAM's encoder and decoder runtimes from the configuration, with the fallback.

``tensorrt`` loads an engine built offline by ``finers-build-engines``; when TensorRT, a
CUDA device or the engine is missing, ``tensorrt_fallback: onnxruntime`` runs the same ONNX
graph in ONNX Runtime (CUDA provider when present, then CPU) and logs why once;
``tensorrt_fallback: none`` makes it an error. The chosen runtime keeps ``fallback_reason``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..config import SegmenterConfig

LOG = logging.getLogger(__name__)


def cache_dir(config: SegmenterConfig, onnx_path) -> Path:
    """``engine_cache``, or the ONNX file's own directory when it is not set."""
    return Path(config.engine_cache) if config.engine_cache else Path(onnx_path or ".").parent


def _engine_or_fallback(part: str, config: SegmenterConfig, make_trt, make_ort):
    from .engine_cache import EngineNotBuilt
    from .sam_tensorrt import TensorRTUnavailable

    try:
        return make_trt()
    except (TensorRTUnavailable, EngineNotBuilt) as exc:
        if config.tensorrt_fallback != "onnxruntime":
            raise
        runtime = make_ort()
        reason = (f"SAM {part}: TensorRT not used ({exc}); "
                  f"running ONNX Runtime {runtime.providers[0]}")
        LOG.warning(reason)
        runtime.fallback_reason = reason
        return runtime


def build_encoder(config: SegmenterConfig, sam):
    """Return an object with ``embed(crop) -> 1 x C x 64 x 64 tensor``."""
    from .sam_encoder import OnnxRuntimeEncoder, TorchEncoder

    def onnxruntime(device=config.device):
        return OnnxRuntimeEncoder(sam, config.encoder_onnx, device, config.ort_threads,
                                  config.ort_graph_optimization)

    if config.encoder_runtime == "torch":
        return TorchEncoder(sam)
    if config.encoder_runtime == "onnxruntime":
        return onnxruntime()

    def tensorrt():
        from .sam_tensorrt import TensorRTEncoder

        return TensorRTEncoder(sam, config.encoder_onnx, cache_dir(config, config.encoder_onnx),
                               config.tensorrt_precision)

    return _engine_or_fallback("encoder", config, tensorrt, lambda: onnxruntime("cuda"))


def build_decoder(config: SegmenterConfig, sam):
    """Return an object with ``decode(embedding, coords, labels, crop_hw)``."""
    from .sam import TorchDecoder
    from .sam_onnx import OnnxRuntimeDecoder

    def onnxruntime(device=config.device):
        return OnnxRuntimeDecoder(config.decoder_onnx, device, config.ort_threads,
                                  config.ort_graph_optimization)

    if config.runtime == "torch":
        return TorchDecoder(sam)
    if config.runtime == "onnxruntime":
        return onnxruntime()

    def tensorrt():
        from .sam_tensorrt import TensorRTDecoder

        return TensorRTDecoder(config.decoder_onnx, cache_dir(config, config.decoder_onnx),
                               config.tensorrt_precision)

    return _engine_or_fallback("decoder", config, tensorrt, lambda: onnxruntime("cuda"))
