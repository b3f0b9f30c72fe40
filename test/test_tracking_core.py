"""
Tracking core on small hand-made scenes: the frame view, the ring and the template tracker.

A 240 x 160 textured background with flat red targets placed by hand, so every expected
box is known to the pixel (XYXY inclusive) and a test runs in well under a second. Targets
are wider than tall and move by different amounts in x and y, so a swapped axis shows.
The tracking service on the same scenes: test_tracking_service.py.
"""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from finers_ros.tracking import FrameView, TrackerConfig, TrackerError, TrackState
from finers_ros.tracking import build_tracker
from finers_ros.tracking.base import TrackUpdate
from finers_ros.tracking.ring import FrameRing, TrackFrame

WIDTH, HEIGHT = 240, 160
RED = (230, 40, 40)
TARGET = (14, 10)  # (w, h) of the hand-placed targets
TALL = (16, 40)  # (w, h) of a target crossing the top or bottom side over several frames


def _background() -> np.ndarray:
    noise = np.random.default_rng(0).normal(0.0, 1.0, (HEIGHT, WIDTH, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2)
    return (blurred / blurred.std() * 25 + np.array([90, 120, 110])).clip(0, 255) \
        .astype(np.uint8)


BACKGROUND = _background()


@pytest.fixture(autouse=True)
def one_cv_thread():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


def scene(*targets, size=TARGET) -> np.ndarray:
    """``H x W x 3`` RGB frame with a red ``size`` target at each top-left ``(x, y)``."""
    frame = BACKGROUND.copy()
    for x, y in targets:
        frame[y:y + size[1], x:x + size[0]] = RED
    return frame


def box_at(x, y, size=TARGET):
    """Return the XYXY inclusive box of a target placed at ``(x, y)``."""
    return (float(x), float(y), float(x + size[0] - 1), float(y + size[1] - 1))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def seeded(x=60, y=80, **config):
    tracker = build_tracker(TrackerConfig(**config))
    update = tracker.seed(FrameView(scene((x, y))), box_at(x, y), None)
    return tracker, update


# -- the frame view ------------------------------------------------------------------------
def test_clip_window_is_half_open_and_inside_a_wide_frame():
    view = FrameView(np.zeros((30, 50, 3), np.uint8))
    assert view.size == (50, 30)
    assert view.clip_window((2.5, 3.9, 10.0, 20.2)) == (2, 3, 11, 21)
    assert view.clip_window((-5.0, -7.0, 60.0, 40.0)) == (0, 0, 50, 30)
    assert view.clip_window((45.0, 25.0, 45.0, 25.0)) == (45, 25, 46, 26)  # one pixel
    assert view.clip_window((60.0, 40.0, 70.0, 50.0)) == (50, 30, 50, 30)  # empty, off
    assert view.clip_window((-20.0, -9.0, -10.0, -5.0)) == (0, 0, 0, 0)  # off, before it


def test_windows_of_a_column_major_frame_are_row_major_for_opencv():
    rgb = np.asfortranarray(np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3))
    window = FrameView(rgb).window(3, 2, 20, 10)
    assert window.flags["C_CONTIGUOUS"] and np.array_equal(window, rgb[2:10, 3:20])


def test_window_is_rgb_for_either_order_and_empty_past_the_edges():
    rgb = np.zeros((30, 50, 3), np.uint8)
    rgb[5:10, 40:45] = (200, 100, 10)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    for view in (FrameView(rgb), FrameView(bgr, "bgr")):
        window = view.window(38, 4, 60, 11)
        assert window.shape == (7, 12, 3) and window.flags["C_CONTIGUOUS"]
        assert tuple(window[1, 2]) == (200, 100, 10) and tuple(window[0, 0]) == (0, 0, 0)
        assert view.window(55, 5, 60, 10).shape == (5, 0, 3)
        assert view.window(10, 35, 20, 40).shape == (0, 10, 3)
    window = FrameView(rgb).window(0, 0, 50, 30)
    window[:] = 1
    assert rgb.max() == 200  # a copy, never the frame itself


