"""
The CPU tracker: correlation search with a motion prior, the mask re-segmented every frame.

Per update, in native pixels of the camera frame:

1. Predict the target's centre from its last centre and velocity (constant velocity).
2. Search a window around the prediction with normalised cross-correlation of the target's
   last appearance (``TM_CCOEFF_NORMED``: insensitive to gain and offset changes), scores
   penalised by the distance from the prediction, so a look-alike crossing the target's
   path does not win. Wide windows (after a miss, or a jump) are searched downscaled to
   about ``coarse_side_px`` and refined at full resolution; there a candidate must also
   stand out from the second-best one, or the tracker keeps searching rather than jump to
   an identical neighbour.
3. Re-segment the target around the match: pixels closer to the target's CIELAB colour
   than to its surroundings', connected to the match. The mask's area and colour must agree
   with the last frame's, else the frame is a miss (occluder, look-alike).
4. Update centre, velocity, colours (slowly: gain changes) and the template (zoom, roll).

Only windows around the target are read from the frame (``FrameView.window``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from ..geometry import Box, is_finite_box
from .base import TrackerError, TrackState, TrackUpdate
from .config import TrackerConfig
from .frames import FrameView

COLOUR_RATE = 0.3  # how fast the target's and surroundings' colours follow the frames
AREA_RANGE = (0.4, 2.5)  # mask area against the last steady frame's, for a frame to count
STEADY_AREA = (0.75, 1.33)  # ... and for the frame to renew the template
STEADY_SCORE = 0.75  # correlation for a frame to renew the template
NEAR_PEAK_PX = 4  # coarse peaks closer than this (downscaled pixels) are one candidate
MIN_TEMPLATE_PX = 8  # a template cut at the frame's side keeps at least this (else: whole)
MIN_TARGET_PX = 2  # ... and this much of the target's own box, each way
WIDEN_TRIES = 3  # segmentation windows tried, each wider, while the mask reaches the side
DISTINCT_MARGIN = 0.08  # a wide-search winner must beat the runner-up by this correlation
FEATURES = ("rgb", "likelihood")  # what searches correlate, in the order they are tried


@dataclass
class _Match:
    """A correlation peak: the target's centre (native pixels) and its correlation."""

    centre: np.ndarray  # (x, y) float
    score: float  # raw correlation, -1..1
    runner_up: float = -1.0  # best correlation of another candidate (wide searches)


