"""
FineRS-4k records <-> COCO polygons, for correcting annotations in common tools.

A FineRS-4k record (reference section 6) holds one question and one target polygon in
native pixels. In COCO each record is one annotation (category ``target``) with a polygon
``segmentation`` and the record's text in ``attributes`` (``question``, ``answer``,
``question_type``, ``options`` as JSON), the field CVAT and similar tools keep per
annotation. Masks become polygons through OpenCV contours.

Pixel conventions: a FineRS-4k polygon runs through pixel centres and its outline belongs to
the mask (``gt_mask``: vertices truncated, outline and fill); COCO coordinates are
continuous, pixel ``(i, j)`` covering ``[i, i + 1) x [j, j + 1)``, and COCO tools
(pycocotools, CVAT) count a pixel in when its centre is inside. So export moves every edge
half a pixel out (``coco_polygon``: a block becomes its outline of pixel edges) and import
half a pixel in (``finers_polygon``: a tight polygon drawn around a block becomes that
block); both tools then see one mask.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from finers_ros import geometry as geo
from finers_ros.data.annotations import DatasetError
from finers_ros.prompts import normalize_question_type

CATEGORY = {"id": 1, "name": "target", "supercategory": "finers"}
FINERS_QTYPE = {"referring": "referring", "open": "reasoning", "option": "option"}


def mask_polygon(mask: np.ndarray) -> Tuple[Optional[List[List[int]]], int]:
    """
    (outer contour of the largest part as ``[[x, y], ...]`` native pixels, number of parts).

    ``mask`` is ``H x W`` bool. None when no part has 3 corners. Rasterised with
    ``geometry.polygon_to_mask`` the polygon gives back the part (contour pixels included).
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None, 0
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    points = largest.reshape(-1, 2)
    if len(points) < 3:
        return None, len(contours)
    return [[int(x), int(y)] for x, y in points], len(contours)


HALF_PIXEL = 0.5


def _double_area(corners: np.ndarray) -> float:
    """Twice the signed (shoelace) area of an ``N x 2`` polygon."""
    following = np.roll(corners, -1, axis=0)
    return float((corners[:, 0] * following[:, 1] - following[:, 0] * corners[:, 1]).sum())


def _distinct(corners) -> np.ndarray:
    """Return the ``N x 2`` corners without repeats of the corner before."""
    corners = np.asarray(corners, np.float64)
    edges = np.roll(corners, -1, axis=0) - corners
    return corners[np.hypot(edges[:, 0], edges[:, 1]) > 1e-9]


def offset_polygon(corners: np.ndarray, distance: float) -> np.ndarray:
    """
    Move every edge of an ``N x 2`` polygon ``distance`` px outward (inward when negative).

    Each corner moves to where its two moved edges meet (a mitre: moved out and back in, a
    polygon of OpenCV contour angles, multiples of 45 degrees, is itself again); a corner
    sharper than about 26 degrees moves at most ``4.5 * |distance|``. Repeated corners are
    dropped; a polygon without area comes back unmoved.
    """
    corners = _distinct(corners)
    area = _double_area(corners) if len(corners) >= 3 else 0.0
    if area == 0.0:
        return corners
    edges = np.roll(corners, -1, axis=0) - corners
    unit = edges / np.hypot(edges[:, 0], edges[:, 1])[:, None]
    outward = np.sign(area) * np.stack([unit[:, 1], -unit[:, 0]], axis=1)
    before = np.roll(outward, 1, axis=0)  # the normal of the edge ending at each corner
    dots = (before * outward).sum(axis=1)
    return corners + distance * (before + outward) / np.maximum(1.0 + dots, 0.1)[:, None]


def coco_polygon(points) -> List[float]:
    """FineRS-4k polygon ``[[x, y], ...]`` (pixel centres) -> flat COCO polygon (pixel edges)."""
    moved = offset_polygon(np.asarray(points, np.float64), HALF_PIXEL) + HALF_PIXEL
    return [round(float(v), 2) for v in moved.reshape(-1)]


def finers_polygon(corners: np.ndarray) -> np.ndarray:
    """
    COCO polygon ``N x 2`` (pixel edges, with area) -> FineRS-4k corners (pixel centres).

    A polygon within a pixel each way has no inner polygon (moved in, its edges
    cross): it becomes the one pixel under its centre, as a COCO tool shows at most that one.
    """
    corners = _distinct(corners)
    if (np.ptp(corners, axis=0) <= 1.0).all():
        return np.repeat(np.floor(corners.mean(axis=0))[np.newaxis], 3, axis=0)
    return offset_polygon(corners - HALF_PIXEL, -HALF_PIXEL)


def finers_question_type(question_type: str) -> str:
    """Return the FineRS-4k ``Q-type`` (referring | reasoning | option) of a command's type."""
    return FINERS_QTYPE[normalize_question_type(question_type)]