@pytest.mark.parametrize("pixels, order, message", [
    (np.zeros((4, 4), np.uint8), "rgb", "H x W x 3 uint8"),
    (np.zeros((4, 4, 4), np.uint8), "rgb", "H x W x 3 uint8"),
    (np.zeros((4, 4, 3), np.float32), "rgb", "H x W x 3 uint8"),
    (np.zeros((4, 4, 3), np.uint8), "RGB", "order='RGB'"),
])
def test_frame_view_refuses_what_is_not_an_8_bit_colour_frame(pixels, order, message):
    with pytest.raises(ValueError, match=message):
        FrameView(pixels, order)


# -- the ring ------------------------------------------------------------------------------
def test_ring_counts_bytes_and_keeps_a_frame_exactly_at_the_byte_bound():
    ring = FrameRing(max_frames=4, max_bytes=10)
    for seq, nbytes in enumerate([4, 6], start=1):
        ring.put(TrackFrame(lambda: None, None, seq, nbytes))
    assert len(ring) == 2 and ring.nbytes == 10 and ring.peak_bytes == 10  # exactly full
    ring.put(TrackFrame(lambda: None, None, 3, 1))
    assert [f.seq for f in ring.after(0)] == [2, 3] and ring.nbytes == 7
    ring.put(TrackFrame(lambda: None, None, 4, 10))  # exactly the bound on its own: kept
    assert [f.seq for f in ring.after(0)] == [4] and ring.peak_bytes == 10
    assert ring.after(4) == []
    ring.clear()
    assert len(ring) == 0 and ring.nbytes == 0 and ring.peak_bytes == 10


def test_ring_keeps_exactly_max_frames():
    ring = FrameRing(max_frames=3, max_bytes=100)
    for seq in range(1, 4):
        ring.put(TrackFrame(lambda: None, None, seq, 1))
    assert [f.seq for f in ring.after(1)] == [2, 3] and len(ring) == 3
    assert FrameRing(max_frames=1, max_bytes=1).max_frames == 1


@pytest.mark.parametrize("frames, nbytes", [(0, 10), (3, 0)])
def test_ring_refuses_bounds_that_hold_nothing(frames, nbytes):
    with pytest.raises(ValueError, match="^max_frames and max_bytes must be positive$"):
        FrameRing(frames, nbytes)


def test_a_new_ring_holds_30_frames_or_256_mib_and_has_held_nothing():
    ring = FrameRing()
    assert (ring.max_frames, ring.max_bytes) == (30, 256 * 2 ** 20)
    assert (len(ring), ring.nbytes, ring.peak_bytes) == (0, 0, 0)


# -- the template tracker ------------------------------------------------------------------
def test_seed_from_a_box_gives_that_box_and_a_full_mask():
    _, update = seeded(60, 80)
    assert update.state is TrackState.TRACKING and update.box == box_at(60, 80)
    assert update.confidence == 1.0 and update.reason == ""
    assert update.mask.shape == (10, 14) and update.mask.all()
    assert update.mask_roi == (60, 80, 14, 10)


def test_seed_from_a_mask_takes_the_mask_not_the_box():
    frame = scene()
    frame[70:82, 100:104] = RED  # an L: a 4 x 12 upright bar and a 14 x 4 foot
    frame[78:82, 104:114] = RED
    mask = np.all(frame == RED, axis=2)
    tracker = build_tracker()
    update = tracker.seed(FrameView(frame), (95.0, 65.0, 120.0, 90.0), mask)
    assert update.box == (100.0, 70.0, 113.0, 81.0)
    assert update.mask_roi == (100, 70, 14, 12)
    assert np.array_equal(update.mask, mask[70:82, 100:114])
    moved = np.roll(np.roll(frame, 3, axis=1), -2, axis=0)
    moved[:, :3] = frame[:, :3]
    after = tracker.update(FrameView(moved))
    assert after.tracking and after.box == (103.0, 68.0, 116.0, 79.0)
    assert after.mask_roi == (103, 68, 14, 12)
    assert iou(after.full_mask((WIDTH, HEIGHT)), np.all(moved == RED, axis=2)) > 0.8


