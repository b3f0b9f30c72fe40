"""
Tracking core (ROS-free): tracker, ring and service.

The template tracker on moving 4K scenes, the frame ring, and the tracking service's
catch-up, several tracks, ends, loss and re-acquisition.
"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from finers_ros.data.moving import moving_sequence
from finers_ros.tracking import FrameView, TrackerConfig, TrackerError, TrackState
from finers_ros.tracking import build_tracker
from finers_ros.tracking.ring import FrameRing, TrackFrame
from finers_ros.tracking.scoring import evaluate
from finers_ros.tracking.service import TrackingService

MB = 2 ** 20


@pytest.fixture(autouse=True)
def one_cv_thread():
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


@pytest.mark.parametrize("scenario, frames, min_j", [
    ("pan", 30, 0.95), ("fast", 30, 0.95), ("twin", 40, 0.95), ("jump", 30, 0.95),
    ("occlusion", 40, 0.90), ("gain", 30, 0.95),
])
def test_template_tracker_follows_the_target_and_never_the_wrong_one(scenario, frames, min_j):
    summary = evaluate(build_tracker(), moving_sequence(scenario, seed=0, frames=frames)).summary()
    assert summary["J"] >= min_j, summary
    assert summary["wrong_target_frames"] == 0, summary
    assert summary["loss_missed"] == 0 and summary["reacquire_missed"] == 0, summary
    if summary["loss_frames"]:
        assert summary["loss_frames_worst"] <= 2 and summary["reacquire_frames_worst"] <= 5


def test_tracker_refuses_what_it_cannot_track():
    sequence = moving_sequence("pan", seed=0, frames=2)
    tracker = build_tracker()
    with pytest.raises(TrackerError):
        tracker.update(FrameView(sequence.seed_frame))  # before seed
    empty = np.zeros_like(sequence.seed_mask)
    with pytest.raises(TrackerError, match="no pixel"):
        tracker.seed(FrameView(sequence.seed_frame), sequence.seed_box, empty)
    with pytest.raises(TrackerError, match="off the"):
        tracker.seed(FrameView(sequence.seed_frame), (5000, 5000, 5100, 5100), None)
    tracker.seed(FrameView(sequence.seed_frame), sequence.seed_box, sequence.seed_mask)
    with pytest.raises(TrackerError, match="frame size changed"):
        tracker.update(FrameView(sequence.seed_frame[:1080, :1920]))


def test_a_lost_target_is_declared_lost_not_followed_elsewhere():
    sequence = moving_sequence("pan", seed=0, frames=1)
    tracker = build_tracker(TrackerConfig(lost_after=2))
    tracker.seed(FrameView(sequence.seed_frame), sequence.seed_box, sequence.seed_mask)
    blank = FrameView(np.full_like(sequence.seed_frame, 120))
    states = [tracker.update(blank).state for _ in range(3)]
    assert states == [TrackState.SEARCHING, TrackState.LOST, TrackState.LOST]


def test_frame_view_reads_windows_in_rgb_from_bgr_without_copying_the_frame():
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[10:20, 30:40] = (255, 0, 0)  # blue in BGR
    view = FrameView(bgr, "bgr")
    window = view.window(25, 5, 45, 25)
    assert window.shape == (20, 20, 3) and tuple(window[10, 10]) == (0, 0, 255)
    assert not np.shares_memory(window, bgr)
    assert view.window(-10, -10, 5, 5).shape == (5, 5, 3)  # clipped to the frame
    from finers_ros.ros.image_codec import image_view

    data = bytes(np.random.default_rng(0).integers(0, 255, 64 * 48 * 3, dtype=np.uint8))
    zero_copy = image_view("rgb8", 64, 48, 64 * 3, data)
    assert np.shares_memory(zero_copy.pixels, np.frombuffer(data, np.uint8))
    assert image_view("mono8", 64, 48, 64, data[:64 * 48]).pixels.shape == (48, 64, 3)


def test_ring_keeps_the_newest_frames_within_count_and_bytes():
    ring = FrameRing(max_frames=5, max_bytes=3 * MB)
    for seq in range(1, 11):
        ring.put(TrackFrame(lambda: None, None, seq, MB))
    assert [f.seq for f in ring.after(0)] == [8, 9, 10] and ring.nbytes == 3 * MB
    assert [f.seq for f in ring.after(8)] == [9, 10]
    ring.put(TrackFrame(lambda: None, None, 11, 4 * MB))  # larger than the bound on its own
    assert len(ring) == 0 and ring.peak_bytes <= 3 * MB
    ring = FrameRing(max_frames=2, max_bytes=100 * MB)
    for seq in range(1, 5):
        ring.put(TrackFrame(lambda: None, None, seq, MB))
    assert [f.seq for f in ring.after(0)] == [3, 4]


# -- the service ------------------------------------------------------------------------
class Reports:
    """Collects the service's reports; waits for a condition on them."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, report):
        with self.cond:
            self.items.append(report)
            self.cond.notify_all()

    def wait(self, predicate, timeout=20.0):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.items), timeout)


