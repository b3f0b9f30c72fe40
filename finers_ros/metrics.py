"""
FineRS evaluation metrics (reference section 7), one implementation for eval and training.

Per sample ``I = |P and G|`` and ``U = |P or G|`` on full-resolution masks (an empty
prediction when the sample failed). gIoU = mean of I/U (1 when U = 0); cIoU = sum I / sum U
(0 when that is 0). Size buckets by ``area_percent``: S > 0.055, XXS < 0.017, XS otherwise.

Two protocols. ``reference`` scores exactly as the authors' evaluation script
(JiazuoYu/Fines, ``inference_scripts/eval_hd_reasoning_seg_zero_cascade_qa_add_dist_for_``
``region_prompt_cross_stage.py``): its epsilons (I / (U + 1e-5), sum I / (sum U + 1e-10)),
its option regex, which also takes the article "a" for option A, its whitespace word split
for open answers (both sides lower-cased), and region recall over the samples whose GSE gave
a region. ``fixed`` (the default) is the same except: exact ratios, the article "a" is not
an option, punctuation around a word is not part of it, and region recall is over all
samples.
"""
from __future__ import annotations

import difflib
import re
import string
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import numpy as np

from .result import is_count

S_MIN = 0.055
XXS_MAX = 0.017
BUCKETS = ("S", "XS", "XXS")
PROTOCOLS = ("fixed", "reference")


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


def _check(protocol: str) -> bool:
    """Return True for the reference protocol; raise a ValueError for an unknown one."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return protocol == "reference"


def giou(pairs: Iterable[tuple], protocol: str = "fixed") -> Optional[float]:
    """Mean per-sample IoU of ``(I, U)`` pairs; a sample with U = 0 counts 1."""
    if _check(protocol):
        values = [i / (u + 1e-5) + (1.0 if u == 0 else 0.0) for i, u in pairs]
    else:
        values = [i / u if u else 1.0 for i, u in pairs]
    return float(np.mean(values)) if values else None


def ciou(pairs: Iterable[tuple], protocol: str = "fixed") -> Optional[float]:
    """Cumulative IoU: sum I / sum U; 0 when nothing was predicted nor annotated."""
    reference = _check(protocol)
    pairs = list(pairs)
    if not pairs:
        return None
    intersection, union = sum(i for i, _ in pairs), sum(u for _, u in pairs)
    if reference:
        return float(intersection / (union + 1e-10))
    return float(intersection / union) if union else 0.0


# The ground-truth letter, standalone or bracketed/quoted (the reference's pattern).
_OPTION_PATTERN = r"(?:\b|[\(\[\{{'\" ]){letter}(?:\b|[\)\]\}}'\" ,.!?])"
# "a" followed by a word is the article ("a red car"), unless the word joins options ("a or b").
_ARTICLE_NEXT_RE = re.compile(r"\s+([^\W\d_]{2,})")
_NOT_A_NOUN = {"or", "and", "is", "was"}


def _is_article(text: str, end: int) -> bool:
    following = _ARTICLE_NEXT_RE.match(text, end)
    return bool(following) and following.group(1) not in _NOT_A_NOUN


def option_correct(response: str, answer: str, protocol: str = "fixed") -> bool:
    """
    Tell whether the ground-truth option letter appears in the response (case-insensitive).

    As the reference's regex finds it: "b", "(b)", "The answer is b.", "A red car, option B".

    ``fixed``: an "a" used as the article ("a red car") is not option A.
    """
    reference = _check(protocol)
    text = str(response or "").lower()
    letter = str(answer or "").lower() if reference else str(answer or "").strip().lower()
    if not letter:
        return False
    try:
        # The reference inserts its ground truth unescaped; FineRS-4k's are single letters.
        pattern = re.compile(_OPTION_PATTERN.format(
            letter=letter if reference else re.escape(letter)))
    except re.error:
        return False
    for match in pattern.finditer(text):
        if reference or letter != "a":
            return True
        end = match.start() + match.group(0).index("a") + 1
        if not _is_article(text, end):
            return True
    return False


# ASCII punctuation and the General Punctuation block (curly quotes, dashes, ellipsis).
_EDGE_PUNCTUATION = (string.punctuation
                     + "".join(chr(c) for c in range(0x2000, 0x2070)))


def open_correct(response: str, answer: str, threshold: float = 0.8,
                 protocol: str = "fixed") -> bool:
    """
    Tell whether some whitespace-separated word of the response is close to the whole answer.

    Close: difflib ratio >= threshold, both lower-cased, as the reference compares them.

    Any letters count (no ASCII filter). ``fixed`` also strips punctuation around each word
    ("(red)." is "red") and compares case-folded text.
    """
    if _check(protocol):
        target = str(answer or "").lower()
        words = str(response or "").lower().split()
    else:
        target = str(answer or "").strip().casefold().strip(_EDGE_PUNCTUATION)
        words = [w.strip(_EDGE_PUNCTUATION) for w in str(response or "").casefold().split()]
    return any(difflib.SequenceMatcher(None, w, target).ratio() >= threshold for w in words)


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
    located: bool = True  # the GSE gave a region (the reference's region-recall population)


def _percentiles(values: List[float]) -> dict:
    if not values:
        return {"median": None, "p90": None, "count": 0}
    return {"median": round(float(np.median(values)), 2),
            "p90": round(float(np.percentile(values, 90)), 2), "count": len(values)}


def summarize(samples: List[Sample], protocol: str = "fixed") -> dict:
    """
    Return the metrics.json content.

    Segmentation per bucket, region recall, VQA accuracy, latency (``latency_ms``) and token
    counts (``tokens``) per stage; ``protocol`` (fixed | reference) is recorded in it.
    """
    reference = _check(protocol)

    def scores(pairs: list) -> dict:
        return {"gIoU": giou(pairs, protocol), "cIoU": ciou(pairs, protocol), "count": len(pairs)}

    seg = {"all": scores([(s.intersection, s.union) for s in samples])}
    for bucket in BUCKETS:
        seg[bucket] = scores([(s.intersection, s.union) for s in samples
                              if size_bucket(s.area_percent) == bucket])
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
            "accuracy": (float(np.mean([bool(s.answer_correct) for s in chosen]))
                         if chosen else None),
            "count": len(chosen),
            "per_attribute": {k: {"accuracy": float(np.mean(v)), "count": len(v)}
                              for k, v in sorted(per_attribute.items())},
        }
    recall_over = [s for s in samples if s.located] if reference else samples
    return {
        "protocol": protocol,
        "samples": len(samples),
        "failed": sum(s.failed for s in samples),
        "segmentation": seg,
        "referring_by_grounding": {k: scores(v) for k, v in sorted(by_grounding.items())},
        "region_recall": (float(np.mean([s.region_hit for s in recall_over]))
                          if recall_over else None),
        **vqa,
        "latency_ms": _spread(samples, lambda key: not is_count(key)),
        "tokens": _spread(samples, is_count),
    }


def _spread(samples: List[Sample], wanted) -> dict:
    """
    Return the median and p90 of each ``timings_ms`` key ``wanted(key)`` accepts.

    Finite values only (a key with none is left out). ``timings_ms`` also carries the backends'
    token counts (``result.is_count``): they are reported apart from the milliseconds.
    """
    values = defaultdict(list)
    for sample in samples:
        for key, value in sample.timings_ms.items():
            if wanted(key) and isinstance(value, (int, float)) and np.isfinite(value):
                values[key].append(float(value))
    return {key: _percentiles(values[key]) for key in sorted(values)}
