"""FineRS-4k annotation JSON: ``{"annotations": [record, ...]}`` (reference section 6)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from ..prompts import normalize_question_type


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
    """Records with ``image_path`` resolved against ``images_dir`` (default: the JSON's folder)."""
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
            image_path = Path(item["image_path"])
            known = {"image_path", "Q", "A", "Q-type", "points", "area_percent", "attribute", "options"}
            records.append(Record(
                image_path=image_path if image_path.is_absolute() else base / image_path,
                question=str(item["Q"]), answer=str(item.get("A", "")), q_type=str(item["Q-type"]),
                polygon=item["points"], area_percent=float(item["area_percent"]),
                attribute=str(item.get("attribute", "")), options=item.get("options"),
                extra={k: v for k, v in item.items() if k not in known},
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: record {index} is malformed ({exc!r})") from exc
    return records


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``H x W x 3 uint8 RGB``; raises DatasetError when unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
