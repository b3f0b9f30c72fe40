"""
Rule-based GRPO rewards of FineRS (reference section 4), one plain function per term.

Every term is ``term(completion: str, sample: Mapping) -> float | None``: ``completion`` is
the model's text, ``sample`` one dataset row (the columns built by ``finers_training.data``);
``None`` means "not applicable to this sample" (TRL skips it in the weighted sum).

Sample columns (boxes XYXY inclusive, points (x, y)):

- LPR rows, LPR frame (512x512 crop pixels): ``gt_box``, ``gt_points`` (2 points),
  ``q_type`` (referring | open | option, or FineRS-4k spellings), ``answer``.
- GSE rows, GSE frame (nominal 1920x1080): ``gt_box``, ``best_region`` (the retrospective
  target, may be absent), ``q_type``, ``answer``.

Parsing is the core's (``finers_ros.parsing``): the ``<answer>`` block first, double- or
single-quoted JSON, never evaluated. A completion that does not parse scores 0 on every
term that needs its answer. Non-finite numbers (NaN, inf) never score.

Our fixes of the reference are the default; ``reference=True`` scores every term with the
reference's own rules instead (``reference_rewards.py``; training/README.md lists each
difference).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from finers_ros.geometry import box_iou
from finers_ros.metrics import open_correct, option_correct
from finers_ros.parsing import (
    StageAnswer,
    extract_answer_json,
    has_think_answer_format,
    parse_gse,
    parse_lpr,
)
from finers_ros.prompts import normalize_question_type

Sample = Mapping[str, Any]
Term = Callable[..., Optional[float]]

# Thresholds of reference section 4 (GSE frame pixels for GSE, LPR frame pixels for LPR).
GSE_REGION_L1_PX = 20.0
GSE_REGION_IOU = 0.9
GSE_REGION_PX = 256  # the region side the GSE prompt asks for ("a 256*256 bounding box")
GSE_REGION_SIDE = (GSE_REGION_PX - 15.0, GSE_REGION_PX + 15.0)
LPR_IOU = 0.5
LPR_BOX_L1_PX = 10.0
LPR_POINT_DIST_PX = 100.0
LPR_MAX_ANSWER_WORDS = 3


# -- reading a completion -------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _answer_dict(completion: str) -> Optional[dict]:
    try:
        return extract_answer_json(completion)
    except (ValueError, TypeError, RecursionError):  # ParseError is a ValueError
        return None


@lru_cache(maxsize=4096)
def _stage_answer(completion: str, stage: str) -> Optional[StageAnswer]:
    try:
        answer = (parse_gse if stage == "gse" else parse_lpr)(completion)
    except (ValueError, TypeError, RecursionError):  # ParseError is a ValueError
        return None
    if answer.bbox is not None and not _finite(answer.bbox):
        return None
    if any(not _finite(p) for p in answer.points):
        return None
    return answer


def _finite(values: Sequence[Any]) -> bool:
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in values
    )


def _numbers(value: Any, count: int) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == count and _finite(value)


def _box(value: Any) -> Optional[tuple]:
    """Return a finite 4-number box of a sample column, or None (missing / unknown)."""
    if not isinstance(value, (list, tuple)) or not _numbers(list(value), 4):
        return None
    return tuple(float(v) for v in value)


def _response(completion: str) -> Optional[str]:
    data = _answer_dict(completion)
    if data is None:
        return None
    response = data.get("response")
    return response if isinstance(response, str) else None


# -- shared terms ---------------------------------------------------------------------------
def think_format(completion: str, sample: Sample) -> float:
    """R_think: the whole text is ``<think>..</think>`` then ``<answer>..</answer>``."""
    return 1.0 if has_think_answer_format(completion) else 0.0


def answer_text(
    completion: str, sample: Sample, *, lpr: bool = False, reference: bool = False
) -> float:
    """
    R_text: referring "is found"/"is detected"; option: the GT letter; open: a close word.

    With ``lpr`` the non-referring answers must also be at most three words long.
    ``reference``: the reference's rules (``reference_rewards.answer_text``).
    """
    if reference:
        from . import reference_rewards

        return reference_rewards.answer_text(completion, sample, lpr=lpr)
    response = _response(completion)
    if response is None:
        return 0.0
    try:
        kind = normalize_question_type(str(sample.get("q_type", "referring")))
    except ValueError:
        return 0.0
    answer = str(sample.get("answer", ""))
    if kind == "referring":
        lowered = response.lower()
        return 1.0 if ("is found" in lowered or "is detected" in lowered) else 0.0
    if lpr and len(response.split()) > LPR_MAX_ANSWER_WORDS:
        return 0.0
    ok = option_correct(response, answer) if kind == "option" else open_correct(response, answer)
    return 1.0 if ok else 0.0


# -- GSE terms (GSE frame, nominal 1920x1080) ------------------------------------------------
def gse_format(completion: str, sample: Sample) -> float:
    """R_fmt: ``bbox`` of four finite numbers and a non-empty ``response``."""
    data = _answer_dict(completion)
    if data is None:
        return 0.0
    response = data.get("response")
    ok = _numbers(data.get("bbox"), 4) and isinstance(response, str) and response.strip() != ""
    return 1.0 if ok else 0.0


def _gse_box(completion: str) -> Optional[tuple]:
    answer = _stage_answer(completion, "gse")
    return answer.bbox if answer is not None and answer.found else None


def gse_region_l1(completion: str, sample: Sample) -> Optional[float]:
    """R_regL1: mean |b - best_region| < 20 px (None without a best_region)."""
    target = _box(sample.get("best_region"))
    if target is None:
        return None
    box = _gse_box(completion)
    if box is None:
        return 0.0
    return 1.0 if sum(abs(a - b) for a, b in zip(box, target)) / 4 < GSE_REGION_L1_PX else 0.0


def gse_region_iou(completion: str, sample: Sample) -> Optional[float]:
    """R_regIoU: IoU(b, best_region) > 0.9 (None without a best_region)."""
    target = _box(sample.get("best_region"))
    if target is None:
        return None
    box = _gse_box(completion)
    return 1.0 if box is not None and box_iou(box, target) > GSE_REGION_IOU else 0.0


def gse_contain(completion: str, sample: Sample) -> float:
    """R_contain: the GT box lies inside the predicted region."""
    box, gt = _gse_box(completion), _box(sample.get("gt_box"))
    if box is None or gt is None:
        return 0.0
    inside = box[0] <= gt[0] and box[1] <= gt[1] and box[2] >= gt[2] and box[3] >= gt[3]
    return 1.0 if inside else 0.0


def gse_size(completion: str, sample: Sample) -> float:
    """R_size: 1 when both sides (``x2 - x1``, ``y2 - y1``) are in [241, 271], 0.5 for one."""
    box = _gse_box(completion)
    if box is None:
        return 0.0
    lo, hi = GSE_REGION_SIDE
    good = sum(lo <= side <= hi for side in (box[2] - box[0], box[3] - box[1]))
    return good / 2.0


# -- LPR terms (LPR frame, 512x512 crop pixels) ----------------------------------------------
def lpr_format(completion: str, sample: Sample) -> float:
    """R_fmt: ``bbox`` (4), ``points_1`` and ``points_2`` (2 each), a non-blank ``response``."""
    data = _answer_dict(completion)
    if data is None:
        return 0.0
    response = data.get("response")
    ok = (
        _numbers(data.get("bbox"), 4)
        and _numbers(data.get("points_1"), 2)
        and _numbers(data.get("points_2"), 2)
        and isinstance(response, str)
        and response.strip() != ""
    )
    return 1.0 if ok else 0.0


def _lpr_answer(completion: str) -> Optional[StageAnswer]:
    answer = _stage_answer(completion, "lpr")
    return answer if answer is not None and answer.found else None


def lpr_iou(completion: str, sample: Sample) -> float:
    """R_iou: IoU(b, GT box) > 0.5 (inclusive areas)."""
    answer, gt = _lpr_answer(completion), _box(sample.get("gt_box"))
    return 1.0 if answer and gt and box_iou(answer.bbox, gt) > LPR_IOU else 0.0


def lpr_box_l1(completion: str, sample: Sample) -> float:
    """R_boxL1: mean |b - GT box| < 10 px."""
    answer, gt = _lpr_answer(completion), _box(sample.get("gt_box"))
    if not answer or not gt:
        return 0.0
    return 1.0 if sum(abs(a - b) for a, b in zip(answer.bbox, gt)) / 4 < LPR_BOX_L1_PX else 0.0


def lpr_points(completion: str, sample: Sample) -> float:
    """
    Score R_point: both points inside the predicted box, mean distance below 100 px.

    The mean distance to the GT points is taken under the better of the two pairings.
    """
    answer = _lpr_answer(completion)
    gt_points = sample.get("gt_points")
    if (
        not answer
        or not isinstance(gt_points, (list, tuple))
        or len(gt_points) != 2
        or not all(_numbers(p, 2) for p in gt_points)
    ):
        return 0.0
    x1, y1, x2, y2 = answer.bbox
    if not all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in answer.points):
        return 0.0
    (p, q), (g, h) = answer.points, gt_points
    same = (math.dist(p, g) + math.dist(q, h)) / 2
    swapped = (math.dist(p, h) + math.dist(q, g)) / 2
    return 1.0 if min(same, swapped) < LPR_POINT_DIST_PX else 0.0


# -- registry and TRL wrappers ---------------------------------------------------------------
def lpr_text(completion: str, sample: Sample, *, reference: bool = False) -> float:
    """R_text of LPR (answers of open and option questions at most three words)."""
    return answer_text(completion, sample, lpr=True, reference=reference)


def gse_text(completion: str, sample: Sample, *, reference: bool = False) -> float:
    """R_text of GSE."""
    return answer_text(completion, sample, lpr=False, reference=reference)


_TERMS: Dict[str, Dict[str, Term]] = {
    "lpr": {
        "lpr_iou": lpr_iou,
        "lpr_think": think_format,
        "lpr_format": lpr_format,
        "lpr_points": lpr_points,
        "lpr_box_l1": lpr_box_l1,
        "lpr_text": lpr_text,
    },
    "gse": {
        "gse_think": think_format,
        "gse_text": gse_text,
        "gse_format": gse_format,
        "gse_region_l1": gse_region_l1,
        "gse_region_iou": gse_region_iou,
        "gse_contain": gse_contain,
        "gse_size": gse_size,
    },
}


def term_names(stage: str) -> List[str]:
    """Stable names of a stage's terms (the names TRL logs as ``rewards/<name>/mean``)."""
    return list(_TERMS[stage])


