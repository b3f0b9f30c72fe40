"""
Moving synthetic scenes with per-frame ground truth, for scoring trackers.

A sequence starts from one synthetic scene (``SceneGenerator``) rendered as a *world* 1.6
times the view in each dimension, with its small target erased (inpainted). Every frame is a
camera view of that world (pan, zoom, roll: one world -> view affine; then a gain) with the
target drawn at its pose of that frame, and, in some scenarios, an identical twin and an
occluder. Coordinates: *world* pixels of the world image; *view* pixels of the frame
(native, ``W x H``, top-left origin, pixel centres at integers). At zoom 1 a world pixel is a
view pixel. Motions are given in *4K pixels* (``u = W / 3840`` view pixels), so a 1280x720
sequence is the 4K one scaled down.

The frame before the first update is the *seed* frame (index 0): where the tracker is seeded,
as a FineRS answer would seed it. ``MovingSequence`` yields frames ``1..frames`` with their
``FrameTruth``. The same ``(scenario, seed, frames, size)`` gives the same pixels and truth.

Scenarios: ``pan`` (camera pans up to ~23 u/frame), ``zoom`` (0.65-1.35x), ``roll``
(+-4 degrees), ``gain`` (exposure ramps and steps, 0.6-1.4x), ``fast`` (target at 40 u/frame
on a circle), ``occlusion`` (a bar fully covers the target for ~9 frames), ``twin`` (an
identical twin crosses the target's path, passing 1.5 diameters from it), ``exit`` (the
camera pans until the target is out of view, then back), ``jump`` (the first frame is 250 u
from the seed frame: an answer on a seconds-old frame), ``handheld`` (pan, zoom, roll and gain
together).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Optional, Tuple

import cv2
import numpy as np

from ..geometry import Box, Size
from .synthetic import SceneConfig, SceneGenerator

SCENARIOS = ("pan", "zoom", "roll", "gain", "fast", "occlusion", "twin", "exit", "jump",
             "handheld")
WORLD_SCALE = 1.6  # world / view, per dimension: room for a 0.65x zoom-out plus a small pan
VISIBLE_FRACTION = 0.5  # a frame scores the target when at least this share of it is seen
NOISE_SIGMA = 2.0  # per-frame sensor noise (the world carries its own, fixed)
OCCLUDER_RGB = (96, 100, 108)
_NOISE_PAD = 64
_SUBPIXEL = 4  # fillPoly shift: coordinates in 1/16 pixel


@dataclass(frozen=True)
class FrameTruth:
    """
    Where the target is in one frame.

    ``roi``: ``(x0, y0, w, h)`` view pixels holding the target's silhouette clipped to the
    view (all zero when it is out of view). ``mask`` and ``silhouette``: ``h x w`` bool in
    ``roi``: the target pixels seen in this frame (drawn coverage >= 1/2, not under the
    occluder), and the same without the occluder. ``visible_fraction``: seen pixels over the
    pixels of the whole silhouette (out of view parts included). ``twin_box``: XYXY inclusive
    view box of the twin's pixels in view, or None. ``camera``: ``2 x 3`` world -> view affine
    of this frame; ``gain``: multiplier applied to the frame.
    """

    index: int
    size: Size
    roi: Tuple[int, int, int, int]
    mask: np.ndarray
    silhouette: np.ndarray
    visible_fraction: float
    twin_box: Optional[Box]
    camera: np.ndarray
    gain: float

    @property
    def visible(self) -> bool:
        """Return True when enough of the target is seen to score a mask against it."""
        return self.visible_fraction >= VISIBLE_FRACTION

    @property
    def hidden(self) -> bool:
        """Return True when no pixel of the target is seen (occluded or out of view)."""
        return not self.mask.any()

    @property
    def box(self) -> Optional[Box]:
        """XYXY inclusive view box of the seen pixels, or None when hidden."""
        return _mask_box(self.mask, self.roi)

    @property
    def zoom(self) -> float:
        """View pixels per world pixel in this frame."""
        return float(np.sqrt(abs(np.linalg.det(self.camera[:, :2]))))

    def full_mask(self) -> np.ndarray:
        """Return the seen pixels as ``H x W`` bool over the whole view."""
        width, height = self.size
        full = np.zeros((height, width), bool)
        x0, y0, w, h = self.roi
        full[y0:y0 + h, x0:x0 + w] = self.mask
        return full


@dataclass
class _Motion:
    """Per-frame poses, arrays over frames ``0..T``; offsets in world pixels from frame 0."""

    start: np.ndarray  # target's view position in frame 0, (x, y)
    camera: np.ndarray  # (T+1) x 2: camera centre offset
    target: np.ndarray  # (T+1) x 2: target centre offset
    zoom: np.ndarray
    roll: np.ndarray  # radians; positive turns the world clockwise on screen (y points down)
    gain: np.ndarray
    twin: Optional[np.ndarray] = None  # (T+1) x 2: twin centre offset from the target's start
    occluder: Optional[np.ndarray] = None  # (T+1) x 2: occluder centre offset, likewise
    occluder_size: Tuple[float, float] = (0.0, 0.0)  # world pixels (w, h)


class MovingSequence:
    """
    One scenario's frames, rendered on demand from a seeded world.

    Iterating yields ``(frame, truth)`` for frames ``1..frames``: ``frame`` is a fresh
    ``H x W x 3 uint8 RGB`` array, ``truth`` a ``FrameTruth``. ``seed_frame``, ``seed_box``
    (XYXY inclusive) and ``seed_mask`` (``H x W`` bool) are frame 0.
    """

    def __init__(self, scenario: str, seed: int = 0, frames: int = 60,
                 size: Size = (3840, 2160)):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {SCENARIOS}")
        if frames < 1:
            raise ValueError(f"frames={frames}: expected at least 1")
        self.scenario, self.seed, self.frames = scenario, seed, frames
        self.size = (int(size[0]), int(size[1]))
        self.unit = self.size[0] / 3840.0
        code = SCENARIOS.index(scenario)
        self._world, self._shape, self.target_rgb = _world(seed, code, self.size)
        self.radius = float(np.max(np.linalg.norm(self._shape, axis=1)))
        rng = np.random.default_rng([seed, code, 1])
        self._motion = _BUILDERS[scenario](_Context(rng, self.size, self.unit, self.radius,
                                                    frames))
        world_h, world_w = self._world.shape[:2]
        self._world_centre = np.array([(world_w - 1) / 2, (world_h - 1) / 2])
        self._view_centre = np.array([(self.size[0] - 1) / 2, (self.size[1] - 1) / 2])
        self._target_start = self._world_centre + self._motion.start - self._view_centre
        self._seed: Optional[Tuple[np.ndarray, FrameTruth]] = None

    def __len__(self) -> int:
        return self.frames

    def __iter__(self) -> Iterator[Tuple[np.ndarray, FrameTruth]]:
        for index in range(1, self.frames + 1):
            yield self.frame(index)

    @property
    def seed_frame(self) -> np.ndarray:
        """Frame 0, ``H x W x 3 uint8 RGB``: the frame the tracker is seeded on."""
        return self._seed_pair()[0]

    @property
    def seed_truth(self) -> FrameTruth:
        return self._seed_pair()[1]

    @property
    def seed_box(self) -> Box:
        """XYXY inclusive view box of the target in frame 0."""
        return self.seed_truth.box

    @property
    def seed_mask(self) -> np.ndarray:
        """``H x W`` bool mask of the target in frame 0."""
        return self.seed_truth.full_mask()

    def _seed_pair(self) -> Tuple[np.ndarray, FrameTruth]:
        if self._seed is None:
            self._seed = self.frame(0)
        return self._seed

    def frame(self, index: int) -> Tuple[np.ndarray, FrameTruth]:
        """Render frame ``index`` (0 = seed frame): ``(H x W x 3 uint8 RGB, FrameTruth)``."""
        if not 0 <= index <= self.frames:
            raise IndexError(f"frame {index} outside 0..{self.frames}")
        motion = self._motion
        matrix = _camera_matrix(self._world_centre + motion.camera[index], motion.zoom[index],
                                motion.roll[index], self._view_centre)
        image, matrix = _view(self._world, matrix, self.size)
        target = _to_view(self._shape + self._target_start + motion.target[index], matrix)
        twin_box = None
        if motion.twin is not None:
            twin = _to_view(self._shape + self._target_start + motion.twin[index], matrix)
            _fill(image, twin, self.target_rgb)
            twin_box = _mask_box(*_raster(twin, self.size))
        _fill(image, target, self.target_rgb)
        silhouette, roi = _raster(target, self.size)
        seen = silhouette.copy()
        if motion.occluder is not None:
            half = np.array(motion.occluder_size) / 2
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
            occluder = _to_view(corners + self._target_start + motion.occluder[index], matrix)
            _fill(image, occluder, OCCLUDER_RGB)
            seen &= ~_raster_in(occluder, roi)
        total = int(_raster(target, None)[0].sum())
        gain = float(motion.gain[index])
        if gain != 1.0:
            table = np.clip(np.round(np.arange(256) * gain), 0, 255).astype(np.uint8)
            cv2.LUT(image, table, dst=image)
        _add_noise(image, np.random.default_rng([self.seed, SCENARIOS.index(self.scenario),
                                                 2, index]))
        truth = FrameTruth(index, self.size, roi, seen, silhouette,
                           float(seen.sum()) / max(total, 1), twin_box, matrix, gain)
        return image, truth


def moving_sequence(scenario: str, seed: int = 0, frames: int = 60,
                    size: Size = (3840, 2160)) -> MovingSequence:
    """Return the ``scenario`` sequence (see the module docstring) for ``seed``."""
    return MovingSequence(scenario, seed, frames, size)


# -- the world -----------------------------------------------------------------------------
def _world(seed: int, code: int, size: Size) -> Tuple[np.ndarray, np.ndarray, tuple]:
    """
    Build the world image without its target.

    Returns ``(Hw x Ww x 4 uint8 RGBA, target shape K x 2 relative to its centre, target RGB)``.
    The target keeps the size it would have in a scene of the view's size.
    """
    width, height = size
    area = (WORLD_SCALE * width) * (WORLD_SCALE * height)
    ratio = area / (width * height)
    base = SceneConfig()
    config = SceneConfig(
        width=int(round(WORLD_SCALE * width)), height=int(round(WORLD_SCALE * height)),
        distractors=tuple(int(round(v * ratio)) for v in base.distractors),
        target_area_percent=tuple(v / ratio for v in base.target_area_percent),
    )
    image, record = SceneGenerator(config, seed).scene(code, kind="colour")
    polygon = np.array(record["points"], np.float64)
    box = record["target"]["box"]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    inside, roi = _raster(polygon, (config.width, config.height))
    x0, y0, w, h = roi
    eroded = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    patch = image[y0:y0 + h, x0:x0 + w]
    colour = tuple(int(v) for v in np.median(patch[eroded if eroded.any() else inside], 0))
    _erase(image, polygon)
    return cv2.cvtColor(image, cv2.COLOR_RGB2RGBA), polygon - centre, colour


def _erase(image: np.ndarray, polygon: np.ndarray) -> None:
    """Inpaint the polygon's pixels (and a 3-pixel rim of their blend) in place."""
    height, width = image.shape[:2]
    pad = 12
    x0 = max(0, int(np.floor(polygon[:, 0].min())) - pad)
    y0 = max(0, int(np.floor(polygon[:, 1].min())) - pad)
    x1 = min(width, int(np.ceil(polygon[:, 0].max())) + pad + 1)
    y1 = min(height, int(np.ceil(polygon[:, 1].max())) + pad + 1)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    points = np.round((polygon - (x0, y0)) * 2 ** _SUBPIXEL).astype(np.int32)
    cv2.fillPoly(mask, [points.reshape(-1, 1, 2)], 255, cv2.LINE_8, _SUBPIXEL)
    mask = cv2.dilate(mask, np.ones((7, 7), np.uint8))
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    image[y0:y1, x0:x1] = cv2.inpaint(patch, mask, 5, cv2.INPAINT_TELEA)


