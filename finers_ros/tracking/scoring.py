"""
How well a tracker followed a target through a sequence with per-frame ground truth.

Ground truth per frame (``Truth``): the target's *seen* pixels (``mask``, occluded and
out-of-view parts excluded) and its whole *silhouette* in view, both in one ``roi``; a frame is
*visible* when enough of the target is seen to score a mask against it and *hidden* when none
of it is. A tracker's reported mask is its ``TrackUpdate`` mask when the state is TRACKING
(its box when it gives no mask), and empty otherwise.

Per frame: IoU with the seen pixels, boundary F (DAVIS's F measure: precision and recall of
the mask boundaries within ``tolerance`` pixels), and *wrong target*: TRACKING while the
target is hidden, or TRACKING with IoU below ``WRONG_IOU`` against both the seen pixels and
the silhouette (so a mask on a half-occluded target is not called wrong). Over a sequence:

- ``J``, ``F``: mean IoU and boundary F over visible frames; ``success_rate``: share of
  visible frames with IoU >= ``SUCCESS_IOU``;
- ``frames_before_failure``: frames before the first visible frame under ``SUCCESS_IOU`` or
  the first wrong-target frame (all frames when neither happens);
- loss: for each run of hidden frames, frames from its first frame to the first state that is
  not TRACKING (0: already not tracking then); ``loss_missed`` counts runs tracked throughout;
- re-acquisition: for each run of hidden frames followed by a visible frame, frames from that
  visible frame to the first TRACKING frame with IoU >= ``SUCCESS_IOU``, before the target
  hides again; ``reacquire_missed`` counts reappearances never re-acquired;
- CPU ms per update: median, 90th and 99th percentile.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Protocol, Sequence, Tuple

import cv2
import numpy as np

from .base import Tracker, TrackUpdate
from .frames import FrameView

SUCCESS_IOU = 0.5
WRONG_IOU = 0.1
BOUNDARY_TOLERANCE_PX = 1

Roi = Tuple[int, int, int, int]  # (x0, y0, w, h) native pixels


class Truth(Protocol):
    """Ground truth of one frame (``finers_ros.data.moving.FrameTruth`` is one)."""

    roi: Roi
    mask: np.ndarray  # h x w bool in roi: the target's seen pixels
    silhouette: np.ndarray  # h x w bool in roi: the target in view, occluded parts included

    @property
    def visible(self) -> bool: ...

    @property
    def hidden(self) -> bool: ...


# -- masks ---------------------------------------------------------------------------------
def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two same-shape bool masks (1.0 when both are empty)."""
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (pixels past the array count as outside)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    inner = cv2.erode(padded, cross)[1:-1, 1:-1] > 0
    return mask & ~inner


def _disk(radius: int) -> np.ndarray:
    """``(2r+1) x (2r+1)`` uint8 kernel of the offsets ``(dx, dy)`` with dx^2 + dy^2 <= r^2."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def boundary_f(predicted: np.ndarray, truth: np.ndarray,
               tolerance: int = BOUNDARY_TOLERANCE_PX) -> float:
    """
    DAVIS boundary F measure of two same-shape bool masks.

    Precision: share of the predicted boundary within ``tolerance`` pixels (Euclidean) of the
    true boundary; recall: the converse; F = 2PR / (P + R). 1.0 when both masks are empty,
    0.0 when only one is.
    """
    pred_edge, true_edge = mask_boundary(predicted), mask_boundary(truth)
    pred_count, true_count = int(pred_edge.sum()), int(true_edge.sum())
    if pred_count == 0 and true_count == 0:
        return 1.0
    if pred_count == 0 or true_count == 0:
        return 0.0
    kernel = _disk(tolerance)
    near_true = cv2.dilate(true_edge.astype(np.uint8), kernel) > 0
    near_pred = cv2.dilate(pred_edge.astype(np.uint8), kernel) > 0
    precision = int((pred_edge & near_true).sum()) / pred_count
    recall = int((true_edge & near_pred).sum()) / true_count
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def reported_mask(update: TrackUpdate) -> Tuple[Roi, np.ndarray]:
    """Return the update's mask and ROI when TRACKING (its box without a mask), else empty."""
    if not update.tracking:
        return (0, 0, 0, 0), np.zeros((0, 0), bool)
    if update.mask is not None:
        return tuple(int(v) for v in update.mask_roi), np.asarray(update.mask, bool)
    if update.box is None:
        return (0, 0, 0, 0), np.zeros((0, 0), bool)
    x1, y1, x2, y2 = (int(round(v)) for v in update.box)
    width, height = max(0, x2 - x1 + 1), max(0, y2 - y1 + 1)
    return (x1, y1, width, height), np.ones((height, width), bool)


