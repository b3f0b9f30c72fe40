"""
The LPR and GSE training sets, built from FineRS-4k records (reference sections 1, 5, 6).

A set is a folder: ``images/`` (the exact pixels the model sees: LPR crops at ``lpr_size``,
GSE frames at ``gse_size``) and ``rows.jsonl`` (one row per sample, the reward columns of
``finers_training.rewards``). ``load_rows`` turns it into the chat rows TRL's GRPOTrainer
reads, with the prompt built by the core (``finers_ros.prompts``) in the node's chat layout
(``finers_ros.stages.qwen_vl.chat_messages``).

Input records come from ``finers_ros.data.annotations.load_annotations``: the FineRS-4k JSON,
the synthetic generator's output and ``finers-dataset export`` folders share that layout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import cv2
import numpy as np

from finers_ros import geometry as geo
from finers_ros.data.annotations import DatasetError, Record, load_annotations, read_rgb
from finers_ros.prompts import gse_prompt, lpr_prompt
from finers_ros.stages.qwen_vl import chat_messages

ROWS = "rows.jsonl"


@dataclass
class DataOptions:
    """How samples are cut; defaults reproduce the reference."""

    seed: int = 0
    crop_size: int = 512  # native side of an LPR training window
    lpr_size: Tuple[int, int] = (512, 512)  # LPR frame (W, H) the crop is resized to
    gse_size: Tuple[int, int] = (1920, 1080)  # GSE frame (W, H) the whole frame is resized to
    point_jitter: float = 0.1  # second GT point: centre + up to this fraction of the box size
    max_samples: Optional[int] = None


def gt_box(record: Record, native: Optional[geo.Size] = None) -> geo.Box:
    """
    Return the record's target box (XYXY inclusive, native pixels) from its polygon.

    With the image's ``native`` (W, H) size the box is clipped to the image, as the GT mask
    is; a polygon wholly off the image is a DatasetError (no crop could show the target).
    """
    box = geo.polygon_box(record.polygon)
    if native is None:
        return box
    width, height = native
    if box[2] < 0 or box[3] < 0 or box[0] > width - 1 or box[1] > height - 1:
        raise DatasetError(f"polygon {box} lies outside the {width}x{height} image")
    return geo.clip_box(box, native)


def random_window(
    box: geo.Box, native: geo.Size, side: int, rng: np.random.Generator
) -> geo.CropWindow:
    """
    Pick a ``side`` x ``side`` native window at a random place that contains ``box``.

    Windows are shifted inside the image, never clamped (reference: shift, don't clamp).
    A box larger than ``side`` gets a square window as large as its longer side, as the
    node's crops are square (``geometry.crop_for_region``: side max(512, w, h)), so the LPR
    learns the aspect it is served; an image smaller than the window along an axis gets the
    whole image along it.
    """
    width, height = native
    x1, y1, x2, y2 = box
    square = max(side, int(np.ceil(x2 - x1)) + 1, int(np.ceil(y2 - y1)) + 1)
    crop_w, crop_h = min(width, square), min(height, square)

    def start(lo_edge: float, hi_edge: float, span: int, limit: int) -> int:
        # window [s, s + span) must hold [lo_edge, hi_edge] and lie in [0, limit)
        lo = max(0, int(np.ceil(hi_edge)) - span + 1)
        hi = min(int(np.floor(lo_edge)), limit - span)
        if hi < lo:  # box larger than the window along this axis
            return min(max(int(round((lo_edge + hi_edge + 1 - span) / 2)), 0), limit - span)
        return int(rng.integers(lo, hi + 1))

    return geo.CropWindow(
        start(x1, x2, crop_w, width), start(y1, y2, crop_h, height), crop_w, crop_h
    )


def gt_points(box: geo.Box, rng: np.random.Generator, jitter: float) -> List[List[float]]:
    """
    Return the two GT points.

    The box centre, and the centre moved by up to ``jitter`` x box size.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    dx, dy = rng.uniform(-jitter, jitter, 2) * (box[2] - box[0], box[3] - box[1])
    return [[cx, cy], [cx + float(dx), cy + float(dy)]]


def lpr_sample(
    record: Record, image: np.ndarray, rng: np.random.Generator, options: DataOptions
) -> Tuple[np.ndarray, dict]:
    """(LPR-frame image ``h x w x 3 RGB``, row) of one record: a random window holding the GT."""
    native = (image.shape[1], image.shape[0])
    box = gt_box(record, native)
    window = random_window(box, native, options.crop_size, rng)
    crop = geo.resize_image(np.ascontiguousarray(window.cut(image)), options.lpr_size)
    box_lpr = geo.native_to_lpr_box(box, window, options.lpr_size)
    row = _common(record)
    row.update(
        stage="lpr",
        window=window.as_list(),
        gt_box=[round(v, 2) for v in box_lpr],
        gt_points=[
            [round(v, 2) for v in p] for p in gt_points(box_lpr, rng, options.point_jitter)
        ],
    )
    return crop, row


def gse_gt_box(box: geo.Box, native: geo.Size, gse_size: geo.Size) -> geo.Box:
    """
    Map a native inclusive GT box to the GSE frame, clipped to that frame's last pixel.

    Scaled, native pixel ``W - 1`` lands at ``gse_w - gse_w / W`` (1919.5 from a 4K frame):
    past the frame's last pixel, so that no region inside the frame could contain it.
    """
    return geo.clip_box(geo.native_to_gse_box(box, native, gse_size), gse_size)


def gse_sample(record: Record, image: np.ndarray, options: DataOptions) -> Tuple[np.ndarray, dict]:
    """(GSE-frame image, row): the whole frame at ``gse_size``, GT box and best_region there."""
    native = (image.shape[1], image.shape[0])
    box = gt_box(record, native)
    row = _common(record)
    best = record.extra.get("best_region")
    row.update(
        stage="gse",
        native_size=list(native),
        gt_box_native=[round(v, 2) for v in box],
        gt_box=[round(v, 2) for v in gse_gt_box(box, native, options.gse_size)],
        best_region=[float(v) for v in best] if best is not None else None,
    )
    return geo.resize_image(image, options.gse_size), row


def _common(record: Record) -> dict:
    return {
        "source_image": str(record.image_path),
        "question": record.question,
        "q_type": record.q_type,
        "options": record.options,
        "answer": record.answer,
    }


def build_set(
    stage: str,
    annotations: str | Path,
    out_dir: str | Path,
    options: DataOptions,
    images_dir: str | Path | None = None,
) -> Tuple[Path, dict]:
    """
    Write the ``stage`` set (``lpr`` | ``gse``) to ``out_dir``; returns (rows path, counts).

    Records whose image is unreadable or whose polygon is empty are skipped and counted.
    """
    records = load_annotations(annotations, images_dir)
    if options.max_samples is not None:
        records = records[: options.max_samples]
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(options.seed)
    counts = {"samples": 0, "skipped": 0}
    rows = []
    for index, record in enumerate(records):
        try:
            image = read_rgb(record.image_path)
            if not record.polygon:
                raise DatasetError("empty polygon")
            pixels, row = (
                lpr_sample(record, image, rng, options)
                if stage == "lpr"
                else gse_sample(record, image, options)
            )
        except (DatasetError, ValueError, IndexError) as exc:
            counts["skipped"] += 1
            print(f"skipped record {index} ({record.image_path.name}): {exc}")
            continue
        name = f"images/{stage}_{index:06d}.png"
        cv2.imwrite(str(out_dir / name), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        rows.append({"image": name, **row})
        counts["samples"] += 1
    path = out_dir / ROWS
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, counts


def read_rows(rows_path: str | Path) -> List[dict]:
    rows_path = Path(rows_path)
    return [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]


def stage_prompt(row: dict) -> str:
    """Return the row's text prompt: the core's GSE or LPR prompt of its question type."""
    build = lpr_prompt if row["stage"] == "lpr" else gse_prompt
    return build(row["question"], row["q_type"], row.get("options"))


def load_dataset(rows_path: str | Path, system_prompt: str):
    """
    Load the set as a ``datasets.Dataset`` for GRPOTrainer.

    Columns: ``prompt`` (chat, node layout), ``image`` (decoded lazily from the set's PNG) and
    the reward columns.
    """
    from datasets import Dataset, Image

    rows_path = Path(rows_path)
    records = []
    for row in read_rows(rows_path):
        record = {k: v for k, v in row.items() if k not in ("image", "options", "best_region")}
        record["prompt"] = chat_messages(stage_prompt(row), system_prompt)
        record["image"] = str(rows_path.parent / row["image"])
        record["options_json"] = json.dumps(row.get("options"))
        if row["stage"] == "gse":
            record["best_region"] = row.get("best_region")
        records.append(record)
    if not records:
        raise DatasetError(f"{rows_path}: no samples")
    return Dataset.from_list(records).cast_column("image", Image())


def files_hash(paths: Iterable[Path]) -> str:
    """sha256 over the files' names and bytes, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def set_hash(rows_path: str | Path) -> str:
    """sha256 of a built set: its rows and every image they name."""
    rows_path = Path(rows_path)
    images = [rows_path.parent / r["image"] for r in read_rows(rows_path)]
    return files_hash([rows_path, *images])
