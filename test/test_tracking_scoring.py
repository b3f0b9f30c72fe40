"""Tracker scoring: per-frame and per-sequence figures on hand-made masks, values by hand."""
from dataclasses import dataclass

import numpy as np
import pytest

from finers_ros.data.moving import moving_sequence
from finers_ros.tracking.base import TrackState, TrackUpdate
from finers_ros.tracking.scoring import (boundary_f, evaluate, FrameScore, mask_boundary,
                                         mask_iou, score_frame, summarise)


def block(shape, rows, cols):
    """``shape`` bool array, True on the inclusive ``rows`` and ``cols`` ranges."""
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return mask


@dataclass
class Truth:
    roi: tuple
    mask: np.ndarray
    silhouette: np.ndarray
    visible: bool = True
    hidden: bool = False


def tracking(roi, mask):
    return TrackUpdate(TrackState.TRACKING, None, 0.9, mask, roi)


SEARCHING = TrackUpdate(TrackState.SEARCHING, (0.0, 0.0, 1.0, 1.0), 0.1, reason="not seen")


# -- masks ---------------------------------------------------------------------------------
def test_mask_iou_by_hand():
    a = block((5, 5), (0, 1), (0, 2))  # 6 pixels
    b = block((5, 5), (1, 3), (1, 3))  # 9 pixels, 2 shared (row 1, columns 1-2)
    assert mask_iou(a, b) == pytest.approx(2 / 13)
    assert mask_iou(a, a) == 1.0 and mask_iou(a, ~a) == 0.0
    assert mask_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0


def test_mask_boundary_by_hand():
    rectangle = block((8, 8), (1, 4), (2, 6))  # 4 x 5
    assert mask_boundary(rectangle).sum() == 14  # 2 * (4 + 5) - 4
    assert not mask_boundary(rectangle)[2:4, 3:6].any()  # the 2 x 3 inside
    assert mask_boundary(block((5, 5), (2, 2), (3, 3))).sum() == 1
    full = np.ones((3, 3), bool)  # past the array is outside: only the centre is inner
    assert mask_boundary(full).sum() == 8 and not mask_boundary(full)[1, 1]


def test_boundary_f_shifted_square():
    truth = block((12, 12), (2, 7), (2, 7))  # 6 x 6: 20 boundary pixels
    shifted = block((12, 12), (2, 7), (3, 8))  # one column right
    assert boundary_f(shifted, truth, tolerance=1) == 1.0  # every edge pixel 1 px off at most
    # tolerance 0: the top and bottom rows share columns 3-7 (10 of 20 pixels each way)
    assert boundary_f(shifted, truth, tolerance=0) == pytest.approx(0.5)


def test_boundary_f_taller_rectangle():
    truth = block((14, 12), (2, 7), (2, 7))  # 6 x 6: 20 boundary pixels
    taller = block((14, 12), (2, 9), (2, 7))  # 8 x 6: 24 boundary pixels
    # tolerance 1: the 6 pixels of its bottom row are 2 below the truth's (precision 18/24);
    # the truth's bottom row at columns 4 and 5 is 2 from any of its edge pixels (18/20)
    precision, recall = 18 / 24, 18 / 20
    f1 = 2 * precision * recall / (precision + recall)
    assert boundary_f(taller, truth, tolerance=1) == pytest.approx(f1)
    assert f1 == pytest.approx(0.8182, abs=1e-4)
    assert boundary_f(taller, truth, tolerance=2) == 1.0  # 2 px exactly: within


def test_boundary_f_tolerance_is_euclidean():
    truth = block((9, 9), (4, 4), (4, 4))
    diagonal = block((9, 9), (5, 5), (5, 5))  # sqrt(2) away
    assert boundary_f(diagonal, truth, tolerance=1) == 0.0
    assert boundary_f(diagonal, truth, tolerance=2) == 1.0


def test_boundary_f_empty_masks():
    empty, one = np.zeros((4, 4), bool), block((4, 4), (1, 2), (1, 2))
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(one, empty) == 0.0 and boundary_f(empty, one) == 0.0


# -- frames --------------------------------------------------------------------------------
def test_score_frame_rois_at_different_offsets():
    truth = Truth((12, 21, 4, 4), np.ones((4, 4), bool), np.ones((4, 4), bool))
    # the report covers x 10-13, y 20-22 (12 px); the truth x 12-15, y 21-24 (16 px); 4 shared
    score = score_frame(tracking((10, 20, 4, 3), np.ones((3, 4), bool)), truth, cpu_ms=3.5)
    assert score.iou == pytest.approx(4 / 24) and score.cpu_ms == 3.5
    assert not score.wrong_target and score.failed  # IoU under 0.5
    exact = score_frame(tracking((12, 21, 4, 4), np.ones((4, 4), bool)), truth)
    assert exact.iou == 1.0 and exact.boundary_f == 1.0 and not exact.failed