def area_percent(polygon, size: geo.Size) -> float:
    """Target area in percent of the image, from the rasterised polygon (size = W, H)."""
    return float(geo.polygon_to_mask(polygon, size).sum()) * 100.0 / (size[0] * size[1])


def to_coco(records: List[dict], sizes: dict, episodes: Optional[dict] = None) -> dict:
    """
    Build a COCO document of FineRS-4k records; ``sizes``: image_path -> (W, H).

    With ``episodes`` (image_path -> the export's episode entries on that frame) every frame
    it names becomes an image, annotated or not, listing its questions in
    ``finers_episodes`` so that a person sees what to label on it.
    """
    images, annotations, ids = [], [], {}

    def image_id(path: str) -> int:
        if path not in ids:
            ids[path] = len(images) + 1
            width, height = sizes[path]
            images.append({"id": ids[path], "file_name": path, "width": width, "height": height})
            if episodes is not None:
                images[-1]["finers_episodes"] = [
                    {"question": e["Q"], "question_type": e["Q-type"],
                     "options": e.get("options"), "status": e["status"]}
                    for e in episodes.get(path, [])]
        return ids[path]

    for path in (episodes or {}):
        image_id(path)
    for record in records:
        path = record["image_path"]
        image_id(path)
        segmentation = coco_polygon(record["points"])
        xs = [int(p[0]) for p in record["points"]]  # the pixels' box, as gt_mask truncates
        ys = [int(p[1]) for p in record["points"]]
        width, height = sizes[path]
        annotations.append({
            "id": len(annotations) + 1, "image_id": ids[path], "category_id": CATEGORY["id"],
            "segmentation": [segmentation],
            "area": round(record["area_percent"] * width * height / 100.0, 1),
            "bbox": [min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1],
            "iscrowd": 0,
            "attributes": {"question": record["Q"], "answer": record.get("A", ""),
                           "question_type": record["Q-type"],
                           "options": json.dumps(record.get("options")) if record.get("options")
                           else ""}})
    return {"info": {"description": "FineRS-4k records for correction (finers-dataset export)"},
            "images": images, "annotations": annotations, "categories": [CATEGORY]}


