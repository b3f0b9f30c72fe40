"""Moving synthetic scenes: seeded, and their ground truth is what the pixels show."""
from functools import lru_cache

import cv2
import numpy as np
import pytest

from finers_ros.data.moving import moving_sequence, OCCLUDER_RGB, SCENARIOS

SIZE = (1280, 720)  # a third of 4K: motions and targets scale with the width
UNIT = SIZE[0] / 3840
FRAMES = 30


@lru_cache(maxsize=None)
def sequence(scenario, seed=0):
    return moving_sequence(scenario, seed, FRAMES, SIZE)


def truths(scenario, seed=0):
    return [sequence(scenario, seed).frame(i)[1] for i in range(FRAMES + 1)]


def centre(box):
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def near(pixels, rgb, tolerance=24):
    """Per pixel: every channel within ``tolerance`` of ``rgb`` (``N x 3`` pixels)."""
    return (np.abs(pixels.astype(int) - np.array(rgb, int)) <= tolerance).all(-1)


def expected(rgb, gain):
    return np.clip(np.round(np.array(rgb) * gain), 0, 255)


def test_same_seed_same_frames_and_truth_other_seed_other_scene():
    a = moving_sequence("pan", 3, 6, SIZE)
    b = moving_sequence("pan", 3, 6, SIZE)
    c = moving_sequence("pan", 4, 6, SIZE)
    assert np.array_equal(a.seed_frame, b.seed_frame)
    assert a.seed_box == b.seed_box
    frames_a, frames_b = list(a), list(b)
    assert len(frames_a) == 6 and [t.index for _, t in frames_a] == [1, 2, 3, 4, 5, 6]
    for (fa, ta), (fb, tb) in zip(frames_a, frames_b):
        assert np.array_equal(fa, fb) and ta.roi == tb.roi and np.array_equal(ta.mask, tb.mask)
    assert np.array_equal(a.frame(4)[0], frames_a[3][0])  # random access renders the same
    assert not np.array_equal(a.seed_frame, c.seed_frame)
    # consecutive frames differ even where nothing moved: fresh sensor noise per frame
    assert not np.array_equal(frames_a[0][0][:50, :50], frames_a[1][0][:50, :50])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_truth_matches_the_rendered_pixels(scenario):
    seq = sequence(scenario)
    assert seq.seed_frame.shape == (720, 1280, 3) and seq.seed_frame.dtype == np.uint8
    assert seq.seed_mask.shape == (720, 1280) and seq.seed_mask.sum() == seq.seed_truth.mask.sum()
    ys, xs = np.nonzero(seq.seed_mask)
    assert seq.seed_box == (xs.min(), ys.min(), xs.max(), ys.max())
    assert seq.seed_truth.visible_fraction == 1.0
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    fits = []
    for index in range(0, FRAMES + 1, 3):
        frame, truth = seq.frame(index)
        x0, y0, w, h = truth.roi
        assert truth.mask.shape == truth.silhouette.shape == (h, w)
        assert not (truth.mask & ~truth.silhouette).any()
        if truth.silhouette.sum() == 0:
            continue
        colour = expected(seq.target_rgb, truth.gain)
        inside = cv2.erode(truth.mask.astype(np.uint8), cross) > 0
        patch = frame[y0:y0 + h, x0:x0 + w]
        if inside.sum() >= 4:
            assert near(patch[inside], colour).mean() > 0.95, (index, truth.visible_fraction)
        covered = cv2.erode((truth.silhouette & ~truth.mask).astype(np.uint8), cross) > 0
        if covered.sum() >= 4:
            occluder = expected(OCCLUDER_RGB, truth.gain)
            assert near(patch[covered], occluder).mean() > 0.95, index
        # just outside the silhouette the target's colour stops
        pad = 4
        wide = np.pad(truth.silhouette, pad).astype(np.uint8)
        ring = (cv2.dilate(wide, np.ones((5, 5), np.uint8)) > 0) & ~(
            cv2.dilate(wide, np.ones((3, 3), np.uint8)) > 0)
        ys, xs = np.nonzero(ring)
        ys, xs = ys + y0 - pad, xs + x0 - pad
        keep = (xs >= 0) & (ys >= 0) & (xs < SIZE[0]) & (ys < SIZE[1])
        assert near(frame[ys[keep], xs[keep]], colour).mean() < 0.5, index
        surroundings = patch[~grown(truth.silhouette)].astype(int)
        plain = near(surroundings, np.median(surroundings, 0), 30).mean() > 0.9
        if truth.visible_fraction == 1.0 and plain:  # the target on one background colour
            fits.append(alignment(patch, truth, colour))
    # the truth sits on the drawn target to the pixel: better than shifted by one either way
    assert fits and all(best > max(shifted) for best, shifted in fits)
    assert np.median([best for best, _ in fits]) > 0.95


