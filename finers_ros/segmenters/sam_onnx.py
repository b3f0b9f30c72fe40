"""SAM prompt encoder + mask decoder in ONNX Runtime (graph from ``sam_export``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxRuntimeDecoder:
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0):
        import onnxruntime as ort

        path = Path(path or "")
        if not path.is_file():
            raise FileNotFoundError(f"SAM decoder ONNX file not found: {path}")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def decode(self, embedding, coords, labels, crop_hw):
        feeds = {
            "image_embeddings": embedding.detach().float().cpu().numpy(),
            "point_coords": coords[None].astype(np.float32),
            "point_labels": labels[None].astype(np.float32),
            "crop_like": np.zeros(tuple(crop_hw), np.uint8),
        }
        masks, iou = self.session.run(["masks", "iou_predictions"], feeds)
        return masks[0], iou[0]
