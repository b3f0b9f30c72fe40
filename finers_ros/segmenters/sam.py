"""
Segment Anything on the LPR crop: embed the crop once, decode box + points.

The image encoder always runs in PyTorch; the prompt encoder + mask decoder run in the
configured runtime (``TorchDecoder``, ``OnnxRuntimeDecoder``, ``TensorRTDecoder``). FineRS
prompting: the LPR box and both points as positive clicks, multimask output, the mask with
the highest predicted IoU.
"""
from __future__ import annotations

from typing import Protocol, Sequence, Tuple

import numpy as np
import torch

from ..geometry import Box, Point
from .base import Segmentation

BOX_LABELS = (2.0, 3.0)  # SAM's labels for a box's top-left and bottom-right corners


class MaskDecoderRuntime(Protocol):
    def decode(self, embedding: torch.Tensor, coords: np.ndarray, labels: np.ndarray,
               crop_hw: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """
        Decode one prompt against a crop's image embedding.

        ``coords``: ``N x 2`` in SAM's resized input frame; ``labels``: ``N``.
        Returns (``3 x h x w`` float mask logits at the crop size, ``3`` predicted IoUs).
        """
        ...


class TorchDecoder:
    name = "torch"

    def __init__(self, sam):
        self.sam = sam

    @torch.inference_mode()
    def decode(self, embedding, coords, labels, crop_hw):
        device = embedding.device
        is_box = labels >= BOX_LABELS[0]
        points = boxes = None
        if (~is_box).any():
            points = (torch.as_tensor(coords[None, ~is_box], dtype=torch.float32, device=device),
                      torch.as_tensor(labels[None, ~is_box], dtype=torch.float32, device=device))
        if is_box.any():
            boxes = torch.as_tensor(coords[is_box].reshape(1, 4), dtype=torch.float32,
                                    device=device)
        # SAM's own prompt path: points (padded only when there is no box) and the box.
        sparse, dense = self.sam.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, iou = self.sam.mask_decoder(
            image_embeddings=embedding, image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True)
        size = self.sam.image_encoder.img_size
        scale = size / max(crop_hw)
        input_hw = (int(crop_hw[0] * scale + 0.5), int(crop_hw[1] * scale + 0.5))
        masks = self.sam.postprocess_masks(low_res, input_hw, crop_hw)
        return masks[0].float().cpu().numpy(), iou[0].float().cpu().numpy()


def prompt_arrays(box: Box, points: Sequence[Point]) -> Tuple[np.ndarray, np.ndarray]:
    """Points then box corners, crop pixels, with SAM labels (1 = positive click)."""
    coords = np.array([*points, box[:2], box[2:]], np.float32).reshape(-1, 2)
    labels = np.array([1.0] * len(points) + list(BOX_LABELS), np.float32)
    return coords, labels


class SamSegmenter:
    """Crop ``h x w x 3 uint8 RGB`` in, ``h x w`` bool mask out."""

    def __init__(self, sam, decoder: MaskDecoderRuntime, encoder=None):
        from segment_anything import SamPredictor

        self.sam = sam
        self.predictor = SamPredictor(sam)
        self.decoder = decoder
        self.encoder = encoder  # sam_encoder runtime; None = SamPredictor in PyTorch
        self.name = f"sam:{getattr(decoder, 'name', 'custom')}"

    def embed(self, crop: np.ndarray) -> torch.Tensor:
        """Return the crop's image embedding (``1 x C x 64 x 64``), computed once per request."""
        if self.encoder is not None:
            return self.encoder.embed(crop)
        with torch.inference_mode():
            self.predictor.set_image(np.ascontiguousarray(crop), image_format="RGB")
        return self.predictor.get_image_embedding()

    def decode(self, embedding: torch.Tensor, crop_hw: Tuple[int, int], box: Box,
               points: Sequence[Point]) -> Segmentation:
        coords, labels = prompt_arrays(box, points)
        coords = self.predictor.transform.apply_coords(coords, crop_hw).astype(np.float32)
        logits, iou = self.decoder.decode(embedding, coords, labels, crop_hw)
        best = int(np.argmax(iou))
        return Segmentation(logits[best] > self.sam.mask_threshold, float(iou[best]))

    def segment(self, crop, box, points) -> Segmentation:
        embedding = self.embed(crop)
        return self.decode(embedding, crop.shape[:2], box, points)

    def close(self) -> None:
        self.predictor.reset_image()
