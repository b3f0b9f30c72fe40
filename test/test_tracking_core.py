"""
Tracking core on small hand-made scenes: exact boxes, states at their limits, the service.

A 240 x 160 textured background with flat red targets placed by hand, so every expected
box is known to the pixel (XYXY inclusive) and a test runs in well under a second. Targets
are wider than tall and move by different amounts in x and y, so a swapped axis shows.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from finers_ros.tracking import FrameView, TrackerConfig, TrackerError, TrackState
from finers_ros.tracking import build_tracker
from finers_ros.tracking.base import TrackUpdate
from finers_ros.tracking.ring import FrameRing, TrackFrame
from finers_ros.tracking.service import TrackingService

WIDTH, HEIGHT = 240, 160
RED = (230, 40, 40)
TARGET = (14, 10)  # (w, h) of the hand-placed targets


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
    with pytest.raises(ValueError, match="must be positive"):
        FrameRing(frames, nbytes)


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
    for step in range(1, 16):
        update = tracker.update(FrameView(scene((60 + 3 * step, 80 - 2 * step))))
        assert update.tracking and update.box == box_at(60 + 3 * step, 80 - 2 * step)
        assert update.mask_roi == (60 + 3 * step, 80 - 2 * step, 14, 10)
        assert update.mask.mean() > 0.8 and 0.5 <= update.confidence <= 1.0


def test_a_fast_target_is_found_where_its_velocity_puts_it():
    tracker, _ = seeded(20, 100)
    for step in range(1, 8):
        update = tracker.update(FrameView(scene((20 + 25 * step, 100 - 6 * step))))
        assert update.box == box_at(20 + 25 * step, 100 - 6 * step), step


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


# -- the service ---------------------------------------------------------------------------
class Reports:
    """Collects the service's reports; waits for a condition on them."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, report):
        with self.cond:
            self.items.append(report)
            self.cond.notify_all()

    def wait(self, predicate, timeout=5.0):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.items), timeout)

    def of(self, track_id):
        with self.cond:
            return [report for report in self.items if report.track_id == track_id]


