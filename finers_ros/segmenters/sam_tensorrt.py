"""
SAM encoder and decoder as TensorRT engines built from the same ONNX graphs.

TensorRT cannot be installed on the development or CI machines: ``tensorrt`` is imported
only here, through ``require_tensorrt``, which raises ``TensorRTUnavailable`` with what to
install and what to configure instead. The code follows the TensorRT 10 Python API:
``build_serialized_network`` with one optimisation profile over the dynamic axes, and the
name-based tensor API (``num_io_tensors``/``get_tensor_name``/``set_input_shape``/
``set_tensor_address``/``execute_async_v3``) with CUDA buffers owned by torch. Engines are
built offline (``finers-build-engines``) into the cache of ``engine_cache``; a runtime only
deserialises them and never builds on a request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from .engine_cache import EngineKey, EngineNotBuilt, engine_path, read_engine, write_engine

Shape = Tuple[int, ...]
# Optimisation profiles (min, opt, max) per input; every other input is static.
DECODER_PROFILE: Dict[str, Tuple[Shape, Shape, Shape]] = {
    "point_coords": ((1, 1, 2), (1, 4, 2), (1, 8, 2)),
    "point_labels": ((1, 1), (1, 4), (1, 8)),
    "crop_like": ((64, 64), (512, 512), (2048, 2048)),
}


def encoder_profile(side: int = 1024, max_batch: int = 1) -> Dict[str, Tuple[Shape, Shape, Shape]]:
    return {"image": ((1, 3, side, side), (1, 3, side, side), (max_batch, 3, side, side))}


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA device for it) is not there."""


def require_tensorrt():
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or the bindings' missing shared libraries
        raise TensorRTUnavailable(
            "runtime tensorrt needs NVIDIA TensorRT 10 (pip install tensorrt-cu12, or the "
            f"JetPack/apt python3-libnvinfer bindings); it is not importable here ({exc}). "
            "Set segmenter.tensorrt_fallback: onnxruntime (ONNX Runtime CUDA, then CPU) or "
            "choose runtime onnxruntime or torch."
        ) from exc
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("runtime tensorrt needs a CUDA device; none is visible")
    return trt


def current_key(trt, onnx_path: str | Path, precision: str, device: int = 0) -> EngineKey:
    gpu = torch.cuda.get_device_name(device)
    return EngineKey.for_onnx(onnx_path, trt.__version__, gpu, precision)


def build_engine(onnx_path: str | Path, profile_shapes, precision: str, cache_dir: str | Path,
                 workspace_gib: float = 4.0) -> Path:
    """Build and cache an engine for ``onnx_path`` (offline: called by finers-build-engines)."""
    trt = require_tensorrt()
    onnx_path = Path(onnx_path)
    key = current_key(trt, onnx_path, precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    return write_engine(engine_path(cache_dir, onnx_path, key), bytes(serialized), key)


class TensorRTEngine:
    """A cached engine and one execution context; ``run`` takes and returns tensors by name."""

    def __init__(self, onnx_path: str | Path, cache_dir: str | Path | None, precision: str):
        trt = require_tensorrt()
        self.trt = trt
        cache_dir = Path(onnx_path).parent if cache_dir is None else cache_dir
        key = current_key(trt, onnx_path, precision)
        self.path = engine_path(cache_dir, onnx_path, key)
        serialized = read_engine(self.path, key)  # EngineNotBuilt: never built on a request
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:  # damaged, or a TensorRT build the key cannot tell apart
            raise EngineNotBuilt(f"TensorRT could not deserialise {self.path}; "
                                 "rebuild it with finers-build-engines")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.stream = torch.cuda.Stream()

    def _torch_dtype(self, name: str):
        numpy_type = self.trt.nptype(self.engine.get_tensor_dtype(name))
        return torch.from_numpy(np.empty(0, numpy_type)).dtype

    def run(self, feeds: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ValueError(f"TensorRT engine {self.path.name} needs inputs {sorted(missing)}")
        device = torch.device("cuda")
        keep = {}
        for name in self.inputs:
            tensor = feeds[name].to(device, self._torch_dtype(name)).contiguous()
            keep[name] = tensor
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            keep[name] = torch.empty(shape, dtype=self._torch_dtype(name), device=device)
            self.context.set_tensor_address(name, keep[name].data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution of {self.path.name} failed")
        self.stream.synchronize()
        return {name: keep[name] for name in self.outputs}


class TensorRTDecoder:
    """Prompt encoder + mask decoder engine (same graph and I/O as ``OnnxRuntimeDecoder``)."""

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, cache_dir: str | Path | None = None,
                 precision: str = "fp16"):
        self.engine = TensorRTEngine(onnx_path, cache_dir, precision)

    def decode(self, embedding, coords, labels, crop_hw):
        out = self.engine.run({
            "image_embeddings": torch.as_tensor(embedding, dtype=torch.float32),
            "point_coords": torch.as_tensor(coords[None], dtype=torch.float32),
            "point_labels": torch.as_tensor(labels[None], dtype=torch.float32),
            "crop_like": torch.zeros(tuple(crop_hw), dtype=torch.uint8),
        })
        return (out["masks"][0].float().cpu().numpy(),
                out["iou_predictions"][0].float().cpu().numpy())


class TensorRTEncoder:
    """Image encoder engine: same preprocessing and output as ``OnnxRuntimeEncoder``."""

    name = "tensorrt"

    def __init__(self, sam, onnx_path: str | Path, cache_dir: str | Path | None = None,
                 precision: str = "fp16"):
        self.sam = sam
        self.engine = TensorRTEngine(onnx_path, cache_dir, precision)

    def embed(self, crop: np.ndarray) -> torch.Tensor:
        from .sam_encoder import encoder_input

        out = self.engine.run({"image": torch.from_numpy(encoder_input(self.sam, crop))})
        return out["image_embeddings"].float()