def header(ns: int):
    return SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10 ** 9, nanosec=ns % 10 ** 9))


def track_frame(image, seq, stamp_ns=None):
    stamp_ns = seq * 10 ** 8 if stamp_ns is None else stamp_ns
    return TrackFrame(lambda: FrameView(image), header(stamp_ns), seq, image.nbytes, stamp_ns)


@pytest.fixture(scope="module")
def pan():
    sequence = moving_sequence("pan", seed=0, frames=16)
    return sequence, [frame for frame, _ in sequence], [truth for _, truth in sequence]


def started(service, sequence, request_id="r1", seq=0):
    return service.start(request_id, "find it", sequence.seed_frame, seq, header(seq),
                         sequence.seed_box, sequence.seed_mask)


def test_new_track_catches_up_from_the_answered_frame_to_the_newest(pan):
    sequence, frames, truths = pan
    reports = Reports()
    service = TrackingService(reports, ring_frames=6, ring_bytes=200 * MB)
    service.start_worker()
    try:
        service.expect()  # a tracking request is waiting for its answer
        for seq, image in enumerate(frames[:10], start=1):
            service.put_frame(track_frame(image, seq))
        assert [f.seq for f in service.ring.after(0)] == [5, 6, 7, 8, 9, 10]
        track_id = started(service, sequence)
        service.settle()  # its answer came (the ring stays until the track caught up)
        assert reports.wait(lambda items: items)
        first = reports.items[0]
        assert first.track_id == track_id and first.update.tracking
        assert first.frame.seq == 10 and first.catch_up_frames == 6  # current at once
        mask = first.update.full_mask(first.frame_size)
        x0, y0, w, h = truths[9].roi
        truth = np.zeros_like(mask)
        truth[y0:y0 + h, x0:x0 + w] = truths[9].mask
        assert (mask & truth).sum() / (mask | truth).sum() > 0.9
        assert len(service.ring) == 0  # no request waits any more: the frames are let go
        for seq, image in enumerate(frames[10:], start=11):
            service.put_frame(track_frame(image, seq))
            assert reports.wait(lambda items: items[-1].frame.seq == seq)
        assert all(r.update.tracking for r in reports.items)
        # the answered frame and the 6 replayed ones, then one more per frame
        assert [r.frames_tracked for r in reports.items] == list(range(7, 7 + len(reports.items)))
        assert service.counters.tracks_started == 1
    finally:
        service.stop_worker()
    assert reports.items[-1].update.state is TrackState.ENDED


def test_tracks_are_refused_with_a_reason_and_every_end_is_reported(pan):
    sequence, frames, _ = pan
    reports = Reports()
    service = TrackingService(reports, max_tracks=2)
    service.start(None or "early", "find it", sequence.seed_frame, 0, None,
                  sequence.seed_box, sequence.seed_mask)
    assert "not running" in reports.items[-1].update.reason
    service.start_worker()
    try:
        assert service.start("none", "find it", sequence.seed_frame, 0, None, None, None) is None
        assert reports.items[-1].update.state is TrackState.ENDED
        assert reports.items[-1].track_id == "" and "not found" in reports.items[-1].update.reason
        first, second = started(service, sequence, "a"), started(service, sequence, "b")
        assert started(service, sequence, "c") is None
        assert "too many tracks (2 running)" in reports.items[-1].update.reason
        assert reports.wait(lambda items: {r.track_id for r in items} >= {first, second})
        assert service.stop(first) == 1 and service.stop("track-404") == 0
        assert reports.wait(lambda items: any(
            r.track_id == first and r.update.state is TrackState.ENDED for r in items))
        assert "stopped by client" in [r for r in reports.items if r.track_id == first][-1] \
            .update.reason
        assert service.track_ids() == [second]
    finally:
        service.stop_worker("node deactivated")
    last = [r for r in reports.items if r.track_id == second][-1]
    assert last.update.state is TrackState.ENDED and last.update.reason == "node deactivated"
    assert service.active == 0


