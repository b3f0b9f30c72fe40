"""
Reading a simple instruction into a query the bring-up grounder can answer.

Known words: colours, sizes, positions, object nouns (ignored) and filler words. Any other
word makes the instruction ungroundable: the backend then says "not found" and why, rather
than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

from .colours import COLOUR_NAMES, SYNONYMS

SIZE_WORDS = {
    "small": "small",
    "smallest": "smallest",
    "tiny": "smallest",
    "little": "small",
    "large": "large",
    "largest": "largest",
    "big": "large",
    "biggest": "largest",
    "huge": "largest",
}
POSITION_WORDS = {
    "left": "left",
    "right": "right",
    "top": "top",
    "upper": "top",
    "bottom": "bottom",
    "lower": "bottom",
    "centre": "centre",
    "center": "centre",
    "middle": "centre",
    "central": "centre",
    "leftmost": "left",
    "rightmost": "right",
    "topmost": "top",
    "bottommost": "bottom",
}
SHAPE_WORDS = {
    "circle": "circle",
    "circular": "circle",
    "round": "circle",
    "disc": "circle",
    "disk": "circle",
    "ball": "circle",
    "square": "square",
    "diamond": "diamond",
    "rhombus": "diamond",
    "triangle": "triangle",
    "triangular": "triangle",
    "rectangle": "rectangle",
    "rectangular": "rectangle",
    "bar": "rectangle",
    "strip": "rectangle",
}
NOUNS = {
    "screw",
    "screws",
    "bolt",
    "bolts",
    "nut",
    "nuts",
    "object",
    "objects",
    "thing",
    "item",
    "part",
    "piece",
    "washer",
    "box",
    "block",
    "marker",
    "target",
    "one",
    "blob",
    "spot",
    "cap",
    "button",
    "pin",
    "clip",
    "tag",
    "dot",
    "car",
    "person",
    "vehicle",
    "tool",
    "component",
    "plug",
    "can",
    "bottle",
    "cube",
    "sign",
}
FILLER = {
    "find",
    "the",
    "a",
    "an",
    "locate",
    "segment",
    "show",
    "me",
    "where",
    "is",
    "please",
    "detect",
    "get",
    "pick",
    "point",
    "to",
    "at",
    "in",
    "on",
    "of",
    "that",
    "which",
    "side",
    "corner",
    "image",
    "picture",
    "frame",
    "scene",
    "part",
    "and",
    "with",
    "look",
    "for",
    "most",
    "grab",
    "select",
    "highlight",
    "mark",
    "identify",
    "one",
    "there",
    "near",
    "up",
    "see",
    "can",
    "you",
    "it",
    "this",
    "quadrant",
    "region",
    "area",
    "edge",
    "what",
    "which",
    "shape",
    "kind",
    "does",
    "have",
    "has",
    "its",
    "form",
    "painted",
}


ASKED = {"colour": "colour", "color": "colour", "shape": "shape"}  # the attribute a question asks


@dataclass
class Query:
    colour: Optional[str] = None
    size: Optional[str] = None  # small | smallest | large | largest
    positions: List[str] = field(default_factory=list)  # subset of left/right/top/bottom/centre
    shape: Optional[str] = None  # circle | square | diamond | triangle | rectangle
    asks: Optional[str] = None  # what a question asks about: colour | shape (None: find it)
    unknown: List[str] = field(default_factory=list)

    @property
    def groundable(self) -> bool:
        """Findable by colour (referring and shape questions)."""
        return self.colour is not None and not self.unknown

    def reason(self) -> str:
        if self.unknown:
            return f"cannot ground the word(s) {', '.join(repr(w) for w in self.unknown)}"
        if self.colour is None:
            return "no colour word to ground (the bring-up backend needs one)"
        return ""


def parse_instruction(instruction: str) -> Query:
    query = Query()
    for word in re.findall(r"[a-z]+", instruction.lower()):
        if word in ASKED:
            query.asks = ASKED[word]
        word = SYNONYMS.get(word, word)
        if word is None:
            continue
        if word in COLOUR_NAMES:
            if query.colour not in (None, word):
                query.unknown.append(word)  # two colours: not a simple instruction
            query.colour = word
        elif word in SIZE_WORDS:
            query.size = SIZE_WORDS[word]
        elif word in SHAPE_WORDS:
            query.shape = SHAPE_WORDS[word]
        elif word in POSITION_WORDS:
            if POSITION_WORDS[word] not in query.positions:
                query.positions.append(POSITION_WORDS[word])
        elif word in NOUNS or word in FILLER:
            continue
        else:
            query.unknown.append(word)
    return query
