"""
The streaming SAM2 tracker (GPU): SAM2's per-frame memory step on a crop that follows the target.

SAM2's video predictor wants the whole video up front and keeps every frame's output; a
live camera has neither. This tracker drives the model's own per-frame step
(``SAM2Base.track_step``) itself, one frame at a time:

1. Cut a ``crop_size`` square of native pixels centred on the target's last box (shifted
   to stay inside the frame; padded with the mean colour only when the frame is smaller),
   resized to the model's input side (``crop_size`` rounded to a multiple of 32: the
   default 512 is fed at native resolution). The whole frame is never resized or copied.
2. Run the image encoder on it and the memory step against a bounded memory bank: the
   conditioning (seed) frame plus the ``memory_frames`` most recent frames the target was
   seen on. Frames where it was not seen are not written to memory, so an occlusion does
   not fill the bank with "absent" memories.
3. Read SAM2's object score: below ``object_score_threshold`` the target is not seen in
   this frame (searching, lost after ``lost_after`` frames); otherwise the mask logits are
   mapped back to native pixels and returned in their tight ROI. The confidence is the
   object score's sigmoid.

SAM2 reads at most ``num_maskmem - 1`` (6 for the published configs) spatial memories and
``max_obj_ptrs_in_encoder - 1`` (15) object pointers from the bank: ``memory_frames``
bounds what is kept, the model decides how much of it it reads.

On CUDA the steps run under bfloat16 autocast, as SAM2's own examples do. One model is
built per (config, checkpoint, device, input side) and shared by all tracks; each track
holds only its memory bank. Requires Meta's ``sam2`` package (see ``SAM2_INSTALL``).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import Box, is_finite_box
from .base import TrackerError, TrackState, TrackUpdate
from .config import TrackerConfig
from .frames import FrameView

log = logging.getLogger(__name__)

SAM2_INSTALL = (
    "tracker backend 'sam2' needs Meta's sam2 package: on a GPU machine install it as its "
    "README says (pip install from the facebookresearch/sam2 repository, CUDA extension "
    "built); without CUDA: SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps "
    "sam2==1.1.0 hydra-core==1.3.8 iopath==0.1.10 (docs/tracking.md)")
INPUT_MULTIPLE = 32  # Hiera's stride-4 windows of 8: the input side must be a multiple of 32
IMAGE_MEAN = (0.485, 0.456, 0.406)  # SAM2's input normalisation (RGB, 0..1)
IMAGE_STD = (0.229, 0.224, 0.225)
PAD_RGB = tuple(int(round(255 * m)) for m in IMAGE_MEAN)  # pads normalise to 0
RANDOM_WEIGHTS_SEED = 0  # random weights are reproducible (tests, device checks)


def input_side(crop_size: int) -> int:
    """SAM2's input side for a ``crop_size`` crop: the nearest multiple of 32 (>= 32)."""
    return max(INPUT_MULTIPLE, int(round(crop_size / INPUT_MULTIPLE)) * INPUT_MULTIPLE)


def _require_sam2():
    """Return ``sam2.build_sam.build_sam2`` or raise a TrackerError saying how to install it."""
    try:
        from sam2.build_sam import build_sam2
    except ImportError as exc:
        raise TrackerError(f"{SAM2_INSTALL} ({exc})") from None
    return build_sam2


@functools.lru_cache(maxsize=2)
def load_sam2_model(model_config: str, checkpoint: Optional[str], device: str, side: int):
    """
    Build SAM2 (``SAM2Base``, eval mode) for a ``side x side`` input on ``device``.

    ``checkpoint``: a local ``.pt`` (``{"model": state_dict}`` as Meta ships them, or a bare
    state dict), read with ``torch.load(weights_only=True)``: tensors only, no pickled code.
    None: random weights (seeded), with a warning. Parameters do not depend on the input
    side, so checkpoints trained at 1024 load at any side. Cached: all tracks share it.
    """
    build_sam2 = _require_sam2()
    state = _read_checkpoint(checkpoint) if checkpoint else None
    feat = side // 16  # stride-16 features: the memory attention's RoPE grid
    overrides = [
        f"++model.image_size={side}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
        # as SAM2's video predictor: memories of prompted frames from binarised masks
        "++model.binarize_mask_from_pts_for_mem_enc=true",
    ]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = build_sam2(model_config, ckpt_path=None, device="cpu",
                               hydra_overrides_extra=overrides)
    except Exception as exc:  # hydra: unknown config name, bad keys
        message = f"sam2.model_config={model_config!r}: cannot build SAM2 ({exc})"
        raise TrackerError(message) from None
    if state is None:
        log.warning("sam2 tracker: no checkpoint (tracker.sam2.checkpoint): random weights, "
                    "the masks and object scores mean nothing")
    else:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise TrackerError(
                f"sam2.checkpoint={checkpoint!r} does not fit {model_config!r}: "
                f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} "
                f"unexpected keys (e.g. {unexpected[:2]})")
    return model.to(device).eval()