def test_follows_a_target_moving_unequally_in_x_and_y_to_the_pixel():
    tracker, _ = seeded(60, 80)
    confidences = []
    for step in range(1, 16):
        update = tracker.update(FrameView(scene((60 + 3 * step, 80 - 2 * step))))
        assert update.tracking and update.box == box_at(60 + 3 * step, 80 - 2 * step)
        assert update.mask_roi == (60 + 3 * step, 80 - 2 * step, 14, 10)
        assert update.mask.mean() > 0.8 and 0.5 <= update.confidence <= 1.0
        confidences.append(update.confidence)
    assert min(confidences) < 0.99  # the match's own correlation, not a constant


def test_a_fast_target_is_found_where_its_velocity_puts_it():
    tracker, _ = seeded(20, 100)
    for step in range(1, 8):
        update = tracker.update(FrameView(scene((20 + 25 * step, 100 - 6 * step))))
        assert update.box == box_at(20 + 25 * step, 100 - 6 * step), step


def test_a_target_with_a_hole_is_followed_with_the_hole_filled():
    def holed(x, y):
        frame = scene()
        frame[y:y + 12, x:x + 16] = RED
        frame[y + 4:y + 8, x + 5:x + 11] = BACKGROUND[y + 4:y + 8, x + 5:x + 11]
        return frame

    tracker = build_tracker()
    tracker.seed(FrameView(holed(60, 80)), (60.0, 80.0, 75.0, 91.0), None)
    for step in (1, 2, 3):
        update = tracker.update(FrameView(holed(60 + 3 * step, 80 - 2 * step)))
        assert update.box == box_at(60 + 3 * step, 80 - 2 * step, (16, 12))
        assert update.mask[4:8, 5:11].all()  # without the hole: 24 of 192 pixels missing
        assert update.mask.mean() > 0.95


def test_a_fast_target_is_found_within_a_capped_search_radius_by_its_velocity():
    tracker, _ = seeded(10, 100, max_search_radius_px=60)  # 35 px a frame, 60 px at most
    for step in range(1, 6):
        update = tracker.update(FrameView(scene((10 + 35 * step, 100 - 3 * step))))
        assert update.tracking and update.box == box_at(10 + 35 * step, 100 - 3 * step), step


def test_the_same_scene_in_bgr_is_tracked_the_same():
    tracker = build_tracker()
    first = scene((60, 80))
    tracker.seed(FrameView(np.ascontiguousarray(first[:, :, ::-1]), "bgr"), box_at(60, 80),
                 None)
    update = tracker.update(FrameView(np.ascontiguousarray(scene((64, 77))[:, :, ::-1]), "bgr"))
    assert update.box == box_at(64, 77)


def test_a_target_on_the_frame_edge_is_followed_along_it():
    tracker = build_tracker()
    tracker.seed(FrameView(scene((0, 50))), box_at(0, 50), None)
    for step in (1, 2):
        assert tracker.update(FrameView(scene((0, 50 + step)))).box == box_at(0, 50 + step)
    tracker = build_tracker()
    tracker.seed(FrameView(scene((WIDTH - 14, HEIGHT - 10))), box_at(WIDTH - 14, HEIGHT - 10),
                 None)
    update = tracker.update(FrameView(scene((WIDTH - 15, HEIGHT - 10))))
    assert update.box == box_at(WIDTH - 15, HEIGHT - 10)


def test_a_growing_target_is_followed_with_its_new_size():
    tracker, _ = seeded(60, 80)
    for step in range(1, 6):
        size = (14 + 2 * step, 10 + step)
        update = tracker.update(FrameView(scene((60, 80), size=size)))
        assert update.box == box_at(60, 80, size), step


def tall_target_at(y: int) -> np.ndarray:
    """
    Return an ``H x W x 3`` RGB frame with the ``TALL`` target's top row at ``y``.

    Its rows past the frame's top or bottom side are cut off: a target crossing that side.
    """
    frame = BACKGROUND.copy()
    frame[max(0, y):min(HEIGHT, y + TALL[1]), 60:60 + TALL[0]] = RED
    return frame