# -- the camera ----------------------------------------------------------------------------
def _camera_matrix(centre: np.ndarray, zoom: float, roll: float,
                   view_centre: np.ndarray) -> np.ndarray:
    """``2 x 3`` world -> view affine: world ``centre`` at the view centre, zoomed, rolled."""
    cos, sin = np.cos(roll), np.sin(roll)
    linear = zoom * np.array([[cos, -sin], [sin, cos]])
    return np.hstack([linear, (view_centre - linear @ centre)[:, None]])


def _view(world: np.ndarray, matrix: np.ndarray, size: Size) -> Tuple[np.ndarray, np.ndarray]:
    """
    Render the view of an RGBA ``world`` under ``matrix``: ``(H x W x 3 RGB, matrix used)``.

    A pure pan is rounded to whole pixels and cut as a crop (the matrix returned says so);
    anything else is one bilinear warp, of four channels because OpenCV's vectorised warp
    covers those (about 3x faster than three channels).
    """
    width, height = size
    world_h, world_w = world.shape[:2]
    if np.array_equal(matrix[:, :2], np.eye(2)):
        x0, y0 = (-int(round(v)) for v in matrix[:, 2])
        matrix = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
        if x0 >= 0 and y0 >= 0 and x0 + width <= world_w and y0 + height <= world_h:
            return cv2.cvtColor(world[y0:y0 + height, x0:x0 + width], cv2.COLOR_RGBA2RGB), matrix
    image = cv2.warpAffine(world, matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB), matrix