class TemplateTracker:
    """Follows one target; ``seed`` once, then ``update`` per frame in time order."""

    name = "template"

    def __init__(self, config: Optional[TrackerConfig] = None):
        self.config = (config or TrackerConfig()).validate()
        self._size: Optional[Tuple[int, int]] = None  # frame (W, H)
        self._template: Optional[np.ndarray] = None  # h x w x 3 uint8 RGB
        self._offset = np.zeros(2)  # target centre relative to the template's top-left
        self._centre = np.zeros(2)  # last seen centre, native pixels
        self._velocity = np.zeros(2)  # pixels per frame
        self._box_size = np.zeros(2)  # last box (w, h)
        self._area = 0.0  # last mask area, pixels
        self._target_lab = np.zeros(3, np.float32)
        self._around_lab = np.zeros(3, np.float32)
        self._misses = 0
        self._last_box: Optional[Box] = None
        self._at_frame_side = False  # the last mask reached the frame's side (entering, leaving)

    # -- seeding -------------------------------------------------------------------
    def seed(self, frame: FrameView, box: Box, mask: Optional[np.ndarray]) -> TrackUpdate:
        """Start on ``frame`` (``mask``: ``H x W`` bool over the frame, or None: the box)."""
        if box is None or not is_finite_box(box) or box[2] < box[0] or box[3] < box[1]:
            raise TrackerError(f"cannot track from box {box}")
        width, height = frame.size
        if mask is not None and mask.shape != (height, width):
            raise TrackerError(f"mask {mask.shape[::-1]} does not match the frame "
                               f"{width}x{height}")
        self._size = frame.size
        pad = max(8.0, 0.5 * max(box[2] - box[0] + 1, box[3] - box[1] + 1))
        x0, y0, x1, y1 = frame.clip_window((box[0] - pad, box[1] - pad, box[2] + pad,
                                            box[3] + pad))
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise TrackerError(f"box {box} is off the {width}x{height} frame")
        pixels = frame.window(x0, y0, x1, y1)
        if mask is not None:
            local = mask[y0:y1, x0:x1].astype(bool)
        else:
            local = np.zeros(pixels.shape[:2], bool)
            bx0, by0, bx1, by1 = frame.clip_window(box)
            local[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = True
        if not local.any():
            raise TrackerError(f"the seed mask has no pixel near box {box}")
        lab = _lab(pixels)
        self._target_lab = np.median(lab[local], axis=0)
        self._around_lab = (np.median(lab[~local], axis=0) if (~local).any()
                            else 255.0 - self._target_lab)
        update = self._accept(frame, pixels, (x0, y0), local, score=1.0)
        self._velocity[:] = 0.0
        return update

    # -- per frame -----------------------------------------------------------------
    def update(self, frame: FrameView) -> TrackUpdate:
        """Find the target in ``frame`` (the next frame in time)."""
        if self._template is None:
            raise TrackerError("update() before seed()")
        if frame.size != self._size:
            raise TrackerError(f"frame size changed from {self._size[0]}x{self._size[1]} to "
                               f"{frame.size[0]}x{frame.size[1]}")
        cfg = self.config
        steps = self._misses + 1
        predicted = self._centre + self._velocity * steps
        speed = float(np.hypot(*self._velocity))
        radius = min(cfg.max_search_radius_px, cfg.search_radius_px + 2.0 * speed)
        found = match = None
        for feature in FEATURES:  # appearance first; colour likelihood when it changed
            if found is None and self._misses == 0:
                match = self._search(frame, predicted, radius, False, feature)
                if match is not None and match.score >= cfg.track_threshold:
                    found = self._segment(frame, match)
        for feature in FEATURES:  # a miss, a jump, an occlusion: wide, and a clear winner
            if found is None:
                match = self._search(frame, predicted, cfg.max_search_radius_px, True, feature)
                if (match is not None and match.score >= cfg.reacquire_threshold
                        and match.score - match.runner_up >= DISTINCT_MARGIN):
                    found = self._segment(frame, match)
        if found is None:
            return self._missed(match)
        pixels, origin, local, score = found
        previous = self._centre.copy()
        update = self._accept(frame, pixels, origin, local, score)
        moved = (self._centre - previous) / steps
        self._velocity = moved if steps > 1 else 0.5 * self._velocity + 0.5 * moved
        return update

    def close(self) -> None:
        """Nothing to free (numpy buffers only)."""
        self._template = None

    # -- steps ---------------------------------------------------------------------
    def _search(self, frame: FrameView, centre: np.ndarray, radius: float, wide: bool,
                feature: str = "rgb", full_resolution: bool = False) -> Optional[_Match]:
        """
        Find the best correlation peak within ``radius`` of ``centre`` (None: no room).

        ``feature``: ``rgb`` (appearance, context included) or ``likelihood`` (how close each
        pixel's colour is to the target's rather than its surroundings': a target crossing a
        changing background keeps its likelihood pattern while its context changes).
        """
        # a wide search does not know where the target is: no side to cut the template at
        template, offset = ((self._template, self._offset) if wide
                            else self._inside_part(frame.size, centre))
        th, tw = template.shape[:2]
        origin = np.floor(centre - offset - radius).astype(int)
        x0, y0 = int(origin[0]), int(origin[1])
        x1, y1 = x0 + int(2 * radius) + tw + 1, y0 + int(2 * radius) + th + 1
        window = frame.window(x0, y0, x1, y1)
        x0, y0 = max(0, x0), max(0, y0)  # window() clips to the frame
        if window.shape[0] < th or window.shape[1] < tw:
            return None
        scale = min(1.0, self.config.coarse_side_px / max(window.shape[:2]))
        scale = max(scale, min(1.0, 8.0 / max(1, min(th, tw))))  # keep the template >= 8 px
        if scale < 0.95 and not full_resolution:
            return self._coarse_then_fine(frame, window, (x0, y0), scale, centre, radius,
                                          feature, template, offset)
        scores = cv2.matchTemplate(self._features(window, feature),
                                   self._features(template, feature), cv2.TM_CCOEFF_NORMED)
        return self._peak(scores, (x0, y0), centre, radius, offset, penalise=True,
                          distinct=wide)

    def _inside_part(self, size, centre: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the part of the template inside a ``size`` (W, H) frame, the target at ``centre``.

        Near the frame's side, the context around the target would hang over it and could
        not be matched anywhere; the part that can be is searched for. Returns the part
        (``h x w x 3``) and the target's centre relative to its top-left; the whole template
        when too little of it, or of the target in it, is left to correlate.
        """
        th, tw = self._template.shape[:2]
        x0, y0 = centre - self._offset
        left = int(np.clip(np.ceil(-x0), 0, tw))
        top = int(np.clip(np.ceil(-y0), 0, th))
        right = int(np.clip(np.ceil(x0 + tw - size[0]), 0, tw))
        bottom = int(np.clip(np.ceil(y0 + th - size[1]), 0, th))
        # how much of the target itself (its box inside the template) the part still holds
        near, far = self._offset - 0.5 * self._box_size, self._offset + 0.5 * self._box_size
        held = (min(tw - right, far[0]) - max(left, near[0]),
                min(th - bottom, far[1]) - max(top, near[1]))
        if (min(held) < MIN_TARGET_PX or tw - left - right < MIN_TEMPLATE_PX
                or th - top - bottom < MIN_TEMPLATE_PX):
            return self._template, self._offset  # the context alone would match anywhere
        return (self._template[top:th - bottom, left:tw - right],
                self._offset - np.array([left, top], float))

    def _coarse_then_fine(self, frame, window, origin, scale, centre, radius, feature,
                          template, offset) -> Optional[_Match]:
        small = self._features(cv2.resize(window, None, fx=scale, fy=scale,
                                          interpolation=cv2.INTER_AREA), feature)
        template = self._features(cv2.resize(template, None, fx=scale, fy=scale,
                                             interpolation=cv2.INTER_AREA), feature)
        if small.shape[0] < template.shape[0] or small.shape[1] < template.shape[1]:
            return None
        scores = cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED)
        coarse = self._peak(scores, (0, 0), (centre - origin) * scale, radius * scale,
                            offset * scale, penalise=False, distinct=True)
        if coarse is None:
            return None
        refine_radius = 2.0 / scale + 2.0
        fine = self._search(frame, coarse.centre / scale + origin, refine_radius, False,
                            feature, full_resolution=True)
        if fine is not None:
            fine.runner_up = coarse.runner_up
        return fine

    def _peak(self, scores: np.ndarray, origin, centre, radius: float, offset: np.ndarray,
              penalise: bool, distinct: bool) -> Optional[_Match]:
        """
        Find the best peak of a correlation map whose entry (0, 0) sits at ``origin``.

        ``offset``: the target's centre relative to the correlated template's top-left.
        """
        if scores.size == 0:
            return None
        scores = np.nan_to_num(scores, nan=-1.0)
        ys, xs = np.mgrid[0:scores.shape[0], 0:scores.shape[1]]
        cx = origin[0] + xs + offset[0]
        cy = origin[1] + ys + offset[1]
        distance2 = ((cx - centre[0]) ** 2 + (cy - centre[1]) ** 2) / max(radius, 1.0) ** 2
        ranked = scores - self.config.motion_weight * distance2 if penalise else scores.copy()
        ranked[distance2 > 1.0] = -2.0
        y, x = np.unravel_index(int(np.argmax(ranked)), ranked.shape)
        if ranked[y, x] <= -2.0:
            return None
        match = _Match(np.array([cx[y, x], cy[y, x]], float), float(scores[y, x]))
        if distinct:
            others = ranked.copy()
            near = max(NEAR_PEAK_PX, int(0.5 * min(offset) if min(offset) > 0 else 0))
            others[max(0, y - near):y + near + 1, max(0, x - near):x + near + 1] = -2.0
            match.runner_up = float(others.max())
        return match

    def _features(self, rgb: np.ndarray, feature: str) -> np.ndarray:
        """Return what a search correlates: ``rgb`` itself, or its colour likelihood."""
        if feature == "rgb" or rgb.size == 0:
            return rgb
        lab = _lab(rgb)
        to_target = _distance(lab, self._target_lab)
        return _distance(lab, self._around_lab) / (to_target + _distance(
            lab, self._around_lab) + 1e-3)

    def _segment(self, frame: FrameView, match: _Match):
        """
        Pixels around the match that have the target's colour (None: not the target).

        The window is sized from the last steady box; a target that grew faster than that
        (entering the frame while frames are skipped, zooming) reaches the window's side, and
        the window is widened until it does not, or a wider one no longer passes the checks.
        """
        pad = np.maximum(6.0, 0.6 * self._box_size)
        found = None
        for _ in range(WIDEN_TRIES):
            wider = self._segment_in(frame, match, pad)
            if wider is None:
                break  # the narrower window's mask, if any, is the target's
            *found, cut_off = wider
            if not cut_off:
                break
            pad = 2.0 * pad + self._box_size
        return None if found is None else tuple(found)

    def _segment_in(self, frame: FrameView, match: _Match, pad: np.ndarray):
        """``_segment`` within ``pad`` of the last box; also whether the mask is cut off."""
        half = 0.5 * self._box_size
        lo = np.floor(match.centre - half - pad).astype(int)
        hi = np.ceil(match.centre + half + pad).astype(int) + 1
        pixels = frame.window(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
        origin = (max(0, int(lo[0])), max(0, int(lo[1])))
        if pixels.shape[0] < 2 or pixels.shape[1] < 2:
            return None
        lab = _lab(pixels)
        to_target = _distance(lab, self._target_lab)
        to_around = _distance(lab, self._around_lab)
        near = (to_target < to_around) & (to_target < self.config.colour_tolerance)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(near.astype(np.uint8),
                                                                   connectivity=8)
        if count < 2:
            return None
        cx, cy = match.centre[0] - origin[0], match.centre[1] - origin[1]
        centres = np.stack([stats[1:, 0] + stats[1:, 2] / 2, stats[1:, 1] + stats[1:, 3] / 2], 1)
        distance = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)
        reach = 0.5 * float(np.hypot(*self._box_size)) + 3.0
        candidates = np.flatnonzero(distance <= reach)
        if candidates.size == 0:
            return None
        best = candidates[np.argmax(stats[1:, cv2.CC_STAT_AREA][candidates])] + 1
        local = labels == best
        area = float(stats[best, cv2.CC_STAT_AREA])
        reached, frame_sides = _sides(local), _frame_sides(lo, hi, frame.size)
        # a target crossing the frame's side changes its visible area at any rate
        crossing = self._at_frame_side and reached & frame_sides != 0
        if not crossing and not AREA_RANGE[0] <= area / max(self._area, 1.0) <= AREA_RANGE[1]:
            return None
        if _distance(np.median(lab[local], axis=0), self._target_lab) > \
                self.config.colour_tolerance:
            return None
        # the window's own sides (those that are not the frame's) cut the target off
        cut_off = reached & ~frame_sides != 0
        return pixels, origin, _fill_holes(local), match.score, cut_off

    def _accept(self, frame: FrameView, pixels: np.ndarray, origin, local: np.ndarray,
                score: float) -> TrackUpdate:
        """Take ``local`` (a mask over ``pixels`` at ``origin``) as the target in this frame."""
        ys, xs = np.nonzero(local)
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max(), ys.max()
        box = (float(origin[0] + bx0), float(origin[1] + by0), float(origin[0] + bx1),
               float(origin[1] + by1))
        area = float(local.sum())
        # a partly covered or changing target does not become the appearance searched for
        # one crossing the frame's side is steady at any visible size (entering, leaving)
        width, height = frame.size
        at_frame_side = box[0] <= 0 or box[1] <= 0 or box[2] >= width - 1 or box[3] >= height - 1
        steady = self._template is None or (score >= STEADY_SCORE and (
            STEADY_AREA[0] <= area / self._area <= STEADY_AREA[1]
            or (at_frame_side and self._at_frame_side)))
        self._at_frame_side = at_frame_side
        self._centre = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
        lab = _lab(pixels)
        ring = _ring(local)
        self._target_lab += COLOUR_RATE * (np.median(lab[local], axis=0) - self._target_lab)
        if ring.any():
            self._around_lab += COLOUR_RATE * (np.median(lab[ring], axis=0) - self._around_lab)
        if steady:
            self._box_size = np.array([box[2] - box[0] + 1.0, box[3] - box[1] + 1.0])
            self._area = area
            self._cut_template(frame, box)
        self._misses = 0
        self._last_box = box
        mask = local[by0:by1 + 1, bx0:bx1 + 1].copy()
        roi = (int(box[0]), int(box[1]), int(mask.shape[1]), int(mask.shape[0]))
        return TrackUpdate(TrackState.TRACKING, box, float(np.clip(score, 0.0, 1.0)), mask, roi)

    def _cut_template(self, frame: FrameView, box: Box) -> None:
        margin = np.maximum(3.0, self.config.template_margin * self._box_size)
        x0, y0, x1, y1 = frame.clip_window((box[0] - margin[0], box[1] - margin[1],
                                            box[2] + margin[0], box[3] + margin[1]))
        self._template = frame.window(x0, y0, x1, y1)
        self._offset = self._centre - np.array([x0, y0], float)

    def _missed(self, match: Optional[_Match]) -> TrackUpdate:
        self._misses += 1
        self._velocity *= 0.9  # an occluded target slows down in our belief, not in reality
        seen = "no match" if match is None else f"best match {match.score:.2f}"
        if self._misses >= self.config.lost_after:
            return TrackUpdate(TrackState.LOST, self._last_box, 0.0,
                               reason=f"target not seen for {self._misses} frames ({seen})")
        return TrackUpdate(TrackState.SEARCHING, self._last_box, 0.0,
                           reason=f"target not seen ({seen}); widening the search")


def _lab(rgb: np.ndarray) -> np.ndarray:
    """``h x w x 3`` float32 CIELAB (OpenCV's 8-bit scale) of a lightly blurred RGB window."""
    return cv2.cvtColor(cv2.GaussianBlur(rgb, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)


def _distance(lab: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Colour distance with lightness at half weight (gain changes move lightness most)."""
    diff = lab - colour
    return np.sqrt(0.25 * diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2)


def _ring(mask: np.ndarray) -> np.ndarray:
    """Pixels just outside ``mask`` (its surroundings)."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    return grown & ~mask


def _sides(local: np.ndarray) -> int:
    """Return the window sides that ``local`` reaches: 1 left, 2 top, 4 right, 8 bottom (bits)."""
    return (int(local[:, 0].any()) | int(local[0, :].any()) << 1
            | int(local[:, -1].any()) << 2 | int(local[-1, :].any()) << 3)


def _frame_sides(lo: np.ndarray, hi: np.ndarray, size) -> int:
    """Return the sides of window ``lo``..``hi`` (x, y, unclipped) that are the frame's (bits)."""
    width, height = size
    return (int(lo[0] <= 0) | int(lo[1] <= 0) << 1
            | int(hi[0] >= width) << 2 | int(hi[1] >= height) << 3)


def _fill_holes(region: np.ndarray) -> np.ndarray:
    padded = np.pad(region.astype(np.uint8), 1)
    cv2.floodFill(padded, None, (0, 0), 2)
    return region | (padded[1:-1, 1:-1] == 0)