def tall_target_box(y: int):
    """Return the XYXY inclusive box of the ``TALL`` target's rows in view (top row at ``y``)."""
    return (60.0, float(max(0, y)), 75.0, float(min(HEIGHT, y + TALL[1]) - 1))


def test_a_target_entering_over_the_edge_in_big_steps_is_followed_whole():
    """Frames skipped by a loaded node: the visible part grows by more than a steady frame's."""
    tracker = build_tracker()
    tracker.seed(FrameView(tall_target_at(-30)), tall_target_box(-30), None)
    for y in (-18, -6, 0, 12):  # its top rows above the frame, then all of it in view
        update = tracker.update(FrameView(tall_target_at(y)))
        assert update.tracking and update.box == tall_target_box(y), (y, update)
        assert update.mask.shape == (y + TALL[1] - max(0, y), 16) and update.mask.mean() > 0.9


def test_a_target_that_grows_past_the_area_check_keeps_the_window_that_passed_it():
    """Widening stops at the first window whose mask fails the checks: the last good one counts."""
    tracker, _ = seeded(60, 80)  # 14 x 10, area 140
    update = tracker.update(FrameView(scene((60, 80), size=(14, 60))))  # 6x taller at once
    assert update.tracking and update.box[0] == 60.0 and update.box[2] == 73.0
    assert update.box[1] == 80.0 and 85.0 < update.box[3] < 139.0, update.box


def test_a_brightening_frame_keeps_the_target():
    tracker, _ = seeded(60, 80)
    for step in range(1, 5):
        frame = (scene((60 + 2 * step, 80)) * (1 + 0.08 * step)).clip(0, 255).astype(np.uint8)
        assert tracker.update(FrameView(frame)).box == box_at(60 + 2 * step, 80)


def test_a_half_covered_target_gives_its_visible_part_then_all_of_it():
    tracker, _ = seeded(60, 80)
    covered = scene((62, 80))
    covered[80:90, 69:76] = (128, 128, 128)
    update = tracker.update(FrameView(covered))
    assert update.tracking and update.box[0] == 62.0 and update.box[2] == 68.0
    assert 80.0 <= update.box[1] <= update.box[3] <= 89.0 and update.box[3] >= 88.0
    assert update.mask_roi[:3] == (62, 80, 7)
    assert tracker.update(FrameView(scene((64, 80)))).box == box_at(64, 80)


@pytest.mark.parametrize("lost_after", [1, 3])
def test_a_hidden_target_is_searched_for_then_lost_after_exactly_lost_after_frames(lost_after):
    tracker, _ = seeded(60, 80, lost_after=lost_after)
    updates = [tracker.update(FrameView(scene())) for _ in range(lost_after + 1)]
    states = [update.state for update in updates]
    assert states == [TrackState.SEARCHING] * (lost_after - 1) + [TrackState.LOST] * 2
    for update in updates:
        assert update.box == box_at(60, 80) and update.confidence == 0.0
        assert update.mask is None and not update.tracking
    if lost_after > 1:
        assert re.fullmatch(r"target not seen \(best match -?[01]\.\d\d\); widening the "
                            r"search", updates[0].reason)
    assert re.fullmatch(rf"target not seen for {lost_after} frames \(best match -?[01]\.\d\d\)",
                        updates[lost_after - 1].reason)
    assert f"target not seen for {lost_after + 1} frames (best match" in updates[-1].reason


def test_a_lost_target_is_found_again_far_from_where_it_was():
    tracker, _ = seeded(60, 80, lost_after=2)
    for _ in range(3):
        tracker.update(FrameView(scene()))
    update = tracker.update(FrameView(scene((170, 30))))
    assert update.tracking and update.box == box_at(170, 30)
    assert tracker.update(FrameView(scene((172, 31)))).box == box_at(172, 31)