def _to_view(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``K x 2`` world points to view points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


# -- drawing and rasterising ---------------------------------------------------------------
def _fixed(points: np.ndarray, origin=(0, 0)) -> np.ndarray:
    """``K x 1 x 2`` int32 fillPoly points in 1/16 pixel, relative to ``origin``."""
    fixed = np.round(points * 2 ** _SUBPIXEL).astype(np.int64)
    fixed -= np.array(origin, np.int64) * 2 ** _SUBPIXEL
    return fixed.astype(np.int32).reshape(-1, 1, 2)


def _fill(image: np.ndarray, polygon: np.ndarray, rgb) -> None:
    """Draw an anti-aliased polygon (view pixels) into ``image`` in place."""
    height, width = image.shape[:2]
    lo, hi = polygon.min(0), polygon.max(0)
    if hi[0] < -1 or hi[1] < -1 or lo[0] > width or lo[1] > height:
        return
    cv2.fillPoly(image, [_fixed(polygon)], tuple(float(c) for c in rgb), cv2.LINE_AA,
                 _SUBPIXEL)


def _raster(polygon: np.ndarray, size: Optional[Size]):
    """
    Pixels a drawn polygon covers at least half of: ``(h x w bool, (x0, y0, w, h))``.

    The window is the polygon's box plus one pixel, clipped to ``size = (W, H)`` (unclipped
    when None); all zero when nothing is inside.
    """
    x0, y0 = (int(np.floor(v)) - 2 for v in polygon.min(0))
    x1, y1 = (int(np.ceil(v)) + 3 for v in polygon.max(0))
    if size is not None:
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, size[0]), min(y1, size[1])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), bool), (0, 0, 0, 0)
    return _raster_in(polygon, (x0, y0, x1 - x0, y1 - y0)), (x0, y0, x1 - x0, y1 - y0)