def _read_checkpoint(path: str) -> dict:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing file, pickled objects refused by weights_only
        raise TrackerError(f"sam2.checkpoint={path!r}: cannot read it as tensors only "
                           f"(torch.load weights_only): {exc}") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise TrackerError(f"sam2.checkpoint={path!r}: expected a state dict of tensors "
                           "(or {'model': state dict})")
    return state


@dataclass(frozen=True)
class _Crop:
    """
    A ``side x side`` native window at ``(x0, y0)``, fed to SAM2 at ``input`` pixels a side.

    The window may reach past a frame smaller than it (then padded).
    """

    x0: int
    y0: int
    side: int
    input: int

    @property
    def scale(self) -> float:
        """Input pixels per native pixel."""
        return self.input / self.side

    def inside(self, size) -> Tuple[int, int, int, int]:
        """Return the part inside a ``(W, H)`` frame, half-open native ``(x0, y0, x1, y1)``."""
        width, height = size
        return (max(0, self.x0), max(0, self.y0), min(width, self.x0 + self.side),
                min(height, self.y0 + self.side))


class Sam2Tracker:
    """Follows one target with SAM2's memory step; ``seed`` once, then ``update`` per frame."""

    name = "sam2"

    def __init__(self, config: Optional[TrackerConfig] = None):
        self.config = (config or TrackerConfig(backend="sam2")).validate()
        sam = self.config.sam2
        _require_sam2()
        device = torch.device(sam.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrackerError(f"sam2.device={sam.device!r} but torch sees no CUDA device "
                               "(set tracker.sam2.device: cpu to run it, slowly, on the CPU)")
        self.device = device
        self.side = input_side(sam.crop_size)
        self.model = load_sam2_model(sam.model_config, sam.checkpoint, sam.device, self.side)
        if sam.memory_frames > self.model.max_obj_ptrs_in_encoder - 1:
            log.info("sam2.memory_frames=%d: SAM2 reads at most %d of them", sam.memory_frames,
                     self.model.max_obj_ptrs_in_encoder - 1)
        self._autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                          if device.type == "cuda" and torch.cuda.is_bf16_supported()
                          else contextlib.nullcontext())
        self._mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)
        self._size: Optional[Tuple[int, int]] = None
        self._cond: Optional[dict] = None  # {0: seed frame's output}
        self._recent: "OrderedDict[int, dict]" = OrderedDict()  # memory index -> output
        self._index = 0  # memory index of the newest stored frame
        self._pos_enc = None  # the memories' positional encoding (the same for every frame)
        self._centre = np.zeros(2)
        self._last_box: Optional[Box] = None
        self._misses = 0

    # -- the bounded memory bank -----------------------------------------------------
    @property
    def memory_entries(self) -> int:
        """Frames' outputs held for SAM2's memory: the seed frame plus recent frames."""
        return (0 if self._cond is None else len(self._cond)) + len(self._recent)

    @property
    def memory_bytes(self) -> int:
        """Bytes of tensors the memory bank holds (the shared positional encoding once)."""
        entries = list((self._cond or {}).values()) + list(self._recent.values())
        total = sum(t.numel() * t.element_size() for entry in entries
                    for t in (entry["maskmem_features"], entry["obj_ptr"],
                              entry["object_score_logits"]))
        if self._pos_enc is not None:
            total += sum(t.numel() * t.element_size() for t in self._pos_enc)
        return total

    def _compact(self, out: dict) -> dict:
        """Keep what SAM2 reads of a past frame: memory, its encoding, object pointer."""
        if self._pos_enc is None:
            self._pos_enc = [t.clone() for t in out["maskmem_pos_enc"]]
        return {"maskmem_features": out["maskmem_features"], "maskmem_pos_enc": self._pos_enc,
                "obj_ptr": out["obj_ptr"], "object_score_logits": out["object_score_logits"]}

    def _remember(self, out: dict) -> None:
        self._index += 1
        self._recent[self._index] = self._compact(out)
        while len(self._recent) > self.config.sam2.memory_frames:
            self._recent.popitem(last=False)

    # -- seeding ---------------------------------------------------------------------
    def seed(self, frame: FrameView, box: Box, mask: Optional[np.ndarray]) -> TrackUpdate:
        """
        Start on ``frame`` where the target is ``box`` with ``mask``.

        ``mask`` (``H x W`` bool over the frame) is SAM2's conditioning mask; without one,
        ``box`` (XYXY inclusive, native) is its box prompt.
        """
        if box is None or not is_finite_box(box) or box[2] < box[0] or box[3] < box[1]:
            raise TrackerError(f"cannot track from box {box}")
        width, height = frame.size
        if mask is not None and mask.shape != (height, width):
            raise TrackerError(f"mask {mask.shape[::-1]} does not match the frame "
                               f"{width}x{height}")
        if box[2] < 0 or box[3] < 0 or box[0] >= width or box[1] >= height:
            raise TrackerError(f"box {box} is off the {width}x{height} frame")
        self._size = frame.size
        self._centre = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
        crop = self._crop(frame.size)
        mask_inputs, point_inputs = None, None
        if mask is not None:
            mask_inputs = self._mask_input(mask, crop)
            if not bool(mask_inputs.any()):
                raise TrackerError(f"the seed mask has no pixel in the {crop.side}-px crop "
                                   f"around box {box}")
        else:
            point_inputs = self._box_prompt(box, crop)
        self._cond, self._recent, self._index, self._pos_enc = None, OrderedDict(), 0, None
        out = self._step(frame, crop, cond=True, mask_inputs=mask_inputs,
                         point_inputs=point_inputs)
        score = float(out["object_score_logits"].float().reshape(-1)[0])
        found = self._mask_in_frame(out, crop)  # a seed mask is taken as given (score 10)
        if found is None:
            raise TrackerError(f"SAM2 found no target in the seed box {box} "
                               f"(object score {score:.2f})")
        self._cond = {0: self._compact(out)}
        self._misses = 0
        return self._accept(found, score)

    # -- per frame -------------------------------------------------------------------
    def update(self, frame: FrameView) -> TrackUpdate:
        """Find the target in ``frame`` (the next frame in time), in the crop around it."""
        if self._cond is None:
            raise TrackerError("update() before seed()")
        if frame.size != self._size:
            raise TrackerError(f"frame size changed from {self._size[0]}x{self._size[1]} to "
                               f"{frame.size[0]}x{frame.size[1]}")
        crop = self._crop(frame.size)
        out = self._step(frame, crop, cond=False)
        score = float(out["object_score_logits"].float().reshape(-1)[0])
        if score < self._threshold():
            return self._missed(score, f"object score {score:.2f} < "
                                       f"{self._threshold():.2f}")
        found = self._mask_in_frame(out, crop)
        if found is None:
            return self._missed(score, f"object score {score:.2f} but no mask pixel in the "
                                       "frame")
        self._remember(out)
        return self._accept(found, score)

    def close(self) -> None:
        """Drop the memory bank (the model stays cached for the next track)."""
        self._cond, self._recent, self._pos_enc = None, OrderedDict(), None

    # -- steps -----------------------------------------------------------------------
    def _threshold(self) -> float:
        return self.config.sam2.object_score_threshold

    def _crop(self, size) -> _Crop:
        """Centre the crop on the target's last centre, shifted inside the frame if it fits."""
        side = self.config.sam2.crop_size
        origin = []
        for centre, extent in zip(self._centre, size):
            lo, hi = min(0, extent - side), max(0, extent - side)
            origin.append(int(np.clip(round(centre - side / 2.0), lo, hi)))
        return _Crop(origin[0], origin[1], side, self.side)

    def _image(self, frame: FrameView, crop: _Crop) -> torch.Tensor:
        """``1 x 3 x S x S`` float, normalised as SAM2 expects, on the model's device."""
        x0, y0, x1, y1 = crop.inside(frame.size)
        pixels = frame.window(x0, y0, x1, y1)
        if pixels.shape[:2] != (crop.side, crop.side):  # the frame is smaller than the crop
            canvas = np.empty((crop.side, crop.side, 3), np.uint8)
            canvas[:] = PAD_RGB
            canvas[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0] = pixels
            pixels = canvas
        if crop.side != crop.input:
            shrink = crop.input < crop.side
            pixels = cv2.resize(pixels, (crop.input, crop.input),
                                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        image = torch.from_numpy(pixels).to(self.device).permute(2, 0, 1)[None].float()
        return (image / 255.0 - self._mean) / self._std

    def _mask_input(self, mask: np.ndarray, crop: _Crop) -> torch.Tensor:
        """Cut the seed mask to ``1 x 1 x S x S`` float 0/1 (as SAM2's add_new_mask)."""
        x0, y0, x1, y1 = crop.inside(self._size)
        local = np.zeros((crop.side, crop.side), np.float32)
        local[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0] = mask[y0:y1, x0:x1]
        tensor = torch.from_numpy(local).to(self.device)[None, None]
        if crop.side != crop.input:
            tensor = F.interpolate(tensor, size=(crop.input, crop.input), mode="bilinear",
                                   align_corners=False, antialias=True)
            tensor = (tensor >= 0.5).float()
        return tensor

    def _box_prompt(self, box: Box, crop: _Crop) -> dict:
        """Turn the box into SAM2's two corner points (labels 2, 3), input pixels."""
        corners = torch.tensor([[[box[0] - crop.x0, box[1] - crop.y0],
                                 [box[2] + 1.0 - crop.x0, box[3] + 1.0 - crop.y0]]],
                               dtype=torch.float32) * crop.scale
        corners = corners.clamp(0.0, float(crop.input))
        return {"point_coords": corners.to(self.device),
                "point_labels": torch.tensor([[2, 3]], dtype=torch.int32, device=self.device)}

    def _step(self, frame: FrameView, crop: _Crop, cond: bool, mask_inputs=None,
              point_inputs=None) -> dict:
        """Image encoder + SAM2's memory step on the crop; the new memory is encoded too."""
        model = self.model
        index = 0 if cond else self._index + 1  # right after the newest stored frame
        bank = {"cond_frame_outputs": self._cond or {}, "non_cond_frame_outputs": self._recent}
        with torch.inference_mode(), self._autocast:
            backbone = model.forward_image(self._image(frame, crop))
            _, feats, pos, sizes = model._prepare_backbone_features(backbone)
            return model.track_step(
                frame_idx=index, is_init_cond_frame=cond, current_vision_feats=feats,
                current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=point_inputs,
                mask_inputs=mask_inputs, output_dict=bank, num_frames=index + 1,
                run_mem_encoder=True)

    def _mask_in_frame(self, out: dict, crop: _Crop):
        """
        Map SAM2's mask to native pixels.

        Returns ``(mask, (x0, y0))``, ``mask`` the tight ``h x w`` bool of the target inside
        the frame at native ``(x0, y0)``, or None when it has no pixel there.
        """
        x0, y0, x1, y1 = crop.inside(self._size)
        logits = out["pred_masks"].float()  # 1 x 1 x S/4 x S/4, SAM2's low-resolution logits
        with torch.inference_mode():
            full = F.interpolate(logits, size=(crop.side, crop.side), mode="bilinear",
                                 align_corners=False)[0, 0]
            mask = (full[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0] > 0).cpu()
        mask = mask.numpy()
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return None
        tight = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()
        return tight, (x0 + int(cols[0]), y0 + int(rows[0]))

    def _accept(self, found, score: float) -> TrackUpdate:
        mask, (x0, y0) = found
        height, width = mask.shape
        box = (float(x0), float(y0), float(x0 + width - 1), float(y0 + height - 1))
        self._centre = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
        self._last_box = box
        self._misses = 0
        return TrackUpdate(TrackState.TRACKING, box, _sigmoid(score), mask,
                           (x0, y0, width, height))

    def _missed(self, score: float, why: str) -> TrackUpdate:
        self._misses += 1
        crop = self.config.sam2.crop_size
        if self._misses >= self.config.lost_after:
            return TrackUpdate(TrackState.LOST, self._last_box, _sigmoid(score),
                               reason=f"target not seen for {self._misses} frames ({why})")
        return TrackUpdate(TrackState.SEARCHING, self._last_box, _sigmoid(score),
                           reason=f"target not seen in the {crop}-px crop around its last "
                                  f"position ({why})")


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))