def test_a_look_alike_close_above_does_not_take_the_track():
    twin = (100, 50)  # 30 px above, inside the search radius
    tracker = build_tracker()
    tracker.seed(FrameView(scene((100, 80), twin)), box_at(100, 80), None)
    for step in range(1, 6):
        update = tracker.update(FrameView(scene((100 + 2 * step, 80), twin)))
        assert update.box == box_at(100 + 2 * step, 80), step


def test_a_look_alike_elsewhere_in_the_frame_does_not_stop_the_tracking():
    twin = (190, 20)  # outside the search radius around the target
    tracker = build_tracker()
    tracker.seed(FrameView(scene((60, 80), twin)), box_at(60, 80), None)
    for step in range(1, 6):
        update = tracker.update(FrameView(scene((60 + 3 * step, 80 - 2 * step), twin)))
        assert update.tracking and update.box == box_at(60 + 3 * step, 80 - 2 * step), step


def test_a_target_hidden_for_two_frames_is_found_where_its_motion_took_it():
    tracker, _ = seeded(20, 120, search_radius_px=10, max_search_radius_px=20)
    x, y = 20, 120
    for dx in (6, 9, 12, 12, 12):  # speeding up to 12 px a frame right, 3 up
        x, y = x + dx, y - 3
        assert tracker.update(FrameView(scene((x, y)))).box == box_at(x, y)
    states = []
    for _ in range(2):  # hidden: it moves on unseen
        x, y = x + 12, y - 3
        states.append(tracker.update(FrameView(scene())).state)
    assert states == [TrackState.SEARCHING, TrackState.LOST]
    for _ in range(2):  # 36 px from where it was last seen, 20 px of search
        x, y = x + 12, y - 3
        update = tracker.update(FrameView(scene((x, y))))
        assert update.tracking and update.box == box_at(x, y)


def test_a_target_leaving_over_the_edge_is_lost_with_nowhere_left_to_look():
    tracker, _ = seeded(190, 80, search_radius_px=4, max_search_radius_px=8)
    x, updates = 190, []
    for dx in (3, 5, 6, 6, 6, 6, 6, 6, 6, 6):  # right, out of the 240 px wide frame
        x += dx
        updates.append(tracker.update(FrameView(scene((x, 80)) if x < WIDTH else scene())))
    seen = [u for u in updates if u.tracking]
    assert seen[-1].box[2] == WIDTH - 1  # last seen against the edge ...
    assert seen[-1].box[0] == 234.0  # ... down to its last 6 columns in view
    missed = updates[len(seen):]
    assert re.fullmatch(r"target not seen \((no match|best match 0\.\d\d)\); widening the search",
                        missed[0].reason), missed[0].reason
    assert re.fullmatch(r"target not seen for 2 frames \((no match|best match 0\.\d\d)\)",
                        missed[1].reason), missed[1].reason
    assert [u.state for u in missed[:2]] == [TrackState.SEARCHING, TrackState.LOST]
    assert all(u.box == seen[-1].box for u in missed)


def test_a_target_leaving_over_the_edge_in_big_steps_is_followed_to_its_last_rows():
    """The template's context would hang over the edge: only its part inside is matched."""
    tracker = build_tracker()
    tracker.seed(FrameView(tall_target_at(100)), tall_target_box(100), None)
    for y in (112, 124, 136, 148):  # its bottom rows below the frame
        update = tracker.update(FrameView(tall_target_at(y)))
        assert update.tracking and update.box == tall_target_box(y), (y, update)


def test_a_target_leaving_over_the_top_in_big_steps_is_followed_to_its_last_rows():
    """Its predicted centre already past the side: the part of it still inside is matched."""
    tracker = build_tracker()
    tracker.seed(FrameView(tall_target_at(84)), tall_target_box(84), None)
    for y in (60, 36, 12, -12, -30):  # 24 px a frame, out to its last 10 rows
        update = tracker.update(FrameView(tall_target_at(y)))
        assert update.tracking and update.box == tall_target_box(y), (y, update)


def test_a_target_that_cannot_be_told_from_its_twin_is_not_taken():
    tracker, _ = seeded(60, 80)
    update = tracker.update(FrameView(scene((150, 30), (150, 120))))
    assert not update.tracking and update.box == box_at(60, 80)
    assert update.reason.startswith("target not seen")


