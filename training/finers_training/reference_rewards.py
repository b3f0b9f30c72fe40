"""
The reference's reward numbers, term by term (``reference_rewards: true``).

Same term names, signatures and sample columns as ``rewards.py``. The answer JSON is found
as there (the ``<answer>`` block first, either quote style); from that dict on every term
follows the reference's code (JiazuoYu/Fines ``verl/utils/reward_score``: LPR
``seg_restrict_qa.py``, GSE ``seg_restrict8_regions_and_qa.py``):

- boxes and points are used as written: no "not found" reading, a ``[0, 0, 0, 0]`` box or a
  "No object founded" response is scored like any other;
- IoU with inclusive (+1) areas but no overlap unless the edges cross strictly; the size term
  measures sides as ``x2 - x1 + 1``; points are truncated to integers before they are
  compared;
- the format terms check list lengths only, and an empty ``response`` fails them;
- text: the ground truth is stripped and lower-cased; an option letter (a-d) is found by
  the reference's regex (which also takes the article "a" for option A); an open answer
  needs one response word (case as written) within difflib ratio 0.8 of the ground truth,
  and for LPR at most three words (open answers only);
- whatever the reference's code would raise on (a missing key, a string where a number
  goes, a zero-area union) scores 0.

Kept from our side in this mode too: where the JSON is found, ``None`` (not applicable)
for region terms of a sample without ``best_region``, and the question type read from
``q_type`` for referring questions (the reference tells it by the ground-truth text).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from typing import Any, Callable, Mapping, Optional

from finers_ros.metrics import option_correct
from finers_ros.prompts import normalize_question_type

Sample = Mapping[str, Any]

_THINK = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_OPTION_LETTERS = ("a", "b", "c", "d")
_FAILURES = (
    TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError,
    AttributeError,
)


def _zero_on_failure(term: Callable[..., float]) -> Callable[..., float]:
    """Score 0 where the reference's code raises (it catches every exception)."""

    @functools.wraps(term)
    def guarded(*args, **kwargs):
        try:
            return term(*args, **kwargs)
        except _FAILURES:
            return 0.0

    return guarded


def _data(completion: str) -> dict:
    from .rewards import _answer_dict  # one JSON reader for both modes

    data = _answer_dict(completion)
    if data is None:
        raise ValueError("no answer JSON")
    return data


def _bbox(data: dict) -> Any:
    box = data["bbox"]
    if len(box) != 4:
        raise ValueError("not four numbers")
    return box


def box_iou(a, b) -> float:
    """Compute IoU as the reference does: +1 areas, no overlap unless ``x1 < x2`` strictly."""
    ix1, iy1, ix2, iy2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return float(inter) / union


def _l1(a, b) -> float:
    return (abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]) + abs(a[3] - b[3])) / 4


def think_format(completion: str, sample: Sample) -> float:
    """R_think: the reference's pattern over the whole text (surrounding spaces fail it)."""
    return 1.0 if _THINK.fullmatch(completion) else 0.0


@_zero_on_failure
def answer_text(completion: str, sample: Sample, *, lpr: bool = False) -> float:
    """R_text: referring "is found"/"is detected"; option letter; open word (LPR: <= 3)."""
    response = _data(completion)["response"]
    truth = str(sample.get("answer", "")).strip().lower()
    if normalize_question_type(str(sample.get("q_type", "referring"))) == "referring":
        lowered = response.lower()
        return 1.0 if ("is found" in lowered or "is detected" in lowered) else 0.0
    if not truth:
        return 0.0
    if truth in _OPTION_LETTERS:
        return 1.0 if option_correct(response.lower(), truth, protocol="reference") else 0.0
    words = response.split()
    if lpr and len(words) > 3:
        return 0.0
    close = any(difflib.SequenceMatcher(None, w, truth).ratio() >= 0.8 for w in words)
    return 1.0 if close else 0.0


