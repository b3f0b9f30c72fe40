"""
Random and adversarial model answers.

The parsers return a usable answer or raise ParseError, nothing else, and what they return is
always finite and in order.
"""
import math
import random

import pytest

from finers_ros.parsing import MAX_COORDINATE, ParseError, parse_gse, parse_lpr, read_answer

VALID = ("<think>The red screw is left of the wrench.</think><answer>{'bbox': [10, 100, 200, "
         "210], 'points_1': [30, 110], 'points_2': [35, 180], 'response': 'The object is found.'}"
         "</answer>")
TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "{", "}", "[", "]", "'", '"', ",", ":",
          "\\", "NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "0x" + "f" * 300, "null",
          "true", "'bbox'", "'points_1'", "'points_2'", "'response'", "bbox_2d", "No object found",
          "\u00e9", "\u202e", "\x00", "\n", " ", "-0", "1.5", "'12'", "[0, 0, 0, 0]",
          "[[1, 2], [3, 4]]",
          "{'a': {'b': {'c': 1}}}", "//", "/*", "*/", "__import__('os')", "\ud800"]
ADVERSARIAL = [
    "", " ", "{}", "{" * 5000, "}" * 5000, "[" * 5000, "<answer>" + "[" * 5000 + "</answer>",
    "<answer>{'bbox': " + "[" * 3000 + "]" * 3000 + "}</answer>",
    "<answer>{'bbox': [1, 2, 3, 4], 'points_1': " + "[" * 900 + "</answer>",
    "<think>" * 2000, "</think>" * 2000, "<answer>" * 2000, "</answer>" * 2000,
    "<think>" + "</think><answer>" * 1500 + "x",
    "<answer>{'bbox': [1, 2, 3, 4], 'response': '" + "x" * 19000 + "'}</answer>",
    "<answer>{'bbox': [1, 2, 3, 4], 'points_1': {'x': 1}, 'points_2': [1, 2]}</answer>",
    "<answer>{'bbox': 'one two three four', 'response': 7}</answer>",
    "<answer>{'bbox': [1, 2, 3, 4], 'response': 1000000000000000000000000000000000}</answer>",
    "<answer>{'bbox': [1, 2, 3, 4], 'response': 0x" + "f" * 5000 + "}</answer>",
    "<answer>{'bbox': [1, 2, 3, 4], 'points_1': [1, 2], 'points_2': [1, 2, 3]}</answer>",
    "<answer>{'BBOX': [1, 2, 3, 4], 'points_a': [1, 2], 'points_b': [3, 4]}</answer>",
    "<answer>{\"bbox\": [1, 2, 3, 4], \"bbox\": [NaN, 2, 3, 4]}</answer>",
    "<answer>[1, 2, 3, 4]</answer>", "<answer>\"{'bbox': [1, 2, 3, 4]}\"</answer>",
    None, b"<answer>{}</answer>", 42,
]


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        at = rng.randint(0, len(chars))
        if op < 0.3 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op < 0.8:
            chars[at:at] = list(rng.choice(TOKENS))
        else:
            chars = chars[:at]  # a generation cut anywhere
    return "".join(chars)


def random_text(rng: random.Random) -> str:
    parts = [rng.choice(TOKENS) if rng.random() < 0.6 else str(rng.uniform(-1e6, 1e6))
             for _ in range(rng.randint(0, 40))]
    return "".join(parts)


def answers(count: int):
    rng = random.Random(2026)
    yield from ADVERSARIAL
    for index in range(count):
        yield mutate(VALID, rng) if index % 2 else random_text(rng)


def check(answer, points: int) -> None:
    if not answer.found:
        assert answer.bbox is None and answer.points == []
        return
    x1, y1, x2, y2 = answer.bbox
    assert all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in answer.bbox)
    assert x1 <= x2 and y1 <= y2
    assert len(answer.points) == points
    assert all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for p in answer.points for v in p)
    assert isinstance(answer.response, str)


@pytest.mark.parametrize("parse, points", [(parse_gse, 0), (parse_lpr, 2)], ids=["gse", "lpr"])
def test_parsers_raise_only_parse_errors(parse, points):
    parsed = failed = 0
    for text in answers(1500):
        for kind in ("referring", "open"):
            try:
                answer = parse(text, kind)
            except ParseError as exc:
                assert isinstance(exc.reason, str) and len(exc.reason) < 400
                failed += 1
                continue
            check(answer, points)
            parsed += 1
    # The mutated answers must exercise both outcomes, or the fuzzing proves nothing.
    assert parsed > 200 and failed > 1500, (parsed, failed)


def test_read_answer_raises_only_parse_errors():
    for text in answers(500):
        try:
            result = read_answer(text)
        except ParseError:
            continue
        assert isinstance(result.data, dict) and isinstance(result.strict_format, bool)
