"""
Reading the ``<think>..</think><answer>{json}</answer>`` text the stages emit.

Pure functions, shared by the pipeline and the RL rewards (``training/``); model output is
data: it is parsed (JSON, then JSON5 for single quotes), never evaluated.

Where the answer is:

1. the last ``<answer>`` block after the last ``</think>`` (a model that quotes the prompt's
   template while thinking must not win over its real answer), not inside a ``<think>``
   that is never closed;
2. else the last ``<answer>`` block inside the closed ``<think>`` text, unless a later
   ``<think>`` is still open (then the text was cut while thinking);
3. else the first ``{...}`` after the last ``</think>``.

Inside that text the first JSON object is taken, as the reference does (its ``{[^}]+}``).
Anything that is not a usable answer raises ``ParseError`` (which keeps the raw text);
``TruncatedAnswerError`` says the text stopped inside an open block (a generation cut at
``max_new_tokens``), so the stage can report that instead of "unparsable".
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import json5

from .geometry import Box, Point

MAX_ANSWER_CHARS = 20_000
# No frame of the cascade (native up to 8K, GSE 1920x1080, LPR 512) has a coordinate this far
# out; larger values, NaN and infinities are model garbage, not boxes.
MAX_COORDINATE = 100_000.0

_ANSWER_RE = re.compile(r"<answer>(.*?)(</answer>|$)", re.DOTALL | re.IGNORECASE)
_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_NOT_FOUND_RE = re.compile(r"no object found", re.IGNORECASE)
_NUMBER_TEXT_RE = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_FLAT_OBJECT_RE = re.compile(r"{[^}]+}")  # the reference's object pattern
_WORD_APOSTROPHE_RE = re.compile(r"(?<=[^\W\d_])'(?=[^\W\d_])")


class ParseError(ValueError):
    """A stage's text that is not a usable answer; ``raw`` keeps what the model said."""

    truncated = False

    def __init__(self, reason: str, raw: str):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class TruncatedAnswerError(ParseError):
    """
    No usable answer, and the text ends inside an open ``<think>`` or ``<answer>`` block.

    The generation stopped early (typically at ``max_new_tokens``).
    """

    truncated = True


@dataclass(frozen=True)
class AnswerJSON:
    r"""
    The answer object of a model text, before any key is interpreted.

    ``strict_format``: the whole text is ``<think>..</think>\s*<answer>..</answer>`` (the
    FineRS format reward). ``think``: the last closed ``<think>`` block's text, stripped.
    """

    data: dict
    strict_format: bool
    think: str


@dataclass
class StageAnswer:
    """One stage's parsed answer, in that stage's nominal frame (GSE or LPR pixels)."""

    raw: str
    response: str
    found: bool
    bbox: Optional[Box] = None
    points: List[Point] = field(default_factory=list)
    think: str = ""
    strict_format: bool = False


def has_think_answer_format(text: str) -> bool:
    r"""Check the FineRS format reward: ``<think>.*?</think>\s*<answer>.*?</answer>`` (dotall)."""
    return isinstance(text, str) and _FORMAT_RE.fullmatch(text.strip()) is not None


def _outside_thought(text: str) -> Tuple[str, bool]:
    """(text after the last ``</think>``, cut at a ``<think>`` never closed; whether one is)."""
    lower = text.lower()
    close = lower.rfind(_THINK_CLOSE)
    start = close + len(_THINK_CLOSE) if close >= 0 else 0
    opened = lower.find(_THINK_OPEN, start)
    return (text[start:opened], True) if opened >= 0 else (text[start:], False)


def looks_truncated(text: str) -> bool:
    """Return True when ``text`` ends inside a ``<think>`` or ``<answer>`` block never closed."""
    if not isinstance(text, str):
        return False
    tail, thought_open = _outside_thought(text)
    if thought_open:
        return True
    blocks = list(_ANSWER_RE.finditer(tail))
    return bool(blocks) and not blocks[-1].group(2)


