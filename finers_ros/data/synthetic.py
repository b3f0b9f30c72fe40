"""
Deterministic synthetic small-object scenes in the FineRS-4k annotation format.

Each scene: a textured, unevenly lit background, dozens of distractors of varied shapes,
colours and sizes, one small target (area below 0.055% of the frame, some below 0.017%),
sensor noise. Each scene gets one question: referring (colour alone, colour + size,
colour + position), multiple choice about the target's colour, or open about its shape.
The same seed gives the same images and JSON, byte for byte.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ..bringup.colours import REFERENCE_RGB, classify_rgb

SHAPES = ("circle", "square", "triangle", "rectangle", "diamond")
TARGET_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black",
                  "brown")
NOUNS = ("screw", "bolt", "object", "part", "marker")
QUESTION_MIX = (("colour", 0.45), ("colour+size", 0.15), ("colour+position", 0.15),
                ("option", 0.15), ("open", 0.10))
BACKGROUNDS = ((170, 160, 130), (120, 132, 100), (110, 120, 142), (150, 138, 120), (96, 110, 92))


@dataclass
class SceneConfig:
    width: int = 3840
    height: int = 2160
    distractors: Tuple[int, int] = (40, 80)  # count range
    target_area_percent: Tuple[float, float] = (0.006, 0.05)  # of the frame
    noise_sigma: float = 3.0
    lighting: Tuple[float, float] = (0.88, 1.08)  # multiplicative range across the frame


@dataclass
class PlacedObject:
    shape: str
    colour: str
    polygon: np.ndarray  # K x 2 float, native pixels
    box: Tuple[float, float, float, float]

    @property
    def area(self) -> float:
        return float(cv2.contourArea(self.polygon.astype(np.float32)))

    @property
    def centre(self) -> Tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def shape_polygon(
    shape: str, centre: Tuple[float, float], radius: float, angle: float
) -> np.ndarray:
    """Polygon (K x 2, native pixels) of a shape of circumradius ``radius``."""
    cx, cy = centre
    if shape == "circle":
        theta = np.linspace(0, 2 * np.pi, max(16, int(radius * 1.5)), endpoint=False)
        return np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], 1)
    corners = {"square": 4, "diamond": 4, "triangle": 3, "rectangle": 4}[shape]
    if shape == "rectangle":
        half = np.array([[-1, -0.45], [1, -0.45], [1, 0.45], [-1, 0.45]]) * radius
    else:
        offset = np.pi / 4 if shape == "square" else (0.0 if shape == "diamond" else -np.pi / 2)
        theta = offset + np.arange(corners) * 2 * np.pi / corners
        half = np.stack([np.cos(theta), np.sin(theta)], 1) * radius
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if shape in ("square", "diamond", "triangle"):
        rotation = np.eye(2)  # keep the names honest: a rotated square is a diamond
    return half @ rotation.T + np.array([cx, cy])


def _radius_for_area(shape: str, area: float) -> float:
    unit = (
        cv2.contourArea(shape_polygon(shape, (0.0, 0.0), 100.0, 0.0).astype(np.float32)) / 100.0**2
    )
    return float(np.sqrt(area / unit))


class SceneGenerator:
    def __init__(self, config: Optional[SceneConfig] = None, seed: int = 0):
        self.config = config or SceneConfig()
        self.seed = seed
        for name in TARGET_COLOURS:  # the palette must mean what it says
            assert name in classify_rgb(REFERENCE_RGB[name]), name

    # -- drawing -----------------------------------------------------------------
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        w, h = cfg.width, cfg.height
        base = np.array(BACKGROUNDS[rng.integers(len(BACKGROUNDS))], np.float32)
        texture = np.zeros((h, w), np.float32)
        for cells, weight in ((6, 0.08), (40, 0.05), (200, 0.03)):
            field = rng.normal(0, 1, (max(2, cells * h // w), cells)).astype(np.float32)
            texture += weight * cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        image = base[None, None, :] * (1.0 + texture[..., None])
        return image

    def _lighting(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        lo, hi = cfg.lighting
        gx, gy = rng.uniform(-1, 1, 2)
        xs = np.linspace(-0.5, 0.5, cfg.width, dtype=np.float32)[None, :]
        ys = np.linspace(-0.5, 0.5, cfg.height, dtype=np.float32)[:, None]
        ramp = gx * xs + gy * ys  # in [-1, 1]
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        return (lo + (hi - lo) * ramp)[..., None]

    @staticmethod
    def _draw(image: np.ndarray, obj: PlacedObject, rgb, rng: np.random.Generator) -> None:
        jitter = rng.integers(-6, 7, 3)
        colour = tuple(float(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter))
        points = np.round(obj.polygon * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(image, [points], colour, lineType=cv2.LINE_AA, shift=4)

    # -- layout ------------------------------------------------------------------
    def _place(self, rng, shape: str, area: float, taken: List[Tuple[float, float, float, float]],
               region: Optional[Tuple[float, float, float, float]] = None, margin: float = 12.0
               ) -> Optional[PlacedObject]:
        cfg = self.config
        radius = _radius_for_area(shape, area)
        x_lo, y_lo, x_hi, y_hi = region or (0, 0, cfg.width, cfg.height)
        pad = radius + 8
        x_lo, x_hi = max(x_lo, pad), min(x_hi, cfg.width - pad)
        y_lo, y_hi = max(y_lo, pad), min(y_hi, cfg.height - pad)
        if x_lo > x_hi or y_lo > y_hi:
            return None  # no room for it there (e.g. past a target at the border)
        for _ in range(200):
            cx = rng.uniform(x_lo, x_hi)
            cy = rng.uniform(y_lo, y_hi)
            polygon = shape_polygon(shape, (cx, cy), radius, rng.uniform(0, np.pi))
            box = (
                polygon[:, 0].min(),
                polygon[:, 1].min(),
                polygon[:, 0].max(),
                polygon[:, 1].max(),
            )
            if all(box[2] + margin < t[0] or box[0] - margin > t[2] or box[3] + margin < t[1]
                   or box[1] - margin > t[3] for t in taken):
                taken.append(box)
                return PlacedObject(shape, "", polygon, box)
        return None

    def scene(
        self, index: int, kind: Optional[str] = None, colour: Optional[str] = None
    ) -> Tuple[np.ndarray, dict]:
        """
        Scene ``index``: (``H x W x 3 uint8 RGB`` image, annotation record without image_path).

        ``kind`` (a QUESTION_MIX name) and ``colour`` (a TARGET_COLOURS name) pin the question
        kind and the target colour instead of drawing them.
        """
        rng = np.random.default_rng([self.seed, index])
        cfg = self.config
        frame_area = cfg.width * cfg.height
        kinds, weights = zip(*QUESTION_MIX)
        drawn_kind = kinds[rng.choice(len(kinds), p=np.array(weights) / sum(weights))]
        drawn_colour = TARGET_COLOURS[rng.integers(len(TARGET_COLOURS))]
        kind = kind or drawn_kind
        target_colour = colour or drawn_colour
        if kind not in kinds or target_colour not in TARGET_COLOURS:
            raise ValueError(f"unknown kind {kind!r} or colour {target_colour!r}")
        target_shape = SHAPES[rng.integers(len(SHAPES))]
        lo, hi = np.log(cfg.target_area_percent[0]), np.log(cfg.target_area_percent[1])
        target_area = float(np.exp(rng.uniform(lo, hi))) / 100.0 * frame_area

        taken: List[Tuple[float, float, float, float]] = []
        target = self._place(rng, target_shape, target_area, taken)
        if target is None:
            raise ValueError(f"a {cfg.width}x{cfg.height} frame has no room for a target")
        target.colour = target_colour
        twins: List[PlacedObject] = []  # same colour, told apart by size or position
        size_word = side = None
        if kind == "colour+size":
            size_word = ("smallest", "largest")[rng.integers(2)]
            factor = 3.0 if size_word == "smallest" else 1 / 3.0
            for _ in range(int(rng.integers(1, 3))):
                twin = self._place(
                    rng,
                    SHAPES[rng.integers(len(SHAPES))],
                    target_area * factor * rng.uniform(1, 1.5),
                    taken,
                )
                if twin:
                    twin.colour = target_colour
                    twins.append(twin)
        elif kind == "colour+position":
            side = ("left", "right", "top", "bottom")[rng.integers(4)]
            for _ in range(int(rng.integers(1, 3))):
                twin = self._place(
                    rng,
                    SHAPES[rng.integers(len(SHAPES))],
                    target_area * rng.uniform(0.7, 1.4),
                    taken,
                    region=self._beyond(target.box, side),
                )
                if twin:
                    twin.colour = target_colour
                    twins.append(twin)

        other_colours = [c for c in REFERENCE_RGB if c != target_colour and c != "grey"]
        distractors: List[PlacedObject] = []
        for _ in range(int(rng.integers(*cfg.distractors))):
            shape = SHAPES[rng.integers(len(SHAPES))]
            area = float(np.exp(rng.uniform(np.log(0.004), np.log(0.4)))) / 100.0 * frame_area
            if kind == "option" and shape == target_shape and area < 2.0 * target_area:
                area = 2.0 * target_area + area  # the target stays the smallest of its shape
            placed = self._place(rng, shape, area, taken)
            if placed:
                placed.colour = (
                    "grey"
                    if rng.uniform() < 0.5
                    else other_colours[rng.integers(len(other_colours))]
                )
                distractors.append(placed)

        image = self._background(rng)
        for obj in distractors + twins + [target]:
            rgb = REFERENCE_RGB[obj.colour]
            if obj.colour == "grey":
                rgb = tuple([int(rng.integers(60, 170))] * 3)
            self._draw(image, obj, rgb, rng)
        image *= self._lighting(rng)
        image += rng.normal(0, cfg.noise_sigma, image.shape).astype(np.float32)
        image = np.clip(image, 0, 255).astype(np.uint8)

        record = self._question(rng, kind, target, twins, size_word, side)
        record.update({
            "points": np.round(target.polygon, 2).tolist(),
            "area_percent": round(100.0 * target.area / frame_area, 5),
            "target": {"colour": target_colour, "shape": target_shape,
                       "box": [round(v, 2) for v in target.box]},
            "grounding": kind,
        })
        return image, record

    def _beyond(self, box, side: str):
        """
        Return the part of the frame past ``box`` on ``side``'s opposite.

        So the target stays extreme.
        """
        w, h = self.config.width, self.config.height
        margin = 40
        return {"left": (box[2] + margin, 0, w, h), "right": (0, 0, box[0] - margin, h),
                "top": (0, box[3] + margin, w, h), "bottom": (0, 0, w, box[1] - margin)}[side]

    @staticmethod
    def _question(rng, kind, target: PlacedObject, twins, size_word, side) -> dict:
        noun = NOUNS[rng.integers(len(NOUNS))]
        if kind == "option":
            choices = [target.colour] + list(
                rng.choice([c for c in TARGET_COLOURS if c != target.colour], 3, replace=False)
            )
            order = rng.permutation(4)
            letters = "ABCD"
            options = [f"{letters[i]}. {choices[j]}" for i, j in enumerate(order)]
            answer = letters[int(np.where(order == 0)[0][0])]
            return {"Q": f"What colour is the smallest {target.shape} {noun}?", "A": answer,
                    "Q-type": "option", "options": options, "attribute": "colors"}
        if kind == "open":
            return {"Q": f"What shape is the {target.colour} {noun}?", "A": target.shape,
                    "Q-type": "reasoning", "attribute": "shape"}
        if kind == "colour+size" and twins:
            return {
                "Q": f"find the {size_word} {target.colour} {noun}",
                "A": "The object is found.",
                "Q-type": "referring",
                "attribute": "others",
            }
        if kind == "colour+position" and twins:
            phrase = {
                "left": "on the left",
                "right": "on the right",
                "top": "at the top",
                "bottom": "at the bottom",
            }[side]
            return {"Q": f"find the {target.colour} {noun} {phrase}", "A": "The object is found.",
                    "Q-type": "referring", "attribute": "position"}
        return {"Q": f"find the {target.colour} {noun}", "A": "The object is found.",
                "Q-type": "referring", "attribute": "colors"}


def write_dataset(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    config: Optional[SceneConfig] = None,
    progress: bool = False,
) -> Path:
    """Write ``count`` scenes as PNG plus ``annotations.json``; returns the JSON's path."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    generator = SceneGenerator(config, seed)
    records = []
    indices = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="scenes", unit="scene")
    for index in indices:
        image, record = generator.scene(index)
        name = f"scene_{seed:04d}_{index:05d}.png"
        cv2.imwrite(str(out_dir / "images" / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        records.append({"image_path": f"images/{name}", **record})
    path = out_dir / "annotations.json"
    path.write_text(json.dumps({"annotations": records}, indent=1))
    return path