def test_score_frame_box_without_mask_counts_as_its_box():
    truth = Truth((12, 21, 4, 4), np.ones((4, 4), bool), np.ones((4, 4), bool))
    update = TrackUpdate(TrackState.TRACKING, (12.0, 21.0, 15.0, 22.0), 0.9)  # top 2 rows
    assert score_frame(update, truth).iou == pytest.approx(8 / 16)


def test_not_tracking_a_visible_target_scores_zero_but_is_not_wrong():
    truth = Truth((0, 0, 3, 3), np.ones((3, 3), bool), np.ones((3, 3), bool))
    score = score_frame(SEARCHING, truth)
    assert score.iou == 0.0 and score.boundary_f == 0.0
    assert not score.wrong_target and score.failed and score.state == "searching"


def test_tracking_while_hidden_is_wrong_searching_is_right():
    covered = np.zeros((3, 3), bool)
    truth = Truth((5, 5, 3, 3), covered, np.ones((3, 3), bool), visible=False, hidden=True)
    assert score_frame(tracking((5, 5, 3, 3), np.ones((3, 3), bool)), truth).wrong_target
    assert not score_frame(SEARCHING, truth).wrong_target


def test_wrong_target_threshold_is_iou_below_one_tenth():
    seen = np.zeros((1, 11), bool)
    seen[0, 0] = True
    truth = Truth((0, 0, 11, 1), seen, seen)
    ten = score_frame(tracking((0, 0, 10, 1), np.ones((1, 10), bool)), truth)
    eleven = score_frame(tracking((0, 0, 11, 1), np.ones((1, 11), bool)), truth)
    assert ten.iou == pytest.approx(0.1) and not ten.wrong_target
    assert eleven.iou == pytest.approx(1 / 11) and eleven.wrong_target
    elsewhere = score_frame(tracking((40, 40, 3, 3), np.ones((3, 3), bool)), truth)
    assert elsewhere.iou == 0.0 and elsewhere.wrong_target


def test_a_mask_on_a_mostly_covered_target_is_not_wrong():
    silhouette = np.ones((4, 10), bool)
    seen = np.zeros((4, 10), bool)
    seen[:, :1] = True  # a tenth seen, the rest behind an occluder
    truth = Truth((0, 0, 10, 4), seen, silhouette, visible=False)
    whole = score_frame(tracking((0, 0, 10, 4), silhouette), truth)
    assert whole.iou == pytest.approx(0.1) and not whole.wrong_target and not whole.failed
    sliver = score_frame(tracking((0, 0, 1, 4), np.ones((4, 1), bool)), truth)
    assert sliver.iou == 1.0 and not sliver.wrong_target


# -- sequences -----------------------------------------------------------------------------
V, P, H = "visible", "partial", "hidden"


def frame(kind, state, iou=0.0, wrong=False, f=0.0, cpu=0.0):
    return FrameScore(visible=kind == V, hidden=kind == H, state=state, iou=iou,
                      boundary_f=f, wrong_target=wrong, cpu_ms=cpu)


def test_summarise_by_hand():
    frames = [
        frame(V, "tracking", 0.9, f=1.0),
        frame(V, "tracking", 0.8, f=0.5),
        frame(P, "tracking", 0.3),  # half covered: not scored, not wrong
        frame(H, "tracking", wrong=True),  # hidden run 1 starts; still tracking: wrong
        frame(H, "searching"),  # loss declared 1 frame into the run
        frame(H, "searching"),
        frame(P, "searching"),
        frame(V, "searching"),  # back in view: re-acquisition starts here
        frame(V, "tracking", 0.4, f=0.25),
        frame(V, "tracking", 0.5, f=0.75),  # IoU 0.5 exactly: re-acquired, 2 frames on
        frame(H, "lost"),  # hidden run 2: already not tracking
        frame(H, "lost"),
    ]
    frames = [FrameScore(**{**f.__dict__, "cpu_ms": float(i + 1)}) for i, f in enumerate(frames)]
    figures = summarise(frames)
    assert figures["frames"] == 12 and figures["visible_frames"] == 5
    assert figures["hidden_frames"] == 5
    assert figures["J"] == pytest.approx((0.9 + 0.8 + 0.0 + 0.4 + 0.5) / 5)
    assert figures["F"] == pytest.approx((1.0 + 0.5 + 0.0 + 0.25 + 0.75) / 5)
    assert figures["success_rate"] == pytest.approx(3 / 5)
    assert figures["frames_before_failure"] == 3  # frame 3 is wrong
    assert figures["wrong_target_frames"] == 1
    assert figures["loss_frames"] == [1, 0] and figures["loss_frames_worst"] == 1
    assert figures["loss_missed"] == 0
    # the second run ends the sequence: nothing to re-acquire after it
    assert figures["reacquire_frames"] == [2] and figures["reacquire_frames_worst"] == 2
    assert figures["reacquire_missed"] == 0
    # CPU 1..12 ms: median 6.5; linear percentiles at 9.9 and 10.89 of 11 steps
    assert figures["cpu_ms_median"] == pytest.approx(6.5)
    assert figures["cpu_ms_p90"] == pytest.approx(10.9)
    assert figures["cpu_ms_p99"] == pytest.approx(11.89)