def has_final_answer(text: str) -> bool:
    """
    Return True when ``text`` holds a closed ``<answer>`` block where the answer is read first.

    That is after the last ``</think>``, not inside a ``<think>`` still open (the point at which
    a generation may stop).
    """
    if not isinstance(text, str):
        return False
    tail, thought_open = _outside_thought(text)
    blocks = list(_ANSWER_RE.finditer(tail))
    return not thought_open and bool(blocks) and bool(blocks[-1].group(2))


def _answer_text(text: str) -> Optional[str]:
    """Return the text that holds the answer object (see the module docstring), or None."""
    tail, thought_open = _outside_thought(text)
    after_think = list(_ANSWER_RE.finditer(tail))
    if after_think:
        return after_think[-1].group(1)
    if _THINK_CLOSE in text.lower() and not thought_open:
        # An <answer> inside a closed <think>: the model put its answer there.
        inside = list(_ANSWER_RE.finditer(text[:text.lower().rfind(_THINK_CLOSE)]))
        if inside:
            return inside[-1].group(1)
    return tail


def _first_object(text: str) -> Optional[str]:
    """Return the first balanced ``{...}`` (quotes respected), or None when it never closes."""
    start = text.find("{")
    if start < 0:
        return None
    depth, quote, escaped = 0, "", False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:index + 1]
    return None


def _single_to_double_quotes(text: str) -> str:
    """Python-style ``{'a': 'b'}`` as JSON text; json5 reads it too, but 100x slower."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char not in "'\"":
            out.append(char)
            index += 1
            continue
        end, chunk = index + 1, []
        while end < len(text) and text[end] != char:
            if text[end] == "\\" and end + 1 < len(text):
                chunk.append(text[end:end + 2])
                end += 2
                continue
            chunk.append(text[end])
            end += 1
        body = "".join(chunk)
        if char == "'":
            body = body.replace("\\'", "'").replace('"', '\\"')
        out.append('"' + body + '"')
        index = end + 1
    return "".join(out)


def _escape_word_apostrophes(text: str) -> str:
    r"""
    Escape in-word apostrophes: ``'It's white.'`` as ``'It\'s white.'``.

    An apostrophe between two letters is part of a word, never a Python-style string's quote.
    """
    return _WORD_APOSTROPHE_RE.sub(r"\\'", text)


def _load_object(candidate: str) -> Optional[dict]:
    for loads in (json.loads, lambda c: json.loads(_single_to_double_quotes(c)), json5.loads,
                  lambda c: json.loads(_single_to_double_quotes(_escape_word_apostrophes(c)))):
        try:
            value = loads(candidate)
        except Exception:  # noqa: BLE001 -- third-party parsers of untrusted text raise many types
            continue
        if isinstance(value, dict):
            return value
    return None


def _fail(reason: str, text: str) -> ParseError:
    cls = TruncatedAnswerError if looks_truncated(text) else ParseError
    if cls is TruncatedAnswerError:
        reason = f"answer cut off before it closed ({reason})"
    return cls(reason, text)


def read_answer(text: str) -> AnswerJSON:
    """
    Read the answer object of a model text and whether its format is strict; raise ParseError.

    For the pipeline and for the RL rewards alike: no key is interpreted here.
    """
    if not isinstance(text, str):
        raise ParseError(f"model output is not text ({type(text).__name__})", repr(text)[:200])
    if len(text) > MAX_ANSWER_CHARS:
        raise ParseError(f"model output too long ({len(text)} characters)",
                         text[:MAX_ANSWER_CHARS])
    block = _answer_text(text)
    if block is None or "{" not in block:
        raise _fail("no JSON object in the <answer> block", text)
    candidates = [c for c in (_first_object(block),) if c]
    flat = _FLAT_OBJECT_RE.search(block)
    if flat:
        candidates.append(flat.group(0).replace(']"', ']'))  # the reference's repair
    for candidate in candidates:
        data = _load_object(candidate)
        if data is not None:
            return AnswerJSON(data, has_think_answer_format(text), _think(text))
    shown = (candidates[0] if candidates else block.strip())[:200]
    raise _fail(f"unparsable answer JSON: {shown!r}", text)


def extract_answer_json(text: str) -> dict:
    """Return the answer's JSON object as a dict; raise ParseError."""
    return read_answer(text).data