def _raster_in(polygon: np.ndarray, roi: Tuple[int, int, int, int]) -> np.ndarray:
    """``h x w`` bool: pixels of ``roi`` the drawn polygon covers at least half of."""
    x0, y0, w, h = roi
    cover = np.zeros((h, w), np.uint8)
    if w and h:
        cv2.fillPoly(cover, [_fixed(polygon, (x0, y0))], 255, cv2.LINE_AA, _SUBPIXEL)
    return cover >= 128


def _mask_box(mask: np.ndarray, roi) -> Optional[Box]:
    """XYXY inclusive view box of a mask in its ``roi``, or None when empty."""
    if mask.size == 0 or not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    x0, y0 = roi[0], roi[1]
    return (float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1]),
            float(y0 + rows[-1]))


@lru_cache(maxsize=2)
def _noise_field(width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """Make fixed sensor noise, larger than a frame: (positive part, negative part), uint8."""
    rng = np.random.default_rng(20260)
    shape = (height + _NOISE_PAD, width + _NOISE_PAD, 3)
    values = np.round(rng.standard_normal(shape, np.float32) * NOISE_SIGMA).astype(np.int16)
    return np.clip(values, 0, 255).astype(np.uint8), np.clip(-values, 0, 255).astype(np.uint8)


def _add_noise(image: np.ndarray, rng: np.random.Generator) -> None:
    """Add this frame's noise (a random window of the fixed field) in place."""
    height, width = image.shape[:2]
    positive, negative = _noise_field(width, height)
    dx, dy = (int(v) for v in rng.integers(0, _NOISE_PAD + 1, 2))
    cv2.add(image, positive[dy:dy + height, dx:dx + width], dst=image)
    cv2.subtract(image, negative[dy:dy + height, dx:dx + width], dst=image)


# -- scenarios -----------------------------------------------------------------------------
@dataclass
class _Context:
    rng: np.random.Generator
    size: Size
    unit: float  # view pixels per 4K pixel
    radius: float  # target circumradius, world pixels
    frames: int

    @property
    def t(self) -> np.ndarray:
        return np.arange(self.frames + 1, dtype=np.float64)

    def start(self, lo: float = 0.3, hi: float = 0.7) -> np.ndarray:
        """Draw a view position in the central ``[lo, hi]`` share of the frame."""
        return self.rng.uniform(lo, hi, 2) * (np.array(self.size) - 1)

    def direction(self) -> np.ndarray:
        angle = self.rng.uniform(0, 2 * np.pi)
        return np.array([np.cos(angle), np.sin(angle)])

    def drift(self, speed: float) -> np.ndarray:
        """Straight motion at ``speed`` 4K pixels per frame in a random direction."""
        return self.t[:, None] * speed * self.unit * self.direction()[None, :]

    def sine(self, amplitude: float, period: float) -> np.ndarray:
        """``amplitude`` 4K pixels, ``period`` frames, random phase, zero at frame 0."""
        phase = self.rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * self.t / period + phase) - np.sin(phase)
        return amplitude * self.unit * wave

    def still(self) -> np.ndarray:
        return np.zeros((self.frames + 1, 2))

    def ones(self) -> np.ndarray:
        return np.ones(self.frames + 1)

    def zeros(self) -> np.ndarray:
        return np.zeros(self.frames + 1)