def grown(mask):
    """Return the mask and its 8-neighbours (past the anti-aliased rim of a drawn shape)."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def alignment(patch, truth, colour):
    """Return the IoU of the pixels nearer the target's colour than the background's."""
    pixels = patch.astype(int)
    surroundings = np.median(pixels[~grown(truth.silhouette)], 0)
    drawn = np.abs(pixels - colour).sum(-1) < np.abs(pixels - surroundings).sum(-1)

    def iou(mask):
        return (drawn & mask).sum() / (drawn | mask).sum()

    shifted = [iou(np.roll(truth.mask, step, axis)) for step in (-1, 1) for axis in (0, 1)]
    return iou(truth.mask), shifted


def test_occluder_hides_the_target_for_several_frames_then_it_is_seen_again():
    seen = [t.visible_fraction for t in truths("occlusion")]
    hidden = [i for i, t in enumerate(truths("occlusion")) if t.hidden]
    assert seen[0] == 1.0 and len(hidden) >= 6
    assert hidden == list(range(hidden[0], hidden[-1] + 1))  # one run
    for i in hidden:
        t = truths("occlusion")[i]
        assert not t.visible and t.box is None and t.silhouette.sum() > 0  # in view, covered
    assert all(f < 1.0 for f in seen[hidden[0] - 2:hidden[0]])  # partly covered on the way in
    assert max(seen[hidden[-1] + 1:]) == 1.0


def test_target_leaves_the_view_and_comes_back():
    all_truth = truths("exit")
    gone = [i for i, t in enumerate(all_truth) if t.hidden]
    assert len(gone) >= 6
    assert all(all_truth[i].silhouette.size == 0 for i in gone[1:-1])  # wholly out of view
    assert all_truth[gone[-1] + 2].visible
    side = centre(all_truth[gone[0] - 1].box)[0]
    assert side < 40 or side > SIZE[0] - 40  # it left by the edge


def test_identical_twin_crosses_the_targets_path_close_by():
    seq = sequence("twin")
    radius = seq.radius
    rows, gaps = [], []
    for index in range(FRAMES + 1):
        frame, truth = seq.frame(index)
        assert truth.visible_fraction == 1.0  # the twin never covers the target
        if truth.twin_box is None:
            continue
        twin, target = centre(truth.twin_box), centre(truth.box)
        rows.append(twin[1] - target[1])
        gaps.append(np.hypot(*(twin - target)))
        x0, y0, x1, y1 = (int(v) for v in truth.twin_box)
        twin_pixels = frame[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3)
        assert near(twin_pixels, seq.target_rgb).mean() > 0.3  # same colour as the target
    assert min(rows) < -radius and max(rows) > radius  # from one side of its path to the other
    assert 2.2 * radius < min(gaps) < 4 * radius


def test_zoom_scales_the_target():
    all_truth = truths("zoom")
    zooms = np.array([t.zoom for t in all_truth])
    assert zooms[0] == 1.0 and (zooms.max() > 1.3 or zooms.min() < 0.7)
    width0 = all_truth[0].box[2] - all_truth[0].box[0] + 1
    for truth in all_truth:
        width = truth.box[2] - truth.box[0] + 1
        assert abs(width - truth.zoom * width0) <= 3, (truth.index, truth.zoom, width, width0)


def test_roll_turns_the_view_a_few_degrees():
    angles = [np.degrees(np.arctan2(t.camera[1, 0], t.camera[0, 0])) for t in truths("roll")]
    assert 3.5 < max(np.abs(angles)) <= 4.0


def test_gain_changes_the_whole_frame_brightness():
    seq = sequence("gain")
    base = seq.seed_frame.astype(float).mean()
    gains = []
    for index in (6, 12, 18, 24):
        frame, truth = seq.frame(index)
        gains.append(truth.gain)
        assert frame.astype(float).mean() / base == pytest.approx(truth.gain, rel=0.05)
    assert max(gains) - min(gains) > 0.2


def test_fast_target_moves_about_40_4k_pixels_a_frame():
    boxes = [t.box for t in truths("fast")]
    steps = [np.hypot(*(centre(b) - centre(a))) for a, b in zip(boxes, boxes[1:])]
    assert np.median(steps) == pytest.approx(40 * UNIT, rel=0.15)


def test_jump_moves_the_target_250_4k_pixels_between_seed_and_first_frame():
    boxes = [t.box for t in truths("jump")]
    first = np.hypot(*(centre(boxes[1]) - centre(boxes[0])))
    assert first == pytest.approx(250 * UNIT, abs=8 * UNIT)
    later = [np.hypot(*(centre(b) - centre(a))) for a, b in zip(boxes[1:], boxes[2:])]
    assert max(later) < 10 * UNIT


def test_pan_moves_the_view_not_the_target_size():
    all_truth = truths("pan")
    pairs = zip(all_truth, all_truth[1:])
    shifts = [np.hypot(*(b.camera[:, 2] - a.camera[:, 2])) for a, b in pairs]
    assert max(shifts) > 12 * UNIT and all(t.visible_fraction == 1.0 for t in all_truth)
    assert all(t.zoom == 1.0 for t in all_truth)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown scenario 'spin'"):
        moving_sequence("spin", size=SIZE)
    with pytest.raises(ValueError, match="frames=0"):
        moving_sequence("pan", frames=0, size=SIZE)
    with pytest.raises(IndexError):
        sequence("pan").frame(FRAMES + 1)
