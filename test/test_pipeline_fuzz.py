"""
No model text, however malformed, makes ``FineRSPipeline.run`` raise.

Thousands of random and adversarial GSE/LPR answers go through the real pipeline, parser,
geometry and bring-up segmenter; the models are stage backends that answer with canned text.
"""

import random

import numpy as np
import pytest

from finers_ros.config import PipelineConfig
from finers_ros.pipeline import FineRSPipeline
from finers_ros.segmenters.bringup import BringupSegmenter
from finers_ros.stages.base import Generation, VisionLanguageModel

NUMBERS = [
    "0",
    "1",
    "-1",
    "12.5",
    "255",
    "511",
    "512",
    "640",
    "1e3",
    "-5e2",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e308",
    "-1e308",
    "1e309",
    "9" * 400,
    "-" + "9" * 400,
    "0x1F",
    "1_000",
    "'12'",
    '"7"',
    "null",
    "true",
    "[]",
    "{}",
    "'a'",
    "1e-320",
    "+3",
    ".5",
    "5.",
    "--1",
    "2**1000",
]
TEMPLATES = [
    "<think>{think}</think><answer>{{'bbox': [{n0}, {n1}, {n2}, {n3}], "
    "'response': '{resp}'}}</answer>",
    "<answer>{{\"bbox\": [{n0}, {n1}, {n2}, {n3}], \"points_1\": [{n4}, {n5}], "
    "\"points_2\": [{n6}, {n7}], \"response\": \"{resp}\"}}</answer>",
    "<think>{think}<answer>{{'bbox': [{n0},{n1},{n2},{n3}]}}</answer></think>"
    "<answer>{{'bbox': [{n4}, {n5}, {n6}, {n7}], 'points_1': [{n0}, {n1}], "
    "'points_2': [{n2}, {n3}], 'response': '{resp}'}}</answer>",
    "{{'bbox': [{n0}, {n1}, {n2}, {n3}], 'points_1': [{n4}], 'points_2': {n5}}}",
    "<answer>{{'bbox': {n0}, 'response': {n1}}}</answer>",
    "<answer>{{'bbox': [[{n0}, {n1}], [{n2}, {n3}]], "
    "'points_1': [{n4}, {n5}, {n6}]}}</answer>",
    "<answer>{{'bbox': [{n0}, {n1}, {n2}, {n3}], 'points_1': [{n4}, {n5}], "
    "'points_2': [{n6}, {n7}], 'response': '{resp}'}} {{'bbox': [1, 2, 3, 4]}}</answer>",
    "<answer>{{'bbox': [{n0}, {n1}, {n2}, {n3}]",
    "<think>{think}</think>",
    "",
    "{resp}",
]
RESPONSES = [
    "The object is found.",
    "No object founded",
    "A",
    "",
    "\\u0000",
    "<answer>",
    "}{",
    "'",
    "red \u00e9\u00e8 \u2603",
    "x" * 3000,
]
THINKS = [
    "",
    "looking",
    "<answer>{'bbox': [5, 5, 6, 6]}</answer>",
    "{" * 200,
    "[" * 5000,
    "</think>",
]
GARBAGE = [
    "\x00\x01\x02",
    "<answer>" * 50,
    "{" * 10000 + "}" * 10000,
    "[" * 100000,
    "\ud800",
    "<think></think><answer></answer>",
    "<answer>{'bbox': [1,2,3,4], 'bbox': [NaN]}</answer>",
]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.04:
        return rng.choice(GARBAGE)
    if rng.random() < 0.03:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
    values = {
        f"n{i}": rng.choice(NUMBERS) if rng.random() < 0.4 else str(rng.randint(-50, 700))
        for i in range(8)
    }
    return rng.choice(TEMPLATES).format(
        think=rng.choice(THINKS), resp=rng.choice(RESPONSES), **values
    )


def valid_gse(rng: random.Random) -> str:
    """Return a well-formed GSE answer, its region sometimes past the 480x270 frame's borders."""
    x, y = rng.randint(-100, 300), rng.randint(-100, 150)
    box = [x, y, x + 256, y + 256]
    return f"<answer>{{'bbox': {box}, 'response': 'The object is found.'}}</answer>"


def valid_lpr(rng: random.Random) -> str:
    """Return a well-formed LPR answer in the 128x128 LPR frame, points anywhere around the box."""
    x1, y1 = rng.randint(-20, 120), rng.randint(-20, 120)
    x2, y2 = x1 + rng.randint(0, 60), y1 + rng.randint(0, 60)
    p = [rng.randint(-30, 160) for _ in range(4)]
    return (
        f"<think>ok</think><answer>{{'bbox': [{x1}, {y1}, {x2}, {y2}], "
        f"'points_1': [{p[0]}, {p[1]}], 'points_2': [{p[2]}, {p[3]}], "
        "'response': 'The object is found.'}</answer>"
    )


class CannedModel(VisionLanguageModel):
    """A stage backend whose answers come from a list (the next one on every call)."""

    name = "canned"

    def __init__(self):
        self.texts = []

    def generate(self, image: np.ndarray, prompt: str) -> Generation:
        text = self.texts.pop(0)
        return (
            Generation(text, len(prompt), len(text), 0.0)
            if not isinstance(text, Generation)
            else text
        )

    def close(self) -> None:
        pass


@pytest.mark.parametrize("seed", range(4))
def test_random_and_adversarial_answers_never_raise(seed):
    rng = random.Random(seed)
    config = PipelineConfig()
    config.geometry.gse_size = (480, 270)
    config.geometry.lpr_size = (128, 128)
    config.geometry.crop_size = 96
    gse, lpr = CannedModel(), CannedModel()
    pipeline = FineRSPipeline(gse, lpr, BringupSegmenter(), config)
    image = np.random.default_rng(seed).integers(0, 255, (270, 480, 3), dtype=np.uint8)
    image[100:140, 200:260] = (220, 30, 30)
    outcomes = {"found": 0, "gse": 0, "lpr": 0, "segment": 0, "not found": 0}
    for _ in range(750):
        gse.texts[:] = [valid_gse(rng) if rng.random() < 0.5 else random_text(rng)]
        lpr.texts[:] = [valid_lpr(rng) if rng.random() < 0.5 else random_text(rng)]
        if rng.random() < 0.01:
            gse.texts[:] = [Generation(None, 0, 0, 0.0)]  # a backend bug: no text at all
        result = pipeline.run(image, "find the red screw")
        if result.found:
            outcomes["found"] += 1
            assert result.mask.shape == (270, 480) and result.mask.any() and result.error is None
            assert all(np.isfinite(v) for v in result.box)
            assert all(np.isfinite(v) for p in result.points for v in p)
            crop = result.crop
            assert 0 <= crop.x0 and crop.x0 + crop.width <= 480 and crop.y0 + crop.height <= 270
        elif result.error is not None:
            outcomes[result.error_stage] += 1
            assert "\n" not in result.error and len(result.error) <= 500
            assert result.error_stage in ("gse", "lpr", "segment")
        else:
            outcomes["not found"] += 1
    # the corpus reaches every branch, or the test proves less than it claims
    assert min(outcomes.values()) > 0, outcomes
