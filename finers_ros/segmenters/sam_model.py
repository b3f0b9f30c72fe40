"""
Building Segment Anything (v1) models and loading their weights safely.

A name maps to a builder (the package's registry plus ``tiny``, a small architecture with
the stock prompt encoder for tests and CPU bring-up). Weights load with safetensors or
``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch


class SamCheckpointError(RuntimeError):
    """SAM weights that are missing or do not fit the architecture."""


def build_tiny_sam(prompt_embed_dim: int = 32, image_size: int = 1024):
    """
    Build a ~0.3 M parameter SAM for tests and CPU bring-up.

    Stock prompt encoder and image geometry (1024 input, 64x64 embedding).
    """
    from segment_anything.modeling import (
        ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer)

    patch = 16
    embedding = image_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size, patch_size=patch, embed_dim=48, depth=2, num_heads=2,
            mlp_ratio=2.0, out_chans=prompt_embed_dim, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=8, global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_embed_dim, image_embedding_size=(embedding, embedding),
            input_image_size=(image_size, image_size), mask_in_chans=8,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_embed_dim, mlp_dim=64,
                                          num_heads=2),
            transformer_dim=prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=32,
        ),
    )
    return sam.eval()


def _builders():
    from segment_anything import sam_model_registry

    return {**sam_model_registry, "tiny": lambda checkpoint=None: build_tiny_sam()}


def read_state_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SamCheckpointError(f"SAM checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with code in it, or not a checkpoint at all
        raise SamCheckpointError(f"cannot read SAM checkpoint {path} safely: {exc}") from exc


def load_sam(model_type: str, checkpoint: str | Path | None, device: str = "cpu"):
    """Build ``model_type`` and load ``checkpoint`` (random weights when it is None)."""
    builders = _builders()
    if model_type not in builders:
        raise SamCheckpointError(
            f"unknown SAM model type {model_type!r}; known: {sorted(builders)}")
    sam = builders[model_type](checkpoint=None)
    if checkpoint is not None:
        try:
            sam.load_state_dict(read_state_dict(checkpoint), strict=True)
        except RuntimeError as exc:
            if isinstance(exc, SamCheckpointError):
                raise
            raise SamCheckpointError(
                f"{checkpoint} does not fit SAM {model_type}: {str(exc)[:300]}") from exc
    return sam.to(device).eval()


def save_sam(sam, path: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(path))
    return path
