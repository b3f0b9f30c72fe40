"""FineRS evaluation metrics (reference section 7), one implementation for eval and training.

Per sample ``I = |P and G|`` and ``U = |P or G|`` on full-resolution masks (an empty
prediction when the sample failed). gIoU = mean of I/U (1 when U = 0); cIoU = sum I / sum U.
Size buckets by ``area_percent``: S > 0.055, XXS < 0.017, XS otherwise.
"""
from __future__ import annotations

import difflib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import numpy as np

S_MIN = 0.055
XXS_MAX = 0.017
BUCKETS = ("S", "XS", "XXS")


def size_bucket(area_percent: float) -> str:
    if area_percent > S_MIN:
        return "S"
    if area_percent < XXS_MAX:
        return "XXS"
    return "XS"


def intersection_union(pred: Optional[np.ndarray], gt: np.ndarray) -> tuple:
    """(I, U) of two ``H x W`` bool masks; ``pred`` None counts as empty."""
    gt = gt.astype(bool)
    if pred is None:
        return 0, int(gt.sum())
    pred = pred.astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def giou(pairs: Iterable[tuple]) -> Optional[float]:
    values = [i / u if u else 1.0 for i, u in pairs]
    return float(np.mean(values)) if values else None


def ciou(pairs: Iterable[tuple]) -> Optional[float]:
    pairs = list(pairs)
    if not pairs:
        return None
    union = sum(u for _, u in pairs)
    return float(sum(i for i, _ in pairs) / union) if union else 1.0


_LETTER_RE = re.compile(r"\b([A-F])\b")


def option_correct(response: str, answer: str) -> bool:
    """The ground-truth letter is the one standalone capital option letter (A-F) in the
    response; the lower-case article 'a' does not count, nor does naming two options."""
    letters = set(_LETTER_RE.findall(response or ""))
    return letters == {answer.strip().upper()[:1]}


def open_correct(response: str, answer: str, threshold: float = 0.8) -> bool:
    """Some word of the response is close (difflib ratio >= threshold) to the answer, any case."""
    target = answer.strip().lower().rstrip(".")
    words = re.findall(r"[a-z0-9\-]+", (response or "").lower())
    candidates = words + [" ".join(words)]
    return any(difflib.SequenceMatcher(None, w, target).ratio() >= threshold for w in candidates)


@dataclass
class Sample:
    q_type: str  # referring | reasoning | option
    area_percent: float
    intersection: int
    union: int
    region_hit: bool
    answer_correct: Optional[bool] = None  # None for referring
    attribute: str = ""
    failed: bool = False
    timings_ms: Dict[str, float] = field(default_factory=dict)
    grounding: str = ""


def _percentiles(values: List[float]) -> dict:
    if not values:
        return {"median": None, "p90": None, "count": 0}
    return {"median": round(float(np.median(values)), 2), "p90": round(float(np.percentile(values, 90)), 2),
            "count": len(values)}


def summarize(samples: List[Sample]) -> dict:
    """metrics.json content: segmentation per bucket, region recall, VQA accuracy, latency."""
    pairs = [(s.intersection, s.union) for s in samples]
    seg = {"all": {"gIoU": giou(pairs), "cIoU": ciou(pairs), "count": len(pairs)}}
    for bucket in BUCKETS:
        chosen = [(s.intersection, s.union) for s in samples if size_bucket(s.area_percent) == bucket]
        seg[bucket] = {"gIoU": giou(chosen), "cIoU": ciou(chosen), "count": len(chosen)}
    by_grounding = defaultdict(list)
    for s in samples:
        if s.q_type == "referring":
            by_grounding[s.grounding or "referring"].append((s.intersection, s.union))
    vqa = {}
    for name, kind in (("MVQA", "option"), ("OVQA", "reasoning")):
        chosen = [s for s in samples if s.q_type == kind]
        per_attribute = defaultdict(list)
        for s in chosen:
            per_attribute[s.attribute].append(bool(s.answer_correct))
        vqa[name] = {
            "accuracy": float(np.mean([bool(s.answer_correct) for s in chosen])) if chosen else None,
            "count": len(chosen),
            "per_attribute": {k: {"accuracy": float(np.mean(v)), "count": len(v)} for k, v in sorted(per_attribute.items())},
        }
    stages = sorted({k for s in samples for k in s.timings_ms})
    return {
        "samples": len(samples),
        "failed": sum(s.failed for s in samples),
        "segmentation": seg,
        "referring_by_grounding": {k: {"gIoU": giou(v), "cIoU": ciou(v), "count": len(v)}
                                   for k, v in sorted(by_grounding.items())},
        "region_recall": float(np.mean([s.region_hit for s in samples])) if samples else None,
        **vqa,
        "latency_ms": {stage: _percentiles([s.timings_ms[stage] for s in samples if stage in s.timings_ms])
                       for stage in stages},
    }
