"""
SAM image encoder runtimes: the crop's embedding in PyTorch or ONNX Runtime.

Both share one preprocessing (``encoder_input``): SAM's ``ResizeLongestSide`` to the
encoder's side (1024), pixel normalisation, zero padding at the bottom and right, giving a
``1 x 3 x S x S`` float32 tensor in SAM's input frame. ``embed`` returns the
``1 x C x 64 x 64`` embedding as a CPU (or CUDA) torch tensor, the type every decoder takes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .ort_session import open_session


def encoder_input(sam, crop: np.ndarray) -> np.ndarray:
    """``h x w x 3 uint8 RGB`` crop -> ``1 x 3 x S x S float32`` normalised, padded input."""
    from segment_anything.utils.transforms import ResizeLongestSide

    side = sam.image_encoder.img_size
    resized = ResizeLongestSide(side).apply_image(np.ascontiguousarray(crop))
    mean = sam.pixel_mean.detach().cpu().numpy().reshape(1, 1, 3)
    std = sam.pixel_std.detach().cpu().numpy().reshape(1, 1, 3)
    normalised = (resized.astype(np.float32) - mean) / std
    padded = np.zeros((side, side, 3), np.float32)
    padded[: resized.shape[0], : resized.shape[1]] = normalised
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None])


class TorchEncoder:
    name = "torch"

    def __init__(self, sam):
        self.sam = sam

    @torch.inference_mode()
    def embed(self, crop: np.ndarray) -> torch.Tensor:
        device = next(self.sam.image_encoder.parameters()).device
        image = torch.from_numpy(encoder_input(self.sam, crop)).to(device)
        return self.sam.image_encoder(image)


class OnnxRuntimeEncoder:
    """The exported encoder graph (fp32, or dynamically quantised int8) in ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, sam, path: str | Path, device: str = "cpu", threads: int = 0,
                 graph_optimization: str = "all"):
        path = Path(path or "")
        if not path.is_file():
            raise FileNotFoundError(f"SAM encoder ONNX file not found: {path}")
        self.sam = sam
        self.session = open_session(path, device, threads, graph_optimization)
        self.providers = self.session.get_providers()

    def embed(self, crop: np.ndarray) -> torch.Tensor:
        feeds = {"image": encoder_input(self.sam, crop)}
        (embedding,) = self.session.run(["image_embeddings"], feeds)
        return torch.from_numpy(embedding)
