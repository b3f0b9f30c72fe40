"""
FineRS-4k annotation JSON: ``{"annotations": [record, ...]}`` (reference section 6).

And its ground truth rasterised exactly as the reference evaluation does.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from ..config import MAX_FRAME_SIDE
from ..geometry import Box, Size, mask_box
from ..prompts import normalize_question_type

MAX_VERTEX_COORDINATE = 1_000_000  # int32-safe, far beyond any frame


class DatasetError(ValueError):
    pass


@dataclass
class Record:
    image_path: Path
    question: str
    answer: str
    q_type: str  # referring | reasoning | option (as in the file)
    polygon: list
    area_percent: float
    attribute: str = ""
    options: Optional[list] = None
    extra: dict = field(default_factory=dict)

    @property
    def pipeline_question_type(self) -> str:
        return normalize_question_type(self.q_type)


def load_annotations(path: str | Path, images_dir: str | Path | None = None) -> List[Record]:
    """Load records with ``image_path`` resolved against ``images_dir`` (default: JSON dir)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read annotations {path}: {exc}") from exc
    items = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise DatasetError(f"{path}: expected a top-level 'annotations' list")
    base = Path(images_dir) if images_dir else path.parent
    records = []
    for index, item in enumerate(items):
        try:
            polygons(item["points"])
            image_path = Path(_text(item, "image_path"))
            known = {"image_path", "Q", "A", "Q-type", "points", "area_percent", "attribute",
                     "options"}
            records.append(Record(
                image_path=image_path if image_path.is_absolute() else base / image_path,
                question=_text(item, "Q"), answer=str(item.get("A", "")),
                q_type=_text(item, "Q-type"), polygon=item["points"],
                area_percent=_area_percent(item),
                attribute=str(item.get("attribute", "")), options=item.get("options"),
                extra={k: v for k, v in item.items() if k not in known},
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: record {index} is malformed ({exc!r})") from exc
    return records


def _text(item: dict, key: str) -> str:
    """Return a field that must be a string (not ``str(None)`` or a list's repr as a question)."""
    value = item[key]
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _area_percent(item: dict) -> float:
    """``area_percent``: a finite number >= 0 (it picks the size bucket)."""
    value = item["area_percent"]
    try:
        area = float(value)
    except (TypeError, ValueError):
        area = math.nan
    if isinstance(value, bool) or not math.isfinite(area) or area < 0:
        raise ValueError(f"'area_percent' must be a finite number >= 0, got {value!r}")
    return area


def polygons(points) -> List[np.ndarray]:
    """
    Return the polygons of a ``points`` field as ``N x 2`` float arrays, native pixels.

    The field is one ``[[x, y], ...]`` or a list of them; ValueError when malformed or
    non-finite. An ``N x 2`` (or ``K x N x 2``) array is accepted as well.
    """
    if isinstance(points, np.ndarray):
        points = points.tolist()
    if not isinstance(points, (list, tuple)) or not points:
        raise ValueError("'points' must be a non-empty list of [x, y] vertices")
    first = points[0]
    nested = (isinstance(first, (list, tuple)) and bool(first)
              and isinstance(first[0], (list, tuple)))
    result = []
    for polygon in (points if nested else [points]):
        try:
            array = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'points' holds a non-numeric vertex ({exc})") from exc
        if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
            raise ValueError(f"'points' polygon must be N x 2 vertices, got shape {array.shape}")
        if not np.isfinite(array).all() or np.abs(array).max() > MAX_VERTEX_COORDINATE:
            raise ValueError("'points' holds a non-finite or absurd coordinate")
        result.append(array)
    return result


def gt_mask(points, size: Size) -> np.ndarray:
    """
    Return the ``H x W`` bool ground-truth mask of a ``points`` field, ``size`` = (W, H).

    Rasterised as the reference evaluation does: vertices truncated to int32, the closed
    outline drawn 1 px wide (``cv2.polylines``), then the polygon filled (``cv2.fillPoly``).
    """
    mask = np.zeros((size[1], size[0]), np.uint8)
    for polygon in polygons(points):
        vertices = polygon.astype(np.int32)[np.newaxis]  # 1 x N x 2, truncated toward zero
        cv2.polylines(mask, vertices, True, 1, 1)
        cv2.fillPoly(mask, vertices, 1)
    return mask.astype(bool)


def gt_box(mask: np.ndarray) -> Optional[Box]:
    """
    Return the inclusive pixel box of a ground-truth mask, or None when the mask is empty.

    It is what region recall tests against the crop, as the reference does.
    """
    return mask_box(mask)


def gt_pixel_count(points) -> int:
    """
    Count the pixels of the ground-truth mask when the image (hence its size) is unknown.

    The polygon is rasterised on a canvas just large enough to hold its part inside any camera
    frame (``config.MAX_FRAME_SIDE``). The canvas starts at the polygon's whole-pixel corner
    (or 0): an integer shift of vertices >= 0 leaves their truncation, hence the count,
    unchanged.
    """
    shapes = polygons(points)
    low = np.min([shape.min(axis=0) for shape in shapes], axis=0)
    high = np.max([shape.max(axis=0) for shape in shapes], axis=0)
    origin = np.clip(np.floor(low), 0, MAX_FRAME_SIDE)
    end = np.clip(np.floor(high) + 2, 0, MAX_FRAME_SIDE)
    if (end <= origin).any():
        return 0
    width, height = (int(v) for v in end - origin)
    return int(gt_mask([(shape - origin).tolist() for shape in shapes], (width, height)).sum())


def read_rgb(path: str | Path) -> np.ndarray:
    """
    Read an image file as ``H x W x 3 uint8 RGB``; raise DatasetError when unreadable.

    Unreadable: missing, truncated, not an image, or past OpenCV's pixel limit, where imread
    raises.
    """
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1][:200]
        raise DatasetError(f"cannot read image {path}: {reason}") from exc
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
