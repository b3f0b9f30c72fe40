"""The weight-free GSE/LPR stand-in: same prompts in, same tagged JSON out.

It reads the question from the prompt, grounds colour/size/position words with
``finers_ros.bringup`` and writes ``<think>..</think><answer>{...}</answer>`` exactly as
a checkpoint would (single-quoted JSON, as the checkpoints often emit), so the parser and
the pipeline run the same code paths as with Qwen2.5-VL.
"""
from __future__ import annotations

import time

import numpy as np

from ..bringup.detect import components, inscribed_points, select
from ..bringup.language import parse_instruction
from ..prompts import is_gse_prompt, question_from_prompt
from .base import Generation

NOT_FOUND_RESPONSE = "No object founded"


def _answer(think: str, fields: dict) -> str:
    body = ", ".join(f"'{key}': {value!r}" for key, value in fields.items())
    return f"<think> {think} </think><answer>{{{body}}}</answer>"


class BringupModel:
    """Prompt-driven grounding by colour components; knows GSE from LPR by the prompt."""

    name = "bringup"

    def __init__(self, region_size: int = 256):
        self.region_size = region_size

    def generate(self, image: np.ndarray, prompt: str) -> Generation:
        start = time.perf_counter()
        text = self._respond(image, prompt)
        return Generation(text, len(prompt.split()), len(text.split()), time.perf_counter() - start)

    def _respond(self, image: np.ndarray, prompt: str) -> str:
        gse = is_gse_prompt(prompt)
        question = question_from_prompt(prompt) or ""
        query = parse_instruction(question)
        if "And respond with whether the object is found." not in prompt:
            return self._not_found(gse, "open and multiple-choice questions need a vision-language model")
        if not query.groundable:
            return self._not_found(gse, query.reason())
        height, width = image.shape[:2]
        candidates = components(image, query.colour)
        if gse:
            chosen, note = select(candidates, query, (width, height))
        else:
            chosen, note = select(candidates, query, (width, height), use_position=False,
                                  anchor=(width / 2.0, height / 2.0))
        if chosen is None:
            return self._not_found(gse, note)
        if gse:
            return _answer(f"Looking for a {query.colour} object: {note}.",
                           {"bbox": self._region(chosen.box, width, height),
                            "response": "The object is found."})
        p1, p2 = inscribed_points(chosen.mask)
        return _answer(f"Refining the {query.colour} object: {note}.",
                       {"bbox": list(chosen.box), "points_1": [int(p1[0]), int(p1[1])],
                        "points_2": [int(p2[0]), int(p2[1])], "response": "The object is found."})

    def _region(self, box, width: int, height: int) -> list:
        """A ``region_size`` square (bigger if the object is) around the box, inside the frame."""
        x1, y1, x2, y2 = box
        side = max(self.region_size, x2 - x1 + 17, y2 - y1 + 17)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        left = int(min(max(round(cx - side / 2.0), 0), max(width - 1 - side, 0)))
        top = int(min(max(round(cy - side / 2.0), 0), max(height - 1 - side, 0)))
        return [left, top, left + side, top + side]

    @staticmethod
    def _not_found(gse: bool, reason: str) -> str:
        fields = {"bbox": [0, 0, 0, 0]}
        if not gse:
            fields.update({"points_1": [0, 0], "points_2": [0, 0]})
        fields["response"] = NOT_FOUND_RESPONSE
        return _answer(f"Not found: {reason}.", fields)

    def close(self) -> None:
        pass
