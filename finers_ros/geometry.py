"""
Every coordinate frame of the FineRS cascade, and the maps between them.

Vocabulary used throughout the package:

- *native*: pixels of the camera frame, ``W x H``.
- *GSE frame*: the whole frame resized to the nominal ``gse_size`` (default 1920x1080,
  aspect ratio ignored, as the published checkpoints expect).
- *crop*: a window of the native frame (``CropWindow``), usually 512x512.
- *LPR frame*: the crop resized to the nominal ``lpr_size`` (default 512x512).

Boxes are ``(x1, y1, x2, y2)`` with inclusive corners, top-left origin; points are
``(x, y)``. Maps between frames are linear in coordinates; rounding to whole pixels only
happens when a box is rasterised or a crop is cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[float, float, float, float]
Point = Tuple[float, float]
Size = Tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class CropWindow:
    """Half-open native window ``[x0, x0 + width) x [y0, y0 + height)``."""

    x0: int
    y0: int
    width: int
    height: int

    @property
    def box(self) -> Box:
        """Return the window as an inclusive native box."""
        return (self.x0, self.y0, self.x0 + self.width - 1, self.y0 + self.height - 1)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """Return the window's pixels of an ``H x W (x C)`` image (a view, not a copy)."""
        return image[self.y0:self.y0 + self.height, self.x0:self.x0 + self.width]

    def contains_box(self, box: Box) -> bool:
        x1, y1, x2, y2 = box
        bx1, by1, bx2, by2 = self.box
        return x1 >= bx1 and y1 >= by1 and x2 <= bx2 and y2 <= by2

    def as_list(self) -> list:
        return [self.x0, self.y0, self.width, self.height]


def scale_box(box: Box, sx: float, sy: float) -> Box:
    x1, y1, x2, y2 = box
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def scale_point(point: Point, sx: float, sy: float) -> Point:
    return (point[0] * sx, point[1] * sy)


def native_to_gse_box(box: Box, native: Size, gse: Size) -> Box:
    return scale_box(box, gse[0] / native[0], gse[1] / native[1])


def gse_to_native_box(box: Box, native: Size, gse: Size) -> Box:
    """GSE-frame box to native pixels: ``x * W / gse_w``, ``y * H / gse_h``."""
    return scale_box(box, native[0] / gse[0], native[1] / gse[1])


class GeometryError(ValueError):
    """Coordinates a frame map cannot use (non-finite, or nowhere near the frame)."""


def is_finite_box(box: Sequence[float]) -> bool:
    """Four finite numbers (NaN and infinities are model output no map can use)."""
    return len(box) == 4 and all(np.isfinite(float(v)) for v in box)


def overlaps_frame(box: Box, size: Size) -> bool:
    """Whether an inclusive box shares at least one pixel with an image of ``size`` (W, H)."""
    x1, y1, x2, y2 = box
    return x2 >= 0 and y2 >= 0 and x1 <= size[0] - 1 and y1 <= size[1] - 1


def crop_for_region(region: Box, native: Size, crop_size: int) -> CropWindow:
    """
    Return the LPR crop around a native region box, as the FineRS reference places it.

    Centred on the region *as the model gave it* (callers must not clip it first, or the
    centre and side move at borders), side ``max(crop_size, region w, region h)`` where the
    extent is ``x2 - x1`` (the checkpoints write a 256 region as ``[x, y, x + 256, y + 256]``);
    the window is then shifted (never clamped) so that it lies inside the image. Only when
    the image itself is smaller than the side along an axis does the window shrink to the
    image there. Raises GeometryError for non-finite coordinates.
    """
    if not is_finite_box(region):
        raise GeometryError(f"region {list(region)} has non-finite coordinates")
    width, height = native
    x1, y1, x2, y2 = (float(v) for v in region)
    # Absurd but finite numbers may overflow to infinity here (floats do not raise); the
    # clamps below bring them back, and the window ends up on the border they point to.
    extent = min(max(float(crop_size), x2 - x1, y2 - y1), float(max(width, height)))
    side = int(np.ceil(extent - 1e-6))
    crop_w, crop_h = min(side, width), min(side, height)
    cx = min(max((x1 + x2) / 2.0, -float(width)), 2.0 * width)
    cy = min(max((y1 + y2) / 2.0, -float(height)), 2.0 * height)
    x0 = int(round(cx - crop_w / 2.0))
    y0 = int(round(cy - crop_h / 2.0))
    x0 = min(max(x0, 0), width - crop_w)
    y0 = min(max(y0, 0), height - crop_h)
    return CropWindow(x0, y0, crop_w, crop_h)