def _describe(value) -> str:
    """Return a short repr that cannot fail (ints past Python's digit limit cannot be printed)."""
    try:
        return repr(value)[:120]
    except ValueError:
        return f"<{type(value).__name__} too large to print>"


def _number(value) -> Optional[float]:
    """Return a finite coordinate within ``MAX_COORDINATE``, from a number or numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if -MAX_COORDINATE <= value <= MAX_COORDINATE else None
    if isinstance(value, str):
        if len(value) > 40 or not _NUMBER_TEXT_RE.fullmatch(value):
            return None
        value = float(value)
    if isinstance(value, float) and math.isfinite(value) and abs(value) <= MAX_COORDINATE:
        return value
    return None


def _numbers(value, count: int, name: str, raw: str) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ParseError(f"'{name}' must be a list of {count} numbers, got {_describe(value)}",
                         raw)
    numbers = tuple(_number(v) for v in value)
    if any(v is None for v in numbers):
        raise ParseError(f"'{name}' must be {count} numbers (finite, within "
                         f"+-{MAX_COORDINATE:.0f}), got {_describe(value)}", raw)
    return numbers


def _key(data: dict, exact: str) -> Optional[str]:
    """
    Return ``exact`` when present, else the first key containing it.

    This is the reference's lookup, which also reads Qwen2.5-VL's native ``bbox_2d``.
    """
    if exact in data:
        return exact
    return next((k for k in data if isinstance(k, str) and exact in k.lower()), None)


def _point_keys(data: dict) -> List[str]:
    if "points_1" in data and "points_2" in data:
        return ["points_1", "points_2"]
    return [k for k in data if isinstance(k, str) and "points" in k.lower()][:2]


def _response(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _describe(value) if isinstance(value, (int, float)) else ""


def _think(text: str) -> str:
    lower = text.lower()
    close = lower.rfind(_THINK_CLOSE)
    if close < 0:
        return ""
    opened = lower.rfind(_THINK_OPEN, 0, close)
    return text[opened + len(_THINK_OPEN):close].strip() if opened >= 0 else ""


def _is_referring(question_type: str) -> bool:
    return str(question_type).strip().lower() == "referring"


def _parse(text: str, points_wanted: int, question_type: str) -> StageAnswer:
    answer = read_answer(text)
    data = answer.data
    response = _response(data.get("response"))
    bbox_key = _key(data, "bbox")
    if bbox_key is None:
        raise ParseError("answer has no 'bbox'", text)
    bbox = _numbers(data[bbox_key], 4, "bbox", text)
    # Only a referring answer's response is a found/not-found statement; an open or option
    # answer is the answer itself, and its box stands.
    said_not_found = _is_referring(question_type) and bool(_NOT_FOUND_RE.search(response))
    if all(v == 0 for v in bbox) or said_not_found:
        return StageAnswer(text, response, False, think=answer.think,
                           strict_format=answer.strict_format)
    if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
        raise ParseError(f"bbox corners out of order: {list(bbox)}", text)
    points = []
    if points_wanted:
        keys = _point_keys(data)
        if len(keys) < points_wanted:
            missing = [k for k in ("points_1", "points_2") if k not in data][0]
            raise ParseError(f"answer has no '{missing}'", text)
        points = [_numbers(data[k], 2, k, text) for k in keys]
    return StageAnswer(text, response, True, bbox, points, answer.think, answer.strict_format)


def parse_gse(text: str, question_type: str = "referring") -> StageAnswer:
    """
    GSE answer: ``bbox`` (256x256 region, GSE frame) and ``response``; raises ParseError.

    ``question_type`` (referring | open/reasoning | option): only a referring response of
    "no object found" makes the answer not found.
    """
    return _parse(text, 0, question_type)


def parse_lpr(text: str, question_type: str = "referring") -> StageAnswer:
    """
    Parse the LPR answer: ``bbox``, ``points_1``, ``points_2`` (LPR frame) and ``response``.

    Raises ParseError. ``question_type`` as for ``parse_gse``.
    """
    return _parse(text, 2, question_type)