@pytest.mark.parametrize("box, message", [
    (None, "cannot track from box"),
    ((float("nan"), 1.0, 5.0, 5.0), "cannot track from box"),
    ((20.0, 10.0, 19.0, 15.0), "cannot track from box"),
    ((20.0, 10.0, 25.0, 9.0), "cannot track from box"),
    ((300.0, 10.0, 320.0, 20.0), "is off the 240x160 frame"),
    ((10.0, 170.0, 20.0, 180.0), "is off the 240x160 frame"),
])
def test_seeds_that_cannot_be_tracked_are_refused(box, message):
    with pytest.raises(TrackerError, match=message):
        build_tracker().seed(FrameView(scene((60, 80))), box, None)


def test_a_one_pixel_wide_or_tall_box_is_a_seed():
    frame = FrameView(scene((60, 80)))
    for box in ((66.0, 80.0, 66.0, 89.0), (60.0, 84.0, 73.0, 84.0)):
        update = build_tracker().seed(frame, box, None)
        assert update.tracking and update.box == box


def test_a_box_just_past_the_edge_is_off_the_frame_one_pixel_less_is_not():
    frame = FrameView(scene())
    with pytest.raises(TrackerError, match="is off the 240x160 frame"):
        build_tracker().seed(frame, (WIDTH + 7.0, 10.0, WIDTH + 8.0, 12.0), None)
    with pytest.raises(TrackerError, match="the seed mask has no pixel near box"):
        build_tracker().seed(frame, (WIDTH + 6.0, 10.0, WIDTH + 8.0, 12.0), None)
    with pytest.raises(TrackerError, match="is off the 240x160 frame"):
        build_tracker().seed(frame, (10.0, HEIGHT + 7.0, 12.0, HEIGHT + 8.0), None)
    with pytest.raises(TrackerError, match="the seed mask has no pixel near box"):
        build_tracker().seed(frame, (10.0, HEIGHT + 6.0, 12.0, HEIGHT + 8.0), None)


def test_a_seed_mask_of_another_size_or_empty_near_the_box_is_refused():
    frame = FrameView(scene((60, 80)))
    with pytest.raises(TrackerError, match=r"mask \(160, 240\) does not match the frame "
                                           r"240x160"):
        build_tracker().seed(frame, box_at(60, 80), np.ones((WIDTH, HEIGHT), bool))
    far = np.zeros((HEIGHT, WIDTH), bool)
    far[5:8, 200:210] = True
    with pytest.raises(TrackerError, match="the seed mask has no pixel near box"):
        build_tracker().seed(frame, box_at(60, 80), far)


def test_updates_before_seeding_or_of_another_frame_size_are_refused():
    with pytest.raises(TrackerError, match="before seed"):
        build_tracker().update(FrameView(scene()))
    tracker, _ = seeded()
    with pytest.raises(TrackerError, match="frame size changed from 240x160 to 200x160"):
        tracker.update(FrameView(scene()[:, :200]))
    tracker.close()
    with pytest.raises(TrackerError, match="before seed"):
        tracker.update(FrameView(scene()))


def test_full_mask_places_the_mask_at_its_roi_in_a_wide_frame():
    update = TrackUpdate(TrackState.TRACKING, (4.0, 1.0, 6.0, 2.0), 0.9,
                         np.array([[True, False, True], [True, True, False]]), (4, 1, 3, 2))
    full = update.full_mask((8, 4))
    assert full.shape == (4, 8) and full.sum() == 4
    assert full[1, 4] and full[1, 6] and full[2, 5] and not full[2, 6]
    assert not TrackUpdate(TrackState.LOST, None, 0.0).full_mask((8, 4)).any()


