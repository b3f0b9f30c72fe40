"""SAM prompt encoder + mask decoder in ONNX Runtime (graph from ``sam_export``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .ort_session import open_session


class OnnxRuntimeDecoder:
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0,
                 graph_optimization: str = "all"):
        path = Path(path or "")
        if not path.is_file():
            raise FileNotFoundError(f"SAM decoder ONNX file not found: {path}")
        self.session = open_session(path, device, threads, graph_optimization)
        self.providers = self.session.get_providers()

    def decode(self, embedding, coords, labels, crop_hw):
        if hasattr(embedding, "detach"):  # a torch tensor from the torch encoder
            embedding = embedding.detach().float().cpu().numpy()
        feeds = {
            "image_embeddings": np.ascontiguousarray(embedding, np.float32),
            "point_coords": coords[None].astype(np.float32),
            "point_labels": labels[None].astype(np.float32),
            "crop_like": np.zeros(tuple(crop_hw), np.uint8),
        }
        masks, iou = self.session.run(["masks", "iou_predictions"], feeds)
        return masks[0], iou[0]
