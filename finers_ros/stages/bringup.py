"""
The weight-free GSE/LPR stand-in: same prompts in, same tagged JSON out.

It reads the question from the prompt, grounds colour/size/position words with
``finers_ros.bringup`` and writes ``<think>..</think><answer>{...}</answer>`` exactly as
a checkpoint would (single-quoted JSON, as the checkpoints often emit), so the parser and
the pipeline run the same code paths as with Qwen2.5-VL.
"""

from __future__ import annotations

import re
import time

import numpy as np

from ..bringup.colours import SYNONYMS
from ..bringup.detect import (
    components,
    components_of_shape,
    filter_shape,
    inscribed_points,
    select,
)
from ..bringup.language import parse_instruction
from ..prompts import (
    is_gse_prompt,
    options_from_prompt,
    question_from_prompt,
    question_type_from_prompt,
)
from .base import Generation

NOT_FOUND_RESPONSE = "No object founded"
_OPTION_RE = re.compile(r"\b([A-F])\s*[.:)]\s*([A-Za-z][A-Za-z \-]*)")


def _option_for(prompt: str, colour: str):
    """Return the letter of the option (from the prompt's option list) that names ``colour``."""
    for letter, text in _OPTION_RE.findall(options_from_prompt(prompt)):
        words = {SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text.lower())}
        if colour in words:
            return letter
    return None


def _answer(think: str, fields: dict) -> str:
    body = ", ".join(f"'{key}': {value!r}" for key, value in fields.items())
    return f"<think> {think} </think><answer>{{{body}}}</answer>"


class BringupModel:
    """
    Prompt-driven grounding by colour components; knows GSE from LPR by the prompt.

    As LPR it takes ``focus``, the GSE region's centre in the LPR frame, and picks the
    candidate nearest it: the crop is shifted at frame borders, so its own centre may lie
    nearer another object of the same description than the one GSE chose.
    """

    name = "bringup"
    uses_focus = True

    def __init__(self, region_size: int = 256):
        self.region_size = region_size

    def generate(self, image: np.ndarray, prompt: str, focus=None) -> Generation:
        start = time.perf_counter()
        text = self._respond(image, prompt, focus)
        return Generation(
            text, len(prompt.split()), len(text.split()), time.perf_counter() - start
        )

    def _respond(self, image: np.ndarray, prompt: str, focus=None) -> str:
        gse = is_gse_prompt(prompt)
        kind = question_type_from_prompt(prompt)
        query = parse_instruction(question_from_prompt(prompt) or "")
        height, width = image.shape[:2]
        if query.unknown:
            return self._not_found(gse, query.reason())
        if kind == "option" or (kind == "open" and query.asks == "colour"):
            if query.shape is None:
                return self._not_found(
                    gse, "the bring-up backend answers colour questions about a named shape only"
                )
            candidates = components_of_shape(image, query.shape)
            if kind == "option":  # the answer must be one of the options: only their colours count
                candidates = [c for c in candidates if _option_for(prompt, c.colour)]
        else:
            if not query.groundable:
                return self._not_found(gse, query.reason())
            candidates = filter_shape(components(image, query.colour), query.shape)
        if gse:
            chosen, note = select(candidates, query, (width, height))
        else:
            anchor = tuple(focus) if focus is not None else (width / 2.0, height / 2.0)
            chosen, note = select(
                candidates,
                query,
                (width, height),
                use_position=False,
                anchor=anchor,
                anchor_name="the GSE region's centre" if focus is not None else "the crop centre",
            )
        if chosen is None:
            return self._not_found(gse, note)
        response, why = self._response(kind, chosen, prompt, query.asks)
        if response is None:
            return self._not_found(gse, why)
        think = f"{'Looking for' if gse else 'Refining'} the object: {note}. {why}".strip()
        if gse:
            return _answer(
                think, {"bbox": self._region(chosen.box, width, height), "response": response}
            )
        p1, p2 = inscribed_points(chosen.mask)
        return _answer(
            think,
            {
                "bbox": list(chosen.box),
                "points_1": [int(p1[0]), int(p1[1])],
                "points_2": [int(p2[0]), int(p2[1])],
                "response": response,
            },
        )

    @staticmethod
    def _response(kind: str, chosen, prompt: str, asks=None):
        """(response text or None, explanation)."""
        if kind == "referring":
            return "The object is found.", ""
        if kind == "open" and asks == "colour":
            return f"The object is {chosen.colour}.", f"It is {chosen.colour}."
        if kind == "open":
            shape = chosen.shape
            return (
                (f"The object is a {shape}.", f"Its outline is a {shape}.")
                if shape
                else (None, "the object is too small to name its shape")
            )
        letter = _option_for(prompt, chosen.colour)
        return (
            (letter, f"It is {chosen.colour}: option {letter}.")
            if letter
            else (None, f"no option names the colour {chosen.colour}")
        )

    def _region(self, box, width: int, height: int) -> list:
        """
        Return a ``region_size`` square (bigger if the object is) centred on the box.

        Near a border it reaches past the frame rather than being shifted: its centre is
        what the LPR stage is told to look at, and the pipeline shifts the crop inside.
        """
        x1, y1, x2, y2 = box
        side = max(self.region_size, x2 - x1 + 17, y2 - y1 + 17)
        left = int(round((x1 + x2 - side) / 2.0))
        top = int(round((y1 + y2 - side) / 2.0))
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
