"""Reading the ``<think>..</think><answer>{json}</answer>`` text the stages emit.

The ``<answer>`` block is read first; only when it is missing is the first ``{...}`` after
the ``<think>`` block tried. JSON may be double- or single-quoted (JSON5 covers both).
Model output is data: it is parsed, never evaluated. Anything that is not a well-formed
answer becomes a ``ParseError`` that keeps the raw text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import List, Optional

import json5

from .geometry import Box, Point

MAX_ANSWER_CHARS = 20_000
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_NOT_FOUND_RE = re.compile(r"no object found", re.IGNORECASE)


class ParseError(ValueError):
    """A stage's text that is not a usable answer; ``raw`` keeps what the model said."""

    def __init__(self, reason: str, raw: str):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass
class StageAnswer:
    """One stage's parsed answer, in that stage's nominal frame (GSE or LPR pixels)."""

    raw: str
    response: str
    found: bool
    bbox: Optional[Box] = None
    points: List[Point] = field(default_factory=list)
    think: str = ""


def has_think_answer_format(text: str) -> bool:
    """The FineRS format reward: ``<think>.*?</think>\\s*<answer>.*?</answer>`` (dotall)."""
    return _FORMAT_RE.fullmatch(text.strip()) is not None


def _json_object(text: str) -> Optional[str]:
    start = text.find("{")
    end = text.rfind("}")
    return text[start:end + 1] if start >= 0 and end > start else None


def extract_answer_json(text: str) -> dict:
    """The answer's JSON object as a dict; raises ParseError."""
    if len(text) > MAX_ANSWER_CHARS:
        raise ParseError(f"model output too long ({len(text)} characters)", text[:MAX_ANSWER_CHARS])
    match = _ANSWER_RE.search(text)
    candidate = _json_object(match.group(1)) if match else None
    if candidate is None:
        candidate = _json_object(_THINK_RE.sub("", text))
    if candidate is None:
        raise ParseError("no JSON object in the <answer> block", text)
    for loads in (json.loads, json5.loads):
        try:
            value = loads(candidate)
        except (ValueError, TypeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise ParseError(f"unparsable answer JSON: {candidate[:200]!r}", text)


def _numbers(value, count: int, name: str, raw: str) -> tuple:
    if (not isinstance(value, (list, tuple)) or len(value) != count
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ParseError(f"'{name}' must be a list of {count} numbers, got {value!r}"[:300], raw)
    return tuple(float(v) for v in value)


def _think(text: str) -> str:
    match = re.search(r"<think>(.*?)</think>", text, re.DOTALL | re.IGNORECASE)
    return match.group(1).strip() if match else ""


def _parse(text: str, point_keys: tuple) -> StageAnswer:
    data = extract_answer_json(text)
    response = data.get("response", "")
    response = response if isinstance(response, str) else str(response)
    if "bbox" not in data:
        raise ParseError("answer has no 'bbox'", text)
    bbox = _numbers(data["bbox"], 4, "bbox", text)
    not_found = all(v == 0 for v in bbox) or bool(_NOT_FOUND_RE.search(response))
    if not_found:
        return StageAnswer(text, response, False, think=_think(text))
    if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
        raise ParseError(f"bbox corners out of order: {list(bbox)}", text)
    points = []
    for key in point_keys:
        if key not in data:
            raise ParseError(f"answer has no '{key}'", text)
        points.append(_numbers(data[key], 2, key, text))
    return StageAnswer(text, response, True, bbox, points, _think(text))


def parse_gse(text: str) -> StageAnswer:
    """GSE answer: ``bbox`` (256x256 region, GSE frame) and ``response``."""
    return _parse(text, ())


def parse_lpr(text: str) -> StageAnswer:
    """LPR answer: ``bbox``, ``points_1``, ``points_2`` (LPR frame) and ``response``."""
    return _parse(text, ("points_1", "points_2"))