def completion_text(completion: Any) -> str:
    """Return the text of a TRL completion: a string or chat messages ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else ""
    return ""


def rows(columns: Mapping[str, Any], count: int) -> List[dict]:
    """Per-completion sample dicts from TRL's column lists (one list entry per completion)."""
    lists = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == count}
    return [{k: v[i] for k, v in lists.items()} for i in range(count)]


class RewardTerm:
    """
    A term as a TRL reward function ``f(prompts, completions, **columns) -> list``.

    Picklable; ``__name__`` is the stable term name TRL logs under.
    """

    def __init__(self, name: str, term: Term, reference: bool = False):
        self.__name__ = name
        self.term = term
        self.reference = reference

    def score(self, completion: str, sample: Sample) -> Optional[float]:
        if self.reference:
            from .reference_rewards import TERMS

            return TERMS[self.__name__](completion, sample)
        return self.term(completion, sample)

    def __call__(self, prompts=None, completions=(), **columns) -> List[Optional[float]]:
        samples = rows(columns, len(completions))
        return [self.score(completion_text(c), s) for c, s in zip(completions, samples)]


def make_reward_terms(
    stage: str, reference: bool = False, exclude: Sequence[str] = ()
) -> List[RewardTerm]:
    """Return the stage's terms as TRL reward functions, in the registry's order."""
    if stage not in _TERMS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_TERMS)}")
    return [
        RewardTerm(name, term, reference)
        for name, term in _TERMS[stage].items()
        if name not in exclude
    ]


def weighted_total(scores: Mapping[str, Optional[float]], weights: Mapping[str, float]) -> float:
    """Sum of weight x score over the terms that apply (weight 1 when not given)."""
    return float(
        sum(weights.get(name, 1.0) * value for name, value in scores.items() if value is not None)
    )


def score_all(stage: str, completion: str, sample: Sample, reference: bool = False) -> dict:
    """Every term of a stage on one completion, by name (for tests and offline inspection)."""
    return {t.__name__: t.score(completion, sample) for t in make_reward_terms(stage, reference)}
