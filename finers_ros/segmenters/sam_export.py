"""
ONNX export of SAM's prompt encoder + mask decoder (never imported by inference).

Graph inputs:
- ``image_embeddings``: ``1 x C x 64 x 64`` float32 (the crop's embedding)
- ``point_coords``: ``1 x N x 2`` float32, SAM input frame (points, then box corners)
- ``point_labels``: ``1 x N`` float32 (1 positive, 2/3 box corners); N is dynamic
- ``crop_like``: ``h x w`` uint8 whose *shape* (not its values) is the crop size

Outputs: ``masks`` ``1 x 3 x h x w`` float32 logits at the crop size, ``iou_predictions``
``1 x 3``. The output size comes from an input's dimensions, not from a shape-tensor input,
so TensorRT can build it with ordinary optimisation profiles. All slicing uses int64
tensors: Python ints would bake the export-time crop size into the graph.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

INPUT_NAMES = ["image_embeddings", "point_coords", "point_labels", "crop_like"]
OUTPUT_NAMES = ["masks", "iou_predictions"]


class SamDecoderGraph(nn.Module):
    def __init__(self, sam):
        super().__init__()
        self.sam = sam
        self.img_size = sam.image_encoder.img_size

    def _embed_points(self, coords, labels):
        encoder = self.sam.prompt_encoder
        embedding = encoder.pe_layer._pe_encoding((coords + 0.5) / self.img_size)
        labels = labels.unsqueeze(-1).expand_as(embedding)
        embedding = embedding * (labels != -1) + encoder.not_a_point_embed.weight * (labels == -1)
        for index in range(encoder.num_point_embeddings):
            embedding = embedding + encoder.point_embeddings[index].weight * (labels == index)
        return embedding

    def forward(self, image_embeddings, point_coords, point_labels, crop_like):
        encoder = self.sam.prompt_encoder
        sparse = self._embed_points(point_coords, point_labels)
        dense = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            1, -1, encoder.image_embedding_size[0], encoder.image_embedding_size[1])
        masks, iou = self.sam.mask_decoder.predict_masks(
            image_embeddings=image_embeddings, image_pe=encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
        masks, iou = masks[:, 1:], iou[:, 1:]  # multimask output, as SamPredictor does
        crop_hw = torch._shape_as_tensor(crop_like).to(torch.float32)
        scale = self.img_size / torch.max(crop_hw)
        input_hw = torch.floor(crop_hw * scale + 0.5).to(torch.int64)
        masks = F.interpolate(masks, size=(self.img_size, self.img_size), mode="bilinear",
                              align_corners=False)
        masks = masks[..., : input_hw[0], : input_hw[1]]
        crop_hw = crop_hw.to(torch.int64)
        masks = F.interpolate(masks, size=(crop_hw[0], crop_hw[1]), mode="bilinear",
                              align_corners=False)
        return masks, iou


def export_decoder(sam, path: str | Path, opset: int = 17) -> Path:
    """Write the decoder graph to ``path`` (legacy TorchScript exporter, dynamic axes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = SamDecoderGraph(sam.cpu().eval())
    channels = sam.prompt_encoder.embed_dim
    side = sam.prompt_encoder.image_embedding_size
    example = (
        torch.randn(1, channels, side[0], side[1]),
        torch.randint(0, 1024, (1, 4, 2), dtype=torch.float32),
        torch.tensor([[1.0, 1.0, 2.0, 3.0]]),
        torch.zeros(512, 384, dtype=torch.uint8),
    )
    with torch.no_grad():
        torch.onnx.export(
            graph, example, str(path), input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"},
                          "crop_like": {0: "crop_h", 1: "crop_w"},
                          "masks": {2: "crop_h", 3: "crop_w"}},
            opset_version=opset, dynamo=False,
        )
    return path


ENCODER_INPUT_NAMES = ["image"]
ENCODER_OUTPUT_NAMES = ["image_embeddings"]


def export_encoder(sam, path: str | Path, opset: int = 17) -> Path:
    """
    Write SAM's image encoder graph to ``path``.

    ``image`` ``B x 3 x S x S`` float32 (normalised, padded, see
    ``sam_encoder.encoder_input``) -> ``image_embeddings`` ``B x C x S/16 x S/16``. Only the
    batch axis is dynamic; the image side is fixed by the architecture (1024).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = sam.image_encoder.cpu().eval()
    side = encoder.img_size
    with torch.no_grad():
        torch.onnx.export(
            encoder, (torch.randn(1, 3, side, side),), str(path),
            input_names=ENCODER_INPUT_NAMES, output_names=ENCODER_OUTPUT_NAMES,
            dynamic_axes={"image": {0: "batch"}, "image_embeddings": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    return path


def quantize_int8(fp32_path: str | Path, int8_path: str | Path) -> Path:
    """
    Quantise the graph's MatMul/Gemm weights to int8 (dynamic quantisation).

    Activations stay float and are quantised per call at run time; convolutions stay fp32
    (ConvInteger is slow on CPU).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = Path(int8_path)
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"], per_channel=False)
    return int8_path
