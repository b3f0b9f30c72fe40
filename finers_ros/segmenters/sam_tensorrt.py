"""SAM prompt encoder + mask decoder as a TensorRT engine built from the same ONNX graph.

TensorRT cannot be installed on the development or CI machines, so this module is
import-guarded and untested there: it is written against the TensorRT 10 name-based tensor
API (``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``) with CUDA
buffers owned by torch. Everything up to it (ONNX export, ONNX Runtime parity) is tested.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import torch


def _tensorrt():
    try:
        import tensorrt as trt  # noqa: F401
    except Exception as exc:  # ImportError, or the bindings' missing shared libraries
        raise RuntimeError(
            "segmenter.runtime=tensorrt needs NVIDIA TensorRT 10 (python bindings and libraries); "
            f"it is not importable here ({exc}). Use runtime onnxruntime or torch."
        ) from exc
    return trt


class TensorRTDecoder:
    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, max_points: int = 8,
                 crop_range: Tuple[int, int, int] = (64, 512, 2048), fp16: bool = True):
        trt = _tensorrt()
        if not torch.cuda.is_available():
            raise RuntimeError("segmenter.runtime=tensorrt needs a CUDA device")
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        engine_path = Path(onnx_path).with_suffix(".engine")
        runtime = trt.Runtime(self.logger)
        if engine_path.is_file():
            self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        else:
            serialized = self._build(Path(onnx_path), max_points, crop_range, fp16)
            engine_path.write_bytes(bytes(serialized))
            self.engine = runtime.deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()

    def _build(self, onnx_path: Path, max_points: int, crop_range, fp16: bool):
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        lo, opt, hi = crop_range
        profile.set_shape("point_coords", (1, 1, 2), (1, 4, 2), (1, max_points, 2))
        profile.set_shape("point_labels", (1, 1), (1, 4), (1, max_points))
        profile.set_shape("crop_like", (lo, lo), (opt, opt), (hi, hi))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
        return serialized

    def decode(self, embedding, coords, labels, crop_hw):
        device = torch.device("cuda")
        inputs = {
            "image_embeddings": embedding.to(device, torch.float32).contiguous(),
            "point_coords": torch.as_tensor(coords[None], dtype=torch.float32, device=device),
            "point_labels": torch.as_tensor(labels[None], dtype=torch.float32, device=device),
            "crop_like": torch.zeros(tuple(crop_hw), dtype=torch.uint8, device=device),
        }
        for name, tensor in inputs.items():
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in ("masks", "iou_predictions"):
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=torch.float32, device=device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return (outputs["masks"][0].cpu().numpy().astype(np.float32),
                outputs["iou_predictions"][0].cpu().numpy().astype(np.float32))