def _in_window(roi: Roi, mask: np.ndarray, window: Roi) -> np.ndarray:
    x0, y0, w, h = window
    out = np.zeros((h, w), bool)
    rx, ry, rw, rh = roi
    if rw and rh:
        out[ry - y0:ry - y0 + rh, rx - x0:rx - x0 + rw] = mask
    return out


def _union_window(rois: Iterable[Roi], pad: int) -> Roi:
    boxes = [r for r in rois if r[2] and r[3]]
    if not boxes:
        return (0, 0, 0, 0)
    x0 = min(r[0] for r in boxes) - pad
    y0 = min(r[1] for r in boxes) - pad
    x1 = max(r[0] + r[2] for r in boxes) + pad
    y1 = max(r[1] + r[3] for r in boxes) + pad
    return (x0, y0, x1 - x0, y1 - y0)


# -- frames --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameScore:
    """One update scored against its frame's truth (IoU and F against the seen pixels)."""

    visible: bool
    hidden: bool
    state: str
    iou: float
    boundary_f: float
    wrong_target: bool
    cpu_ms: float

    @property
    def tracking(self) -> bool:
        return self.state == "tracking"

    @property
    def failed(self) -> bool:
        """Return True for a visible frame under ``SUCCESS_IOU`` or a wrong-target frame."""
        return (self.visible and self.iou < SUCCESS_IOU) or self.wrong_target


def score_frame(update: TrackUpdate, truth: Truth, cpu_ms: float = 0.0,
                tolerance: int = BOUNDARY_TOLERANCE_PX) -> FrameScore:
    """Score one update against its frame's truth (see the module docstring)."""
    roi, mask = reported_mask(update)
    window = _union_window([roi, truth.roi], tolerance + 1)
    predicted = _in_window(roi, mask, window)
    seen = _in_window(truth.roi, truth.mask, window)
    iou = mask_iou(predicted, seen)
    wrong = False
    if update.tracking:
        silhouette = _in_window(truth.roi, truth.silhouette, window)
        wrong = truth.hidden or max(iou, mask_iou(predicted, silhouette)) < WRONG_IOU
    return FrameScore(
        visible=bool(truth.visible), hidden=bool(truth.hidden), state=update.state.value,
        iou=iou, boundary_f=boundary_f(predicted, seen, tolerance), wrong_target=wrong,
        cpu_ms=float(cpu_ms))


# -- sequences -----------------------------------------------------------------------------
def _hidden_runs(frames: Sequence[FrameScore]) -> List[Tuple[int, int]]:
    """Half-open ``[start, end)`` index ranges of consecutive hidden frames."""
    runs, start = [], None
    for index, frame in enumerate(frames):
        if frame.hidden and start is None:
            start = index
        elif not frame.hidden and start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, len(frames)))
    return runs


def loss_latencies(frames: Sequence[FrameScore]) -> List[Optional[int]]:
    """Per hidden run: frames until a state other than TRACKING (None: tracked throughout)."""
    out = []
    for start, end in _hidden_runs(frames):
        late = [i - start for i in range(start, end) if not frames[i].tracking]
        out.append(late[0] if late else None)
    return out