def _pan(c: _Context) -> _Motion:
    camera = np.stack([c.sine(160, 60), c.sine(110, 45)], 1)
    return _Motion(c.start(), camera, c.drift(2), c.ones(), c.zeros(), c.ones())


def _zoom(c: _Context) -> _Motion:
    sign = c.rng.choice([-1.0, 1.0])
    zoom = 1 + 0.35 * np.sin(sign * 2 * np.pi * c.t / 60)
    camera = np.stack([c.sine(50, 80), c.sine(35, 70)], 1)
    return _Motion(c.start(), camera, c.drift(1.5), zoom, c.zeros(), c.ones())


def _roll(c: _Context) -> _Motion:
    sign = c.rng.choice([-1.0, 1.0])
    roll = np.radians(4.0) * np.sin(sign * 2 * np.pi * c.t / 40)
    camera = np.stack([c.sine(60, 80), c.sine(40, 60)], 1)
    return _Motion(c.start(), camera, c.drift(2), c.ones(), roll, c.ones())


def _gain(c: _Context) -> _Motion:
    steps = np.where((c.t // 12) % 2 == 1, c.rng.choice([0.75, 1.25]), 1.0)
    gain = np.clip((1 + 0.2 * np.sin(2 * np.pi * c.t / 25)) * steps, 0.6, 1.4)
    return _Motion(c.start(), c.drift(4), c.drift(2), c.ones(), c.zeros(), gain)


def _fast(c: _Context) -> _Motion:
    start = c.start()
    omega = c.rng.choice([-1.0, 1.0]) * 2 * np.pi / 48
    radius = 40 * c.unit / abs(omega)
    inward = (np.array(c.size) - 1) / 2 - start
    norm = float(np.linalg.norm(inward))
    inward = inward / norm if norm > 1 else c.direction()
    angle0 = np.arctan2(-inward[1], -inward[0])  # from the circle's centre to the start
    angle = angle0 + omega * c.t
    target = radius * np.stack([np.cos(angle) - np.cos(angle0),
                                np.sin(angle) - np.sin(angle0)], 1)
    return _Motion(start, c.still(), target, c.ones(), c.zeros(), c.ones())


def _occlusion(c: _Context) -> _Motion:
    target = c.drift(3)
    speed = 14 * c.unit * c.rng.choice([-1.0, 1.0])  # the bar's speed across the target
    diameter = 2 * c.radius
    width, height = diameter + 8 * abs(speed), 2.5 * diameter + 20 * c.unit
    clear = ((width + diameter) / 2 + 2 * c.unit) / abs(speed)  # frames from touch to centre
    crossing = max(round(0.4 * c.frames), int(np.ceil(clear)) + 1)
    occluder = target + np.stack([speed * (c.t - crossing), np.zeros_like(c.t)], 1)
    return _Motion(c.start(), c.still(), target, c.ones(), c.zeros(), c.ones(),
                   occluder=occluder, occluder_size=(width, height))


def _twin(c: _Context) -> _Motion:
    across = 6 * c.unit * c.rng.choice([-1.0, 1.0])
    along = 16 * c.unit * c.rng.choice([-1.0, 1.0])
    target = np.stack([across * c.t, np.zeros_like(c.t)], 1)
    crossing = max(round(0.5 * c.frames), 1)
    # Closest approach 3 radii between centres: the silhouettes never touch.
    offset = 3 * c.radius * np.hypot(across, along) / abs(along) * c.rng.choice([-1.0, 1.0])
    twin = np.stack([np.full_like(c.t, across * crossing + offset), along * (c.t - crossing)], 1)
    return _Motion(c.start(), c.still(), target, c.ones(), c.zeros(), c.ones(), twin=twin)


def _exit(c: _Context) -> _Motion:
    speed, first, hold = 30 * c.unit, 2, 4
    rise = max(3, int((0.75 * c.frames - first - hold) // 2))
    t = c.t
    shift = np.clip(np.minimum(t - first, 2 * rise + hold - (t - first)), 0, rise) * speed
    side = c.rng.choice([-1.0, 1.0])
    # Out of view for the last two frames of the way out, the hold and two frames back.
    edge = max(rise * speed - 2 * speed - c.radius - 2, c.radius + 8 * c.unit)
    width, height = c.size
    x = width - 1 - edge if side > 0 else edge
    start = np.array([x, c.rng.uniform(0.35, 0.65) * (height - 1)])
    camera = np.stack([-side * shift, np.zeros_like(t)], 1)
    return _Motion(start, camera, c.still(), c.ones(), c.zeros(), c.ones())


def _jump(c: _Context) -> _Motion:
    jump = 250 * c.unit * c.direction()
    camera = np.where(c.t[:, None] >= 1, jump[None, :], 0.0) + c.drift(4)
    return _Motion(c.start(), camera, c.drift(2), c.ones(), c.zeros(), c.ones())


def _handheld(c: _Context) -> _Motion:
    camera = np.stack([c.sine(120, 50) + c.sine(25, 9), c.sine(80, 37) + c.sine(20, 7)], 1)
    zoom = 1 + 0.15 * np.sin(2 * np.pi * c.t / 55)
    roll = np.radians(2.0) * np.sin(2 * np.pi * c.t / 33)
    gain = 1 + 0.12 * np.sin(2 * np.pi * c.t / 29)
    return _Motion(c.start(), camera, c.drift(2), zoom, roll, gain)


_BUILDERS = {"pan": _pan, "zoom": _zoom, "roll": _roll, "gain": _gain, "fast": _fast,
             "occlusion": _occlusion, "twin": _twin, "exit": _exit, "jump": _jump,
             "handheld": _handheld}