# -- the frame's sides: which the mask reaches, which the window shares, the template kept ---
def test_the_sides_a_mask_reaches_are_told_apart_one_bit_each():
    from finers_ros.tracking.template import _sides

    mask = np.zeros((5, 7), bool)
    assert _sides(mask) == 0
    for (y, x), bit in (((2, 0), 1), ((0, 3), 2), ((2, 6), 4), ((4, 3), 8)):
        one = mask.copy()
        one[y, x] = True
        assert _sides(one) == bit, (y, x)
    inner = mask.copy()
    inner[1:4, 1:6] = True  # one pixel in from every side
    assert _sides(inner) == 0
    inner[:, :] = True
    assert _sides(inner) == 15


@pytest.mark.parametrize("lo, hi, bits", [
    ((0, 0), (240, 160), 15),  # the whole frame
    ((1, 1), (239, 159), 0),  # one pixel in from every side
    ((-5, 20), (30, 60), 1), ((20, -5), (60, 30), 2),
    ((200, 20), (240, 60), 4), ((200, 20), (241, 60), 4),
    ((20, 120), (60, 160), 8), ((20, 120), (60, 159), 0),
    ((0, 50), (239, 60), 1), ((50, 0), (60, 159), 2),
])
def test_the_sides_a_window_shares_with_the_frame(lo, hi, bits):
    from finers_ros.tracking.template import _frame_sides

    assert _frame_sides(np.array(lo), np.array(hi), (WIDTH, HEIGHT)) == bits


def test_near_a_side_only_the_templates_part_inside_the_frame_is_matched():
    tracker, _ = seeded(60, 80)  # the 14 x 10 target and 3.5 px around it: 21 x 16
    template, offset = tracker._template, tracker._offset
    th, tw = template.shape[:2]
    assert (tw, th) == (21, 16) and tuple(offset) == (10.5, 7.5)
    part, at = tracker._inside_part((WIDTH, HEIGHT), np.array([120.0, 80.0]))
    assert np.array_equal(part, template) and tuple(at) == (10.5, 7.5)  # inside: all of it
    for centre, cut in (((7.5, 80.0), (3, 0, 0, 0)), ((120.0, 5.5), (0, 2, 0, 0)),
                        ((WIDTH - 10.0, 80.0), (0, 0, 1, 0)),
                        ((120.0, HEIGHT - 8.0), (0, 0, 0, 1)),
                        ((-2.0, 80.0), (13, 0, 0, 0)),  # its centre out, 5 columns in
                        ((WIDTH + 2.0, 80.0), (0, 0, 13, 0))):
        part, at = tracker._inside_part((WIDTH, HEIGHT), np.array(centre))
        left, top, right, bottom = cut
        assert part.shape[:2] == (th - top - bottom, tw - left - right), centre
        assert np.array_equal(part, template[top:th - bottom, left:tw - right]), centre
        assert tuple(at) == (10.5 - left, 7.5 - top), centre
    # fewer than 8 rows left to correlate: all of it (it cannot be placed there anyway)
    for centre in ((120.0, -1.0), (120.0, HEIGHT + 1.0), (-3.0, 80.0)):
        part, at = tracker._inside_part((WIDTH, HEIGHT), np.array(centre))
        assert np.array_equal(part, template) and tuple(at) == (10.5, 7.5), centre


def test_a_template_part_without_enough_of_the_target_is_not_matched_alone():
    """Context alone would match anywhere: under 2 px of the target's box, all of it."""
    size = (60, 40)
    tracker = build_tracker()
    frame = scene((100, 60), size=size)  # the template keeps 15 x 10 px around it
    tracker.seed(FrameView(frame), box_at(100, 60, size), None)
    template = tracker._template  # 90 x 60: the target's rows are its rows 9.5 to 49.5
    assert template.shape[:2] == (60, 90) and tuple(tracker._offset) == (44.5, 29.5)
    # centre 17 rows above the frame: 13 template rows inside, 2.5 of them the target's
    part, _ = tracker._inside_part((WIDTH, HEIGHT), np.array([130.0, -17.0]))
    assert np.array_equal(part, template[47:]), part.shape
    # 18 rows above: 12 template rows (enough to correlate), 1.5 of them the target's
    part, at = tracker._inside_part((WIDTH, HEIGHT), np.array([130.0, -18.0]))
    assert np.array_equal(part, template) and tuple(at) == (44.5, 29.5)