def test_max_age_camera_stall_and_time_going_backwards_end_or_flag_tracks(pan):
    sequence, frames, _ = pan
    reports = Reports()
    service = TrackingService(reports, max_age_s=0.5, stall_s=0.3)
    service.start_worker()
    try:
        track_id = started(service, sequence)
        assert reports.wait(lambda items: any(r.update.state is TrackState.LOST
                                              and "camera stopped" in r.update.reason
                                              for r in items), 5)
        service.put_frame(track_frame(frames[0], 1))
        assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED, 5)
        assert "track_max_age_s" in reports.items[-1].update.reason
    finally:
        service.stop_worker()
    reports = Reports()
    service = TrackingService(reports)
    service.start_worker()
    try:
        track_id = started(service, sequence, "back", seq=0)
        service.put_frame(track_frame(frames[0], 1, stamp_ns=5 * 10 ** 9))
        assert reports.wait(lambda items: len(items) >= 2)
        service.put_frame(track_frame(frames[1], 2, stamp_ns=4 * 10 ** 9))
        assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
        assert reports.items[-1].track_id == track_id
        assert "camera time went backwards" in reports.items[-1].update.reason
    finally:
        service.stop_worker()


def test_reacquire_off_ends_a_lost_track_and_cascade_resumes_the_same_id(pan):
    sequence, frames, _ = pan
    blank = np.full_like(frames[0], 120)
    for mode in ("off", "cascade"):
        reports, asked = Reports(), []
        service = TrackingService(reports, reacquire=mode,
                                  on_reacquire=lambda *args: asked.append(args))
        service.start_worker()
        try:
            track_id = started(service, sequence)
            for seq in range(1, 4):
                service.put_frame(track_frame(blank, seq))
                time.sleep(0.2)
            assert reports.wait(lambda items: any(r.update.state is TrackState.LOST
                                                  for r in items))
            if mode == "off":
                assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
                assert "lost" in reports.items[-1].update.reason and not asked
                continue
            assert asked == [(track_id, "r1", "find it")]  # asked once, not per lost frame
            box, mask = seed_of(frames[3], pan[2][3])
            assert service.resume(track_id, frames[3], 4, header(4), box, mask)
            service.put_frame(track_frame(frames[4], 5))
            assert reports.wait(lambda items: items[-1].update.tracking
                                and items[-1].track_id == track_id)
            assert service.counters.reacquired >= 1 and service.counters.losses == 1
        finally:
            service.stop_worker()


def seed_of(image, truth):
    """Return the box and full mask a cascade answer would give for ``truth``'s target."""
    mask = np.zeros(image.shape[:2], bool)
    x0, y0, w, h = truth.roi
    mask[y0:y0 + h, x0:x0 + w] = truth.mask
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), mask


def test_a_tracker_that_cannot_be_built_ends_the_track_with_the_reason(pan):
    sequence, _, _ = pan
    reports = Reports()

    def unbuildable(config):
        raise TrackerError("no CUDA device for the sam2 tracker")

    service = TrackingService(reports, tracker_factory=unbuildable)
    service.start_worker()
    try:
        assert started(service, sequence) is not None
        assert reports.wait(lambda items: items)
        (report,) = reports.items
        assert report.update.state is TrackState.ENDED and "no CUDA" in report.update.reason
        assert service.active == 0
    finally:
        service.stop_worker()


def test_a_camera_that_stops_again_is_reported_again_and_fps_falls_to_zero(pan):
    sequence, frames, _ = pan
    reports = Reports()
    service = TrackingService(reports, stall_s=0.3)
    service.start_worker()
    try:
        started(service, sequence)
        for stop in range(2):  # the camera stops, comes back, stops again
            for seq in range(1 + 3 * stop, 4 + 3 * stop):
                service.put_frame(track_frame(frames[seq], seq))
                assert reports.wait(lambda items: items and items[-1].frame.seq == seq)
            assert service.counters.fps > 0
            assert reports.wait(lambda items: items[-1].update.state is TrackState.LOST, 5)
            assert "camera stopped" in reports.items[-1].update.reason
            assert service.counters.fps == 0  # nothing is being tracked now
        service.stop()
        assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
        assert service.counters.fps == 0
    finally:
        service.stop_worker()


def test_a_track_that_never_starts_says_why_on_the_answered_frame(pan):
    sequence, _, _ = pan
    reports = Reports()
    service = TrackingService(reports, max_tracks=1)
    service.start_worker()
    try:
        service.start("failed", "find it", sequence.seed_frame, 7, header(7), None, None,
                      refusal="[gse] model crashed")
        assert "nothing to track: [gse] model crashed" in reports.items[-1].update.reason
        assert reports.items[-1].frame.header.stamp == header(7).stamp
        started(service, sequence, "first")
        assert started(service, sequence, "second", seq=9) is None  # too many tracks
        assert reports.items[-1].frame.header.stamp == header(9).stamp
        assert reports.items[-1].frame.seq == 9
    finally:
        service.stop_worker()


def test_track_ids_are_never_reused_by_a_new_service(pan):
    sequence, _, _ = pan
    ids = []
    for _ in range(2):  # the node builds a new service when it is configured again
        service = TrackingService(Reports())
        service.start_worker()
        ids.append(started(service, sequence))
        service.stop_worker()
    assert ids[0] != ids[1], ids