def test_summarise_counts_runs_tracked_throughout_and_reappearances_never_found():
    frames = [frame(V, "tracking", 1.0), frame(H, "tracking", wrong=True),
              frame(H, "tracking", wrong=True), frame(V, "tracking", 0.05, wrong=True),
              frame(V, "tracking", 0.3), frame(H, "searching"), frame(V, "searching")]
    figures = summarise(frames)
    assert figures["loss_frames"] == [None, 0] and figures["loss_missed"] == 1
    assert figures["loss_frames_worst"] == 0
    assert figures["reacquire_frames"] == [None, None] and figures["reacquire_missed"] == 2
    assert figures["reacquire_frames_worst"] is None
    assert figures["frames_before_failure"] == 1 and figures["wrong_target_frames"] == 3


def test_summarise_without_events_or_visible_frames():
    figures = summarise([frame(P, "tracking", 0.4), frame(P, "searching")])
    assert figures["J"] is None and figures["success_rate"] is None
    assert figures["loss_frames"] == [] and figures["loss_frames_worst"] is None
    assert figures["frames_before_failure"] == 2


# -- a tracker through a moving sequence ---------------------------------------------------
class OracleTracker:
    """Reports each frame's truth: seen pixels when any, searching otherwise."""

    name = "oracle"

    def __init__(self, truths):
        self.truths = iter(truths)
        self.seeded = None

    def seed(self, frame, box, mask):
        self.seeded = (frame.size, box, int(mask.sum()))
        return TrackUpdate(TrackState.TRACKING, box, 1.0)

    def update(self, frame):
        truth = next(self.truths)
        assert frame.size == truth.size
        if truth.hidden:
            return TrackUpdate(TrackState.SEARCHING, None, 0.0, reason="not seen")
        return TrackUpdate(TrackState.TRACKING, truth.box, 1.0, truth.mask, truth.roi)

    def close(self):
        pass


class StillTracker:
    """Keeps reporting the seed mask where it was seeded."""

    name = "still"

    def seed(self, frame, box, mask):
        self.mask = mask
        return self.update(frame)

    def update(self, frame):
        width, height = frame.size
        return TrackUpdate(TrackState.TRACKING, None, 1.0, self.mask, (0, 0, width, height))

    def close(self):
        pass


def small_sequence(scenario, frames=24):
    return moving_sequence(scenario, 0, frames, (1280, 720))


@pytest.mark.parametrize("scenario", ["occlusion", "exit"])
def test_a_tracker_reporting_the_truth_scores_perfectly(scenario):
    sequence = small_sequence(scenario)
    oracle = OracleTracker([truth for _, truth in sequence])
    ticks = iter(np.arange(0.0, 100.0, 0.002))  # each clock read 2 ms after the last
    run = evaluate(oracle, sequence, clock=lambda: next(ticks))
    figures = run.summary()
    assert oracle.seeded == ((1280, 720), sequence.seed_box, int(sequence.seed_mask.sum()))
    assert figures["frames"] == 24 and figures["hidden_frames"] >= 5
    assert figures["J"] == 1.0 and figures["F"] == 1.0 and figures["success_rate"] == 1.0
    assert figures["wrong_target_frames"] == 0 and figures["frames_before_failure"] == 24
    assert figures["loss_frames"] == [0] and figures["reacquire_frames"] == [0]
    assert figures["cpu_ms_median"] == pytest.approx(2.0) and run.seed_cpu_ms == pytest.approx(2)


def test_a_tracker_that_stays_still_fails_the_pan():
    figures = evaluate(StillTracker(), small_sequence("pan")).summary()
    assert figures["J"] < 0.5 and figures["wrong_target_frames"] > 0
    assert figures["frames_before_failure"] < 24
