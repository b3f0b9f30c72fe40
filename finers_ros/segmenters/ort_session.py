"""
One place that opens ONNX Runtime sessions for the SAM graphs.

Graph optimisation level and intra-op threads come from the configuration; providers are
CUDA then CPU when ``device`` is a CUDA device and the CUDA provider is present, else CPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def providers_for(device: str) -> List[str]:
    """``["CUDAExecutionProvider", "CPUExecutionProvider"]`` on CUDA (when available), else CPU."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return providers


def open_session(path: str | Path, device: str = "cpu", threads: int = 0,
                 graph_optimization: str = "all"):
    """Open an ``InferenceSession`` on ``path``; ``threads=0`` uses every core."""
    import onnxruntime as ort

    path = Path(path or "")
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
        raise ValueError(f"graph optimisation {graph_optimization!r}: expected one of "
                         f"{GRAPH_OPTIMIZATION_LEVELS}")
    levels = ort.GraphOptimizationLevel
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": levels.ORT_DISABLE_ALL, "basic": levels.ORT_ENABLE_BASIC,
        "extended": levels.ORT_ENABLE_EXTENDED, "all": levels.ORT_ENABLE_ALL,
    }[graph_optimization]
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=providers_for(device))