@_zero_on_failure
def gse_format(completion: str, sample: Sample) -> float:
    """R_fmt: ``bbox`` a list of 4, ``response`` a non-blank string."""
    data = _data(completion)
    response = data["response"]
    ok = isinstance(data["bbox"], list) and len(data["bbox"]) == 4
    return 1.0 if ok and isinstance(response, str) and response.strip() != "" else 0.0


@_zero_on_failure
def lpr_format(completion: str, sample: Sample) -> float:
    """R_fmt: ``bbox`` a list of 4, ``points_1``/``points_2`` lists of 2, a non-blank response."""
    data = _data(completion)
    shapes = (("bbox", 4), ("points_1", 2), ("points_2", 2))
    if not all(isinstance(data[k], list) and len(data[k]) == n for k, n in shapes):
        return 0.0
    response = data["response"]
    return 1.0 if isinstance(response, str) and response.strip() != "" else 0.0


def _region_term(test: Callable[[Any, Any], bool]) -> Callable[..., Optional[float]]:
    def term(completion: str, sample: Sample) -> Optional[float]:
        target = sample.get("best_region")
        if target is None:
            return None

        @_zero_on_failure
        def score() -> float:
            return 1.0 if test(_bbox(_data(completion)), target) else 0.0

        return score()

    return term


gse_region_iou = _region_term(lambda box, region: box_iou(box, region) > 0.9)
gse_region_l1 = _region_term(lambda box, region: _l1(box, region) < 20)


@_zero_on_failure
def gse_contain(completion: str, sample: Sample) -> float:
    """R_contain: the GT box inside the answer's box."""
    box, gt = _bbox(_data(completion)), sample["gt_box"]
    inside = box[0] <= gt[0] and box[1] <= gt[1] and box[2] >= gt[2] and box[3] >= gt[3]
    return 1.0 if inside else 0.0


@_zero_on_failure
def gse_size(completion: str, sample: Sample) -> float:
    """R_size: 1 when both sides (``x2 - x1 + 1``) are in [241, 271], 0.5 for one."""
    box = _bbox(_data(completion))
    sides = (box[2] - box[0] + 1, box[3] - box[1] + 1)
    return sum(241 <= side <= 271 for side in sides) / 2.0


@_zero_on_failure
def lpr_iou(completion: str, sample: Sample) -> float:
    """R_iou: IoU(b, GT box) > 0.5."""
    return 1.0 if box_iou(_bbox(_data(completion)), sample["gt_box"]) > 0.5 else 0.0


@_zero_on_failure
def lpr_box_l1(completion: str, sample: Sample) -> float:
    """R_boxL1: mean |b - GT box| < 10."""
    return 1.0 if _l1(_bbox(_data(completion)), sample["gt_box"]) < 10 else 0.0


@_zero_on_failure
def lpr_points(completion: str, sample: Sample) -> float:
    """R_point: both points (truncated) in the box, better-paired mean distance < 100."""
    data = _data(completion)
    box = _bbox(data)
    p, q = ([int(point[0]), int(point[1])] for point in (data["points_1"], data["points_2"]))
    if not all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in (p, q)):
        return 0.0
    g, h = sample["gt_points"]

    def dist(a, b) -> float:
        return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)

    same, swapped = dist(p, g) + dist(q, h), dist(p, h) + dist(q, g)
    return 1.0 if min(same, swapped) / 2 < 100 else 0.0


def lpr_text(completion: str, sample: Sample) -> float:
    """R_text of LPR (open answers at most three words)."""
    return answer_text(completion, sample, lpr=True)


def gse_text(completion: str, sample: Sample) -> float:
    """R_text of GSE (no word limit)."""
    return answer_text(completion, sample, lpr=False)


TERMS = {
    "lpr_iou": lpr_iou,
    "lpr_think": think_format,
    "lpr_format": lpr_format,
    "lpr_points": lpr_points,
    "lpr_box_l1": lpr_box_l1,
    "lpr_text": lpr_text,
    "gse_think": think_format,
    "gse_text": gse_text,
    "gse_format": gse_format,
    "gse_region_l1": gse_region_l1,
    "gse_region_iou": gse_region_iou,
    "gse_contain": gse_contain,
    "gse_size": gse_size,
}
