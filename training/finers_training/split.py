"""
Train/val split of FineRS-4k records by bag or by episode, and the check that they are apart.

Consecutive frames of a recording are near duplicates, so records are split by group, never
one by one: ``bag`` keeps every record of one recording on one side, ``episode`` every
record of one frame (all questions asked of it). The group is read from the record's
``source`` (``finers-dataset export``/``import``); a record without one (the FineRS-4k
benchmark, synthetic scenes) is its own image's group. A group goes to val when a seeded
hash of its key falls below the fraction, so adding bags later never moves a group from one
side to the other; each side gets at least one group.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Tuple

from finers_ros.data.annotations import DatasetError

GROUPINGS = ("bag", "episode")


def _image(record: dict, base: Path) -> str:
    path = Path(str(record.get("image_path", "")))
    return str((path if path.is_absolute() else base / path).resolve())


def group_key(record: dict, by: str, base: Path) -> str:
    """Return the group of ``record`` (``base``: the folder its image path is relative to)."""
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    if by == "bag" and source.get("bag"):
        return f"bag:{source['bag']}"
    if source.get("bag") and "stamp_ns" in source:
        return f"frame:{source['bag']}:{source['stamp_ns']}:{source.get('frame_id', '')}"
    return f"image:{_image(record, base)}"


def frame_keys(record: dict, base: Path) -> set:
    """Return the keys of the frame ``record`` was taken from: its image file and its source."""
    return {group_key(record, "episode", base), f"image:{_image(record, base)}"}


def _draw(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_records(records: List[dict], fraction: float, by: str, base: Path,
                  seed: int = 0) -> Tuple[List[dict], List[dict], Dict[str, int]]:
    """(train records, val records, group counts) of ``records`` split by ``by``."""
    if by not in GROUPINGS:
        raise DatasetError(f"split by {by!r}: expected one of {GROUPINGS}")
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"val fraction {fraction}: must lie between 0 and 1")
    groups: Dict[str, List[dict]] = {}
    for record in records:
        groups.setdefault(group_key(record, by, base), []).append(record)
    if len(groups) < 2:
        raise DatasetError(f"{len(groups)} {by} group(s): a split needs at least 2")
    draws = {key: _draw(seed, key) for key in groups}
    val = {key for key, u in draws.items() if u < fraction}
    if not val:
        val = {min(draws, key=draws.get)}
    if len(val) == len(groups):
        val.discard(max(draws, key=draws.get))
    train_records = [r for key, rs in groups.items() if key not in val for r in rs]
    val_records = [r for key, rs in groups.items() if key in val for r in rs]
    return train_records, val_records, {"train": len(groups) - len(val), "val": len(val)}


def shared_frames(train: List[dict], train_base: Path, val: List[dict],
                  val_base: Path) -> List[str]:
    """List the frames (image files or bag frames) both sets hold records of."""
    seen = set().union(*(frame_keys(r, train_base) for r in train)) if train else set()
    return sorted({k for r in val for k in frame_keys(r, val_base)} & seen)


def _relative(record: dict, base: Path, out: Path) -> dict:
    path = Path(_image(record, base))
    try:
        shown = str(path.relative_to(out.resolve()))
    except ValueError:
        shown = str(path)
    return {**record, "image_path": shown}


def write_split(annotations: Path, out: Path, fraction: float, by: str,
                seed: int = 0) -> Tuple[Path, Path, str]:
    """Write ``out/train.json`` and ``out/val.json``; returns their paths and a summary line."""
    annotations = Path(annotations)
    try:
        records = json.loads(annotations.read_text())["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot read annotations {annotations}: {exc}") from exc
    base = annotations.parent
    train, val, groups = split_records(records, fraction, by, base, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "train.json", out / "val.json"
    for path, part in zip(paths, (train, val)):
        path.write_text(json.dumps({"annotations": [_relative(r, base, out) for r in part]},
                                   indent=1))
    summary = (f"split {len(records)} record(s) by {by}: {len(train)} train "
               f"({groups['train']} group(s)) -> {paths[0]}, {len(val)} val "
               f"({groups['val']} group(s)) -> {paths[1]}")
    return paths[0], paths[1], summary