def until(condition, timeout=5.0) -> bool:
    """Wait for ``condition()`` to hold (the worker runs in its own thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def header(ns: int):
    return SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10 ** 9, nanosec=ns % 10 ** 9))


def sent(image, seq, stamp_ns=None):
    """Return a received frame as the node hands it over (0.1 s per frame, from 1.5 s)."""
    stamp_ns = 1_500_000_000 + seq * 10 ** 8 if stamp_ns is None else stamp_ns
    return TrackFrame(lambda: FrameView(image), header(stamp_ns), seq, image.nbytes, stamp_ns)


def path(step):
    """Return where the target of the service tests is on frame ``step``."""
    return 40 + 4 * step, 90 - 3 * step


def start(service, request_id="r1", seq=0, at=path(0)):
    return service.start(request_id, "the red tag", scene(at), seq, header(seq), box_at(*at),
                         np.all(scene(at) == RED, axis=2))


@pytest.fixture
def running():
    services = []

    def build(**options):
        reports = Reports()
        service = TrackingService(reports, **options)
        service.start_worker()
        services.append(service)
        return service, reports

    yield build
    for service in services:
        service.stop_worker()


def test_a_new_track_catches_up_through_the_frames_kept_while_it_waited(running):
    service, reports = running(ring_frames=4, ring_bytes=10 * 2 ** 20)
    service.put_frame(sent(scene(path(0)), 0))  # nobody waits yet: not kept
    assert len(service.ring) == 0
    service.expect()
    for seq in range(1, 7):
        service.put_frame(sent(scene(path(seq)), seq))
    assert [frame.seq for frame in service.ring.after(0)] == [3, 4, 5, 6]
    assert service.counters.ring_bytes_peak == 4 * scene().nbytes
    track_id = start(service, seq=2)
    service.settle()
    assert reports.wait(lambda items: items)
    first = reports.items[0]
    assert first.track_id == track_id and first.request_id == "r1"
    assert first.instruction == "the red tag" and first.update.box == box_at(*path(6))
    assert first.frame.seq == 6 and first.catch_up_frames == 4 and first.frames_tracked == 5
    assert first.frame_size == (WIDTH, HEIGHT) and first.update_ms > 0
    assert len(service.ring) == 0
    service.put_frame(sent(scene(path(7)), 7))
    assert reports.wait(lambda items: len(items) == 2)
    second = reports.items[1]
    assert second.update.box == box_at(*path(7)) and second.frames_tracked == 6
    assert second.catch_up_frames == 0 and second.frame.header.stamp.sec == 2
    assert service.counters.tracks_started == 1


def test_a_track_started_on_the_newest_frame_reports_that_frame(running):
    service, reports = running()
    service.expect()
    track_id = start(service, seq=5)
    service.settle()
    assert reports.wait(lambda items: items)
    (first,) = reports.items
    assert first.track_id == track_id and first.frame.seq == 5
    assert first.catch_up_frames == 0 and first.frames_tracked == 1
    assert first.update.box == box_at(*path(0))


def test_stop_all_ends_every_track_with_the_reason_and_counts_them(running):
    service, reports = running(max_tracks=3)
    ids = [start(service, name) for name in ("a", "b")]
    assert reports.wait(lambda items: len(items) == 2)
    assert service.active == 2 and sorted(service.track_ids()) == sorted(ids)
    assert service.stop(None, reason="operator said so") == 2
    assert reports.wait(lambda items: len(items) == 4)
    for track_id in ids:
        last = reports.of(track_id)[-1]
        assert last.update.state is TrackState.ENDED and last.update.reason == "operator said so"
        assert last.update.box == box_at(*path(0)) and last.frame.seq == 0
    assert service.track_ids() == [] and service.counters.tracks_ended == 2
    assert service.stop() == 0


def test_a_track_exactly_at_max_tracks_starts_one_more_does_not(running):
    service, reports = running(max_tracks=3)
    assert all(start(service, name) for name in ("a", "b", "c"))
    assert start(service, "d") is None
    refused = reports.items[-1]
    assert refused.track_id == "" and refused.request_id == "d"
    assert refused.update.reason == "too many tracks (3 running); stop one first"
    assert refused.frame_size == (WIDTH, HEIGHT) and refused.instruction == "the red tag"
    assert refused.update.state is TrackState.ENDED and refused.update.box is None
    assert refused.update.confidence == 0.0 and refused.frame.seq == 0


def test_a_track_refused_without_a_frame_reports_no_size(running):
    service, reports = running()
    service.start("r9", "the red tag", None, 3, None, None, None)
    report = reports.items[-1]
    assert report.frame is None and report.frame_size == (0, 0)
    assert report.update.reason == "nothing to track: the answer was not found"
    empty = np.zeros((HEIGHT, WIDTH), bool)
    service.start("r10", "the red tag", scene(), 3, header(3), box_at(1, 1), empty)
    assert reports.items[-1].update.reason == "nothing to track: the answer was not found"
    assert reports.items[-1].frame.stamp_ns == 3 and reports.items[-1].frame.seq == 3


def test_a_frame_that_cannot_be_decoded_is_skipped_and_the_track_goes_on(running, caplog):
    service, reports = running()
    start(service)
    assert reports.wait(lambda items: items)

    def undecodable():
        raise ValueError("16UC1 is not a colour encoding")

    with caplog.at_level(logging.WARNING, logger="finers_ros.tracking.service"):
        for seq in (1, 2):
            service.put_frame(TrackFrame(undecodable, header(seq), seq, 10, seq))
            assert reports.wait(lambda items: items[-1].frame.seq == seq)
            assert reports.items[-1].update.box == box_at(*path(0))  # the last known box
        service.put_frame(sent(scene(path(3)), 3))
        assert reports.wait(lambda items: items[-1].frame.seq == 3)
    assert reports.items[-1].update.box == box_at(*path(3))
    assert service.counters.errors == 2
    assert "frame 1 not tracked: 16UC1 is not a colour encoding" in caplog.text


def test_a_frame_of_another_size_ends_the_track_with_the_tracker_reason(running):
    service, reports = running()
    track_id = start(service)
    assert reports.wait(lambda items: items)
    service.put_frame(sent(scene(path(1))[:, :200], 1))
    assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
    assert reports.items[-1].track_id == track_id
    assert reports.items[-1].update.reason == \
        "frame size changed from 240x160 to 200x160: track ended"
    assert service.active == 0


def test_a_frame_stamped_at_the_same_time_goes_on_an_earlier_one_ends_the_track(running):
    service, reports = running()
    track_id = start(service)
    assert reports.wait(lambda items: items)
    service.put_frame(sent(scene(path(1)), 1, stamp_ns=7 * 10 ** 9))
    assert reports.wait(lambda items: len(items) == 2)
    service.put_frame(sent(scene(path(2)), 2, stamp_ns=7 * 10 ** 9))
    assert reports.wait(lambda items: len(items) == 3)
    assert reports.items[2].update.tracking and reports.items[2].frame.seq == 2
    assert reports.items[2].update.box == box_at(*path(2))
    service.put_frame(sent(scene(path(3)), 3, stamp_ns=7 * 10 ** 9 - 1))
    assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
    assert reports.items[-1].track_id == track_id
    assert reports.items[-1].update.reason == "camera time went backwards (a replayed or " \
        "restarted stream): track ended"


def test_a_resumed_track_runs_on_from_the_time_of_its_new_answer(running):
    service, reports = running(reacquire="cascade", config=TrackerConfig(lost_after=1))
    track_id = start(service)
    service.put_frame(sent(scene(), 1))
    assert reports.wait(lambda items: items and items[-1].update.state is TrackState.LOST)
    at = (150, 40)
    assert service.resume(track_id, scene(at), 2, header(9 * 10 ** 9), box_at(*at),
                          np.all(scene(at) == RED, axis=2))
    service.put_frame(sent(scene((152, 42)), 3, stamp_ns=8 * 10 ** 9))
    assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
    assert reports.items[-1].update.reason.startswith("camera time went backwards")


def test_frames_one_at_a_time_are_each_tracked_once_counted_and_timed(running):
    service, reports = running()
    track_id = start(service)
    assert reports.wait(lambda items: items)
    for seq in range(1, 6):
        time.sleep(0.05)
        service.put_frame(sent(scene(path(seq)), seq))
        assert reports.wait(lambda items: len(items) == seq + 1)
        report = reports.items[-1]
        assert report.frame.seq == seq and report.frames_tracked == seq + 1
        assert report.update.box == box_at(*path(seq)) and report.catch_up_frames == 0
        if seq == 2:
            assert service.counters.fps > 0  # a rate from the first two frames on
    assert service.counters.frames_processed == 5 and service.counters.frames_dropped == 0
    assert 1.0 < service.counters.fps <= 20.5  # five frames at least 0.05 s apart
    assert service.counters.last_update_ms == reports.items[-1].update_ms > 0
    assert service.stop(track_id) == 1
    assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
    ended = reports.items[-1]
    assert ended.update.reason == "stopped by client" and ended.update.confidence == 0.0
    assert ended.update.box == box_at(*path(5)) and ended.frame.seq == 5
    assert ended.track_id == track_id
    assert (ended.request_id, ended.instruction) == ("r1", "the red tag")
    assert ended.frame_size == (WIDTH, HEIGHT) and ended.frames_tracked == 6
    assert service.counters.fps == 0.0  # nothing is tracked any more


def test_ending_one_of_two_tracks_keeps_the_other_and_its_rate(running):
    service, reports = running()
    first, second = start(service, "a"), start(service, "b")
    for seq in (1, 2, 3):
        time.sleep(0.02)
        service.put_frame(sent(scene(path(seq)), seq))
        assert reports.wait(lambda items: {(r.track_id, r.frame.seq) for r in items}
                            >= {(first, seq), (second, seq)})
    assert service.stop("track-404") == 0 and service.stop(first) == 1
    assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
    assert reports.items[-1].track_id == first and service.track_ids() == [second]
    assert service.counters.fps > 0
    service.put_frame(sent(scene(path(4)), 4))
    assert reports.wait(lambda items: items[-1].frame.seq == 4)
    assert reports.items[-1].track_id == second and reports.items[-1].update.tracking


def test_a_silent_camera_flags_the_track_lost_once_then_tracking_goes_on(running):
    service, reports = running(stall_s=0.3, config=TrackerConfig(lost_after=1))
    track_id = start(service)
    service.put_frame(sent(scene(), 1))  # a loss before the camera stops
    assert reports.wait(lambda items: len(items) == 2)
    assert reports.items[-1].update.state is TrackState.LOST
    service.put_frame(sent(scene(path(2)), 2))
    assert reports.wait(lambda items: len(items) == 3)
    assert reports.wait(lambda items: items[-1].update.state is TrackState.LOST, 5)
    stalled = reports.items[-1]
    assert stalled.track_id == track_id
    assert (stalled.request_id, stalled.instruction) == ("r1", "the red tag")
    assert re.fullmatch(r"camera stopped: no frame for \d+\.\d s", stalled.update.reason)
    assert stalled.update.box == box_at(*path(2)) and stalled.update.confidence == 0.0
    assert stalled.frame.seq == 2 and stalled.frame_size == (WIDTH, HEIGHT)
    assert stalled.frames_tracked == 2
    assert service.counters.losses == 2 and service.counters.fps == 0.0
    time.sleep(0.6)
    assert len(reports.items) == 4  # said once, not at every check
    service.put_frame(sent(scene(), 3))  # still lost: not a new loss
    assert reports.wait(lambda items: items[-1].frame.seq == 3)
    assert reports.items[-1].update.state is TrackState.LOST
    assert service.counters.losses == 2
    service.put_frame(sent(scene(path(4)), 4))
    assert reports.wait(lambda items: items[-1].frame.seq == 4)
    assert reports.items[-1].update.tracking and service.counters.reacquired == 2


def test_the_ring_is_kept_until_every_waiting_request_has_its_answer(running):
    service, _ = running()
    service.expect()
    service.expect()
    service.put_frame(sent(scene(), 1))
    service.settle()
    service.put_frame(sent(scene(), 2))
    assert [frame.seq for frame in service.ring.after(0)] == [1, 2]
    service.settle()
    assert len(service.ring) == 0
    service.settle()  # an answer nobody waited for
    service.put_frame(sent(scene(), 3))
    assert len(service.ring) == 0
    service.expect()
    service.put_frame(sent(scene(), 4))
    assert [frame.seq for frame in service.ring.after(0)] == [4]


def test_stopping_refuses_the_tracks_still_waiting_to_start():
    gate = threading.Event()

    def slow_tracker(config):
        gate.wait(5)  # the worker is busy building the first track's tracker
        return build_tracker(config)

    reports = Reports()
    service = TrackingService(reports, tracker_factory=slow_tracker)
    service.start_worker()
    first = start(service, "a")
    assert until(lambda: service.active == 0)  # taken by the worker, not yet running
    second = start(service, "b")
    assert service.active == 1
    threading.Timer(0.3, gate.set).start()
    service.stop_worker("node deactivated")
    refused = reports.of(second)
    assert len(refused) == 1 and refused[0].request_id == "b"
    assert refused[0].instruction == "the red tag" and refused[0].frame is None
    assert refused[0].update.state is TrackState.ENDED and refused[0].update.box is None
    assert refused[0].update.reason == "node deactivated" and refused[0].frame_size == (0, 0)
    assert reports.wait(lambda items: any(r.track_id == first and r.update.state
                                          is TrackState.ENDED for r in items), 5)
    assert reports.of(first)[-1].update.reason == "node deactivated"
    assert service.active == 0


def test_a_stopped_service_ends_its_tracks_and_takes_late_answers_quietly():
    reports = Reports()
    service = TrackingService(reports)
    service.start_worker()
    track_id = start(service)
    assert reports.wait(lambda items: items)
    service.expect()
    service.stop_worker()
    last = reports.of(track_id)[-1]
    assert last.update.state is TrackState.ENDED and last.update.reason == "tracking stopped"
    service.settle()  # the answer of a request made before the stop
    assert not service.resume(track_id, scene(), 1, header(1), box_at(1, 1),
                              np.ones((HEIGHT, WIDTH), bool))
    assert service.counters.errors == 0 and service.active == 0
    service.start_worker()
    assert start(service, "again") is not None  # a node activated again tracks again
    service.stop_worker()


def test_search_mode_keeps_a_lost_track_and_counts_the_loss_and_the_return(running):
    service, reports = running(reacquire="search", config=TrackerConfig(lost_after=1))
    track_id = start(service)
    assert reports.wait(lambda items: items)
    for seq in (1, 2):
        service.put_frame(sent(scene(), seq))
        assert reports.wait(lambda items: items[-1].frame.seq == seq)
    assert [r.update.state for r in reports.items[1:]] == [TrackState.LOST] * 2
    assert service.counters.losses == 1
    service.put_frame(sent(scene((150, 40)), 3))
    assert reports.wait(lambda items: items[-1].frame.seq == 3)
    back = reports.items[-1]
    assert back.track_id == track_id and back.update.box == box_at(150, 40)
    assert back.frames_tracked == 2 and service.counters.reacquired == 1


def test_cascade_mode_asks_once_per_loss_and_a_resume_keeps_the_id(running):
    asked = []
    service, reports = running(reacquire="cascade", config=TrackerConfig(lost_after=1),
                               on_reacquire=lambda *args: asked.append(args))
    track_id = start(service)
    assert reports.wait(lambda items: items)
    for seq in (1, 2):
        service.put_frame(sent(scene(), seq))
        assert reports.wait(lambda items: items[-1].frame.seq == seq)
    assert asked == [(track_id, "r1", "the red tag")]
    at = (150, 40)
    mask = np.all(scene(at) == RED, axis=2)
    assert not service.resume("track-0", scene(at), 3, header(3), box_at(*at), mask)
    assert not service.resume(track_id, scene(at), 3, header(3), None, mask)
    assert not service.resume(track_id, scene(at), 3, header(3), box_at(*at), None)
    service.put_frame(sent(scene(), 3))
    assert reports.wait(lambda items: items[-1].frame.seq == 3)
    assert len(asked) == 2  # no new answer: asked again at the next lost frame
    assert service.resume(track_id, scene(at), 3, header(3), (-50.0, -50.0, 300.0, 300.0),
                          mask)  # a loose box: the answer's mask says where the target is
    assert reports.wait(lambda items: items[-1].frame.seq == 3 and items[-1].update.tracking)
    assert reports.items[-1].update.box == box_at(*at) and reports.items[-1].track_id == track_id
    service.put_frame(sent(scene((152, 42)), 4))
    assert reports.wait(lambda items: items[-1].frame.seq == 4 and items[-1].update.tracking)
    back = reports.items[-1]
    assert (back.track_id, back.request_id, back.instruction) == (track_id, "r1",
                                                                  "the red tag")
    assert back.update.box == box_at(152, 42) and back.frames_tracked == 3
    assert service.counters.tracks_started == 1 and service.counters.reacquired == 1
    service.put_frame(sent(scene(), 5))
    assert reports.wait(lambda items: items[-1].frame.seq == 5)
    assert len(asked) == 3 and service.counters.losses == 2  # a new loss asks again


def test_a_resume_that_cannot_be_tracked_keeps_the_lost_track_and_asks_again(running):
    asked = []
    service, reports = running(reacquire="cascade", config=TrackerConfig(lost_after=1),
                               on_reacquire=lambda *args: asked.append(args))
    track_id = start(service)
    service.put_frame(sent(scene(), 1))
    assert reports.wait(lambda items: items and items[-1].update.state is TrackState.LOST)
    off = (400.0, 10.0, 420.0, 20.0)
    assert service.resume(track_id, scene(), 2, header(2), off, np.ones((HEIGHT, WIDTH), bool))
    service.put_frame(sent(scene(), 3))
    assert reports.wait(lambda items: items[-1].frame.seq == 3)
    assert [r.update.state for r in reports.of(track_id)] == [TrackState.TRACKING,
                                                              TrackState.LOST, TrackState.LOST]
    assert len(asked) == 2 and service.track_ids() == [track_id]
    assert service.counters.tracks_started == 1 and service.counters.tracks_ended == 0


def test_off_mode_ends_the_track_on_its_first_lost_frame(running):
    service, reports = running(reacquire="off", config=TrackerConfig(lost_after=1))
    track_id = start(service)
    assert reports.wait(lambda items: items)
    service.put_frame(sent(scene(), 1))
    assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
    lost, ended = reports.of(track_id)[-2:]
    assert lost.update.state is TrackState.LOST
    assert ended.update.reason == "target lost (track_reacquire: off)"


def test_a_failing_report_callback_does_not_stop_tracking(caplog):
    delivered = []

    def flaky(report):
        delivered.append(report)
        if len(delivered) == 1:
            raise RuntimeError("subscriber gone")

    service = TrackingService(flaky)
    service.start_worker()
    try:
        with caplog.at_level(logging.ERROR, logger="finers_ros.tracking.service"):
            start(service)
            assert until(lambda: delivered)
            service.put_frame(sent(scene(path(1)), 1))
            assert until(lambda: len(delivered) >= 2)
        assert delivered[1].update.box == box_at(*path(1))
        assert "track report callback failed" in caplog.text
    finally:
        service.stop_worker()


def test_stopping_the_service_refuses_waiting_seeds_and_drops_the_ring():
    reports = Reports()
    service = TrackingService(reports)
    service.start_worker()
    service.expect()
    service.put_frame(sent(scene(path(1)), 1))
    assert len(service.ring) == 1
    service.stop_worker("node deactivated")
    assert len(service.ring) == 0
    assert start(service) is None
    assert reports.items[-1].update.reason == "tracking is not running (node inactive)"


@pytest.mark.parametrize("options, message", [
    ({"reacquire": "again"}, "reacquire='again'"),
    ({"max_tracks": 0}, "max_tracks >= 1"),
    ({"max_age_s": -0.1}, "max_age_s >= 0"),
    ({"stall_s": 0.0}, "stall_s > 0"),
])
def test_service_options_that_cannot_work_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        TrackingService(lambda report: None, **options)


def test_the_smallest_working_service_options_are_accepted():
    service = TrackingService(lambda report: None, max_tracks=1, max_age_s=0.0, stall_s=0.01)
    assert service.max_tracks == 1 and service.reacquire == "search"