def native_to_lpr_box(box: Box, crop: CropWindow, lpr: Size) -> Box:
    sx, sy = lpr[0] / crop.width, lpr[1] / crop.height
    x1, y1, x2, y2 = box
    return ((x1 - crop.x0) * sx, (y1 - crop.y0) * sy, (x2 - crop.x0) * sx, (y2 - crop.y0) * sy)


def native_to_lpr_point(point: Point, crop: CropWindow, lpr: Size) -> Point:
    return (
        (point[0] - crop.x0) * lpr[0] / crop.width,
        (point[1] - crop.y0) * lpr[1] / crop.height,
    )


def box_centre(box: Box) -> Point:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)


def lpr_to_crop_box(box: Box, crop: CropWindow, lpr: Size) -> Box:
    """LPR-frame box to crop pixels (origin at the crop's top-left)."""
    return scale_box(box, crop.width / lpr[0], crop.height / lpr[1])


def lpr_to_crop_point(point: Point, crop: CropWindow, lpr: Size) -> Point:
    return scale_point(point, crop.width / lpr[0], crop.height / lpr[1])


def crop_to_native_box(box: Box, crop: CropWindow) -> Box:
    x1, y1, x2, y2 = box
    return (x1 + crop.x0, y1 + crop.y0, x2 + crop.x0, y2 + crop.y0)


def crop_to_native_point(point: Point, crop: CropWindow) -> Point:
    return (point[0] + crop.x0, point[1] + crop.y0)


def lpr_to_native_box(box: Box, crop: CropWindow, lpr: Size) -> Box:
    return crop_to_native_box(lpr_to_crop_box(box, crop, lpr), crop)


def lpr_to_native_point(point: Point, crop: CropWindow, lpr: Size) -> Point:
    return crop_to_native_point(lpr_to_crop_point(point, crop, lpr), crop)


def clip_box(box: Box, size: Size) -> Box:
    """Clip an inclusive box to an image of ``size`` (W, H)."""
    width, height = size
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0), width - 1),
        min(max(y1, 0), height - 1),
        min(max(x2, 0), width - 1),
        min(max(y2, 0), height - 1),
    )


def clip_point(point: Point, box: Box) -> Point:
    """Move a point onto the nearest pixel of an inclusive box (unchanged when inside)."""
    x1, y1, x2, y2 = box
    return (min(max(point[0], x1), x2), min(max(point[1], y1), y2))


def box_area(box: Box) -> float:
    """Inclusive area: a box whose corners coincide covers one pixel."""
    x1, y1, x2, y2 = box
    return max(0.0, x2 - x1 + 1) * max(0.0, y2 - y1 + 1)


def box_iou(a: Box, b: Box) -> float:
    """Compute IoU with inclusive (+1) areas, as the FineRS rewards compute it."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = box_area((ix1, iy1, ix2, iy2)) if ix2 >= ix1 and iy2 >= iy1 else 0.0
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def polygon_to_mask(polygon: Iterable[Sequence[float]], size: Size) -> np.ndarray:
    """
    Rasterise a native polygon ``[[x, y], ...]`` (or a list of them) to an ``H x W`` bool mask.

    Exactly as ground truth is (``data.annotations.gt_mask``, its one implementation: vertices
    truncated, outline and fill).
    """
    from .data.annotations import gt_mask  # data builds on geometry, not the reverse

    return gt_mask(polygon, size)


def polygon_box(polygon: Iterable[Sequence[float]]) -> Box:
    pts = np.concatenate(
        [np.asarray(p, np.float64).reshape(-1, 2) for p in _flat_polygons(polygon)]
    )
    return (
        float(pts[:, 0].min()),
        float(pts[:, 1].min()),
        float(pts[:, 0].max()),
        float(pts[:, 1].max()),
    )


def _flat_polygons(points) -> list:
    if (
        points
        and isinstance(points[0], (list, tuple))
        and points[0]
        and isinstance(points[0][0], (list, tuple))
    ):
        return list(points)
    return [points]


def mask_box(mask: np.ndarray) -> Box | None:
    """
    Tight inclusive box of a bool mask, or None when it is empty.

    Rows first, then columns only within the rows in use: on a 4K mask with a small object
    this is ~20x faster than ``np.nonzero``, which lists every pixel.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1]))


def paste_mask(crop_mask: np.ndarray, crop: CropWindow, native: Size) -> np.ndarray:
    """Paste a ``crop.height x crop.width`` bool mask into an empty native ``H x W`` mask."""
    full = np.zeros((native[1], native[0]), bool)
    crop.cut(full)[...] = crop_mask
    return full


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """Resize an ``H x W x C`` image to ``size`` (W, H), area filter when shrinking."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    shrink = size[0] < image.shape[1] and size[1] < image.shape[0]
    return cv2.resize(
        image, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