def reacquire_latencies(frames: Sequence[FrameScore]) -> List[Optional[int]]:
    """Per reappearance: frames until a TRACKING frame on the target (None: never)."""
    out = []
    runs = _hidden_runs(frames)
    for number, (_, end) in enumerate(runs):
        horizon = runs[number + 1][0] if number + 1 < len(runs) else len(frames)
        back = [i for i in range(end, horizon) if frames[i].visible]
        if not back:
            continue  # the target never showed again
        found = [i - back[0] for i in range(back[0], horizon)
                 if frames[i].tracking and frames[i].iou >= SUCCESS_IOU]
        out.append(found[0] if found else None)
    return out


def _worst(latencies: List[Optional[int]]) -> Optional[int]:
    known = [v for v in latencies if v is not None]
    return max(known) if known else None


def summarise(frames: Sequence[FrameScore]) -> dict:
    """Return the sequence figures of the module docstring, as a JSON-ready dict."""
    visible = [f for f in frames if f.visible]
    failures = [i for i, f in enumerate(frames) if f.failed]
    cpu = np.array([f.cpu_ms for f in frames], float)
    median, p90, p99 = np.percentile(cpu, [50, 90, 99]) if cpu.size else (np.nan,) * 3
    loss = loss_latencies(frames)
    reacquire = reacquire_latencies(frames)
    mean = (lambda values: float(np.mean(values)) if values else None)
    return {
        "frames": len(frames),
        "visible_frames": len(visible),
        "hidden_frames": sum(f.hidden for f in frames),
        "J": mean([f.iou for f in visible]),
        "F": mean([f.boundary_f for f in visible]),
        "success_rate": mean([float(f.iou >= SUCCESS_IOU) for f in visible]),
        "frames_before_failure": failures[0] if failures else len(frames),
        "wrong_target_frames": sum(f.wrong_target for f in frames),
        "loss_frames": loss,
        "loss_frames_worst": _worst(loss),
        "loss_missed": sum(v is None for v in loss),
        "reacquire_frames": reacquire,
        "reacquire_frames_worst": _worst(reacquire),
        "reacquire_missed": sum(v is None for v in reacquire),
        "cpu_ms_median": float(median),
        "cpu_ms_p90": float(p90),
        "cpu_ms_p99": float(p99),
    }


@dataclass
class SequenceRun:
    """One tracker's pass over one sequence: per-frame scores and the seed's CPU time."""

    frames: List[FrameScore]
    seed_cpu_ms: float

    def summary(self) -> dict:
        return {**summarise(self.frames), "seed_cpu_ms": self.seed_cpu_ms}


def evaluate(tracker: Tracker, sequence, clock: Callable[[], float] = time.process_time,
             tolerance: int = BOUNDARY_TOLERANCE_PX) -> SequenceRun:
    """
    Seed ``tracker`` on ``sequence``'s seed frame, update it on every frame and score it.

    ``sequence``: ``seed_frame`` (``H x W x 3 uint8 RGB``), ``seed_box`` (XYXY inclusive),
    ``seed_mask`` (``H x W`` bool), iterating ``(frame, truth)`` (``MovingSequence`` is one).
    ``clock`` (seconds) times each ``seed``/``update`` call alone, frame rendering excluded;
    the default, process CPU time, counts every thread the tracker uses.
    """
    seed_view, seed_box, seed_mask = (FrameView(sequence.seed_frame), sequence.seed_box,
                                      sequence.seed_mask)
    start = clock()
    tracker.seed(seed_view, seed_box, seed_mask)
    seed_ms = (clock() - start) * 1000.0
    scores = []
    for frame, truth in sequence:
        view = FrameView(frame)
        start = clock()
        update = tracker.update(view)
        spent = (clock() - start) * 1000.0
        scores.append(score_frame(update, truth, spent, tolerance))
    return SequenceRun(scores, seed_ms)