def _polygon(values, size: geo.Size) -> Optional[np.ndarray]:
    """
    Return the ``N x 2`` float FineRS-4k corners of one COCO polygon, clipped to the frame.

    ``size`` is (W, H). None when it is not a list of >= 3 finite (x, y) numbers or encloses
    no area in the frame. Moved half a pixel in (``finers_polygon``).
    """
    if not isinstance(values, list) or len(values) < 6 or len(values) % 2:
        return None
    try:
        corners = np.asarray(values, np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(corners).all():
        return None
    corners = np.clip(corners, 0, [size[0], size[1]])
    if cv2.contourArea(corners.astype(np.float32)) <= 0:
        return None
    return np.clip(finers_polygon(corners), 0, [size[0] - 1, size[1] - 1])


def _rectangle(bbox) -> Optional[list]:
    """Return the 4 corners of a COCO ``bbox`` ``[x, y, w, h]`` as one flat polygon, or None."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        return None
    x, y, width, height = bbox
    if not (width > 0 and height > 0):
        return None
    return [x, y, x + width, y, x + width, y + height, x, y + height]


def _empty(segmentation) -> bool:
    """Say whether a segmentation holds nothing (how tools write a rectangle: the bbox only)."""
    return segmentation is None or segmentation == [] or (
        isinstance(segmentation, list) and all(s == [] for s in segmentation))


def _largest_polygon(segmentation, size: geo.Size) -> Tuple[Optional[list], int]:
    if not isinstance(segmentation, list):
        return None, 0  # RLE
    polygons = [p for p in (_polygon(s, size) for s in segmentation) if p is not None]
    if not polygons:
        return None, 0
    best = max(polygons, key=lambda p: abs(_double_area(p)))
    return [[round(float(x), 2), round(float(y), 2)] for x, y in best], len(polygons)


def _image_size(image) -> Optional[geo.Size]:
    """(W, H) of a COCO image entry; None when it has no usable positive integer size."""
    try:
        width, height = image["width"], image["height"]
    except (TypeError, KeyError):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
               and float(v).is_integer() for v in (width, height)):
        return None  # some tools write 3840.0: a whole number is a size
    return int(width), int(height)


def _options(value) -> Optional[list]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return [v.strip() for v in value.split(";") if v.strip()]
        return [str(v) for v in parsed] if isinstance(parsed, list) else None
    return None


def _image_file(image_base: Path, file_name: str) -> Optional[Path]:
    """
    Find the frame ``file_name`` names.

    As written, else by its bare name in ``image_base`` or its ``images/`` (annotation tools
    often drop the folder); None when there is none.
    """
    name = Path(str(file_name))
    for candidate in (image_base / name, image_base / "images" / name.name,
                      image_base / name.name):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _exported_question(attributes: dict, exported: List[dict]) -> Tuple[dict, str]:
    """
    Return (attributes, how) of an annotation: its own, else its frame's one exported episode.

    Annotation tools that keep no attributes write polygons without a question; a frame the
    export listed with exactly one question gives it (``how`` then says so).
    """
    if str(attributes.get("question", "")).strip() or len(exported) != 1:
        return attributes, ""
    (episode,) = exported
    return ({"question": episode["Q"], "question_type": episode["Q-type"],
             "options": episode.get("options"),
             "answer": attributes.get("answer") or (
                 episode.get("A", "") if episode["status"] == "pre-annotated" else "")},
            "question taken from the exported episode")


def from_coco(document: dict, image_base: Path, out_base: Path,
              episodes: Optional[dict] = None, mentioned: Optional[set] = None,
              say=lambda line: None) -> Tuple[List[dict], Counter]:
    """
    FineRS-4k records of a (corrected) COCO document, and counts of what was skipped.

    ``episodes`` (the export's entries by frame file name, ``episodes.py``) gives an
    annotation without a question its frame's question when there is one, and each record
    its episode's ``source``; ``mentioned`` collects (frame file name, question) of every
    annotation read, usable or not.

    ``file_name`` is resolved against ``image_base`` and written relative to ``out_base``
    (the output JSON's folder) when it lies below it. Skipped, with a count each: an
    annotation without a polygon (RLE, fewer than 3 finite corners, no area), without a
    question, with an unknown question type or image, whose image file is not found (see
    ``_image_file``); an image left without annotation; an entry that is not a COCO image or
    annotation. Each skipped annotation is named to ``say`` on one line (id, image file,
    why). An annotation with an empty segmentation and a ``bbox`` (a rectangle, as tools
    draw one) is read as the rectangle's 4 corners. Corners are clipped to the frame. Of
    several polygons in one annotation the largest is kept (the others are counted).
    Raises DatasetError when ``images`` is no list.
    """
    counts: Counter = Counter()
    entries = document.get("images", [])
    if not isinstance(entries, list):
        raise DatasetError("not a COCO document: 'images' is not a list")
    images = {}
    for image in entries:
        if _image_size(image) is None or not isinstance(image.get("id"), (int, str)):
            counts["malformed entry"] += 1  # a hand edit or another tool's extension
        else:
            images[image["id"]] = image
    annotated, records = set(), []
    for number, annotation in enumerate(document.get("annotations", []), 1):
        if not isinstance(annotation, dict):
            counts["malformed entry"] += 1
            say(f"skipped annotation #{number}: not a COCO annotation")
            continue
        image_id = annotation.get("image_id")
        image = images.get(image_id) if isinstance(image_id, (int, str)) else None
        attributes = annotation.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        frame = Path(str(image.get("file_name", ""))).name if image else ""
        exported = (episodes or {}).get(frame, [])
        attributes, how = _exported_question(attributes, exported)
        if how:
            counts[how] += 1
        segmentation = annotation.get("segmentation")
        if _empty(segmentation) and _rectangle(annotation.get("bbox")):
            segmentation = [_rectangle(annotation["bbox"])]
            counts["rectangle read as a 4-corner polygon"] += 1
        polygon, parts = (_largest_polygon(segmentation, _image_size(image))
                          if image else (None, 0))
        question = str(attributes.get("question", "")).strip()
        try:
            q_type = finers_question_type(str(attributes.get("question_type") or "referring"))
        except ValueError:
            q_type = None
        options = _options(attributes.get("options"))
        if image and question and mentioned is not None:
            mentioned.add((frame, question))
        path = _image_file(image_base, image.get("file_name", "")) if image else None
        problem = ("unknown image" if image is None else
                   "image file not found" if path is None else
                   "no polygon segmentation" if polygon is None else
                   "no question attribute" if not question else
                   "unknown question type" if q_type is None else
                   "option question without options" if q_type == "option" and not options
                   else "")
        if problem:
            counts[problem] += 1
            named = image.get("file_name") if image else f"unknown image {image_id!r}"
            if problem == "no question attribute" and len(exported) > 1:
                problem += f" (its frame was exported with {len(exported)} questions)"
            say(f"skipped annotation {annotation.get('id', f'#{number}')} on {named}: "
                f"{problem}")
            continue
        annotated.add(image["id"])
        if parts > 1:
            counts["polygon parts dropped, the largest kept"] += parts - 1
        try:
            shown = str(path.relative_to(out_base.resolve()))
        except ValueError:
            shown = str(path)
        record = {"image_path": shown, "Q": question, "A": str(attributes.get("answer", "")),
                  "Q-type": q_type, "points": polygon, "attribute": "",
                  "area_percent": area_percent(polygon, _image_size(image))}
        if q_type == "option":
            record["options"] = options
        source = [e["source"] for e in exported if e["Q"] == question and "source" in e]
        if source:
            record["source"] = source[0]
        records.append(record)
    counts["image without annotation"] += len(set(images) - annotated)
    return records, +counts
