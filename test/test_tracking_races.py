"""
The tracking service when things happen at once: a stop during a catch-up, unreadable frames.

Small hand-made scenes (test_tracking_core.py), a real TrackingService and template tracker;
a slow tracker (its updates wait) makes a catch-up last long enough to stop in the middle.
"""
from __future__ import annotations

import threading
import time

import pytest

from finers_ros.tracking import build_tracker, TrackState
from finers_ros.tracking.ring import TrackFrame
from finers_ros.tracking.service import TrackingService
from test_tracking_core import one_cv_thread, scene  # noqa: F401
from test_tracking_service import header, path, Reports, sent, start


class SlowUpdates:
    """A template tracker built ``build_s`` late whose updates take ``delay_s`` more."""

    def __init__(self, config, delay_s: float, build_s: float = 0.0):
        time.sleep(build_s)  # a model being loaded (sam2), a loaded machine
        self.inner, self.delay_s = build_tracker(config), delay_s
        self.name = self.inner.name

    def seed(self, view, box, mask):
        return self.inner.seed(view, box, mask)

    def update(self, view):
        time.sleep(self.delay_s)
        return self.inner.update(view)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("build_s, delay_s", [(0.0, 0.2), (1.5, 0.05)],
                         ids=["in its replay", "while its tracker is built"])
def test_a_stop_during_a_catch_up_ends_the_track_once_and_nothing_follows(build_s, delay_s):
    reports = Reports()
    service = TrackingService(reports, ring_frames=30, tracker_factory=lambda config: (
        SlowUpdates(config, delay_s, build_s)))
    service.start_worker()
    service.expect()
    for seq in range(1, 16):  # 15 frames to replay: 3 s of catch-up
        service.put_frame(sent(scene(path(seq)), seq))
    track_id = start(service)
    service.settle()
    time.sleep(0.8)  # in the middle of its catch-up
    service.stop_worker("node deactivated", join_s=0.2)  # the worker is still at it
    time.sleep(3.5)  # the catch-up would have finished by now
    mine = reports.of(track_id)
    assert [r.update.state for r in mine] == [TrackState.ENDED], [
        (r.update.state, r.update.reason) for r in mine]
    assert mine[0].update.reason == "node deactivated"
    assert service.active == 0


def held_tracker_factory():
    """
    Return ``(factory, entered, gate)``: a tracker factory that holds the worker in it.

    ``entered`` is set once the worker is building a tracker; it builds it when ``gate`` is
    set (or after 5 s), so a test acts while a track is being seeded.
    """
    entered, gate = threading.Event(), threading.Event()

    def slow_build(config):
        entered.set()
        gate.wait(5)
        return build_tracker(config)

    return slow_build, entered, gate


def test_frames_keep_being_wanted_while_a_track_is_being_seeded():
    """Between the worker taking a new track and running it, the track still counts."""
    slow_build, entered, gate = held_tracker_factory()
    reports = Reports()
    service = TrackingService(reports, tracker_factory=slow_build)
    service.start_worker()
    try:
        track_id = start(service)
        assert entered.wait(5)
        samples = []
        for _ in range(20):
            samples.append(service.active)
            time.sleep(0.01)
        assert samples == [1] * 20
        gate.set()
        assert reports.wait(lambda items: any(r.track_id == track_id for r in items))
        assert service.active == 1
    finally:
        gate.set()
        service.stop_worker()


def test_an_unreadable_frame_is_reported_as_not_seen_with_why_and_tracking_goes_on():
    reports = Reports()
    service = TrackingService(reports)
    service.start_worker()
    try:
        track_id = start(service)
        assert reports.wait(lambda items: items)

        def unreadable():
            raise ValueError("unsupported encoding 'bogus'")
        service.put_frame(TrackFrame(unreadable, header(1_600_000_000), 1, 0, 1_600_000_000))
        assert reports.wait(lambda items: items[-1].frame.seq == 1)
        bad = reports.of(track_id)[-1].update
        assert bad.state is TrackState.SEARCHING and bad.mask is None and bad.confidence == 0
        assert bad.reason == "frame not readable: unsupported encoding 'bogus'"
        assert bad.box == reports.of(track_id)[0].update.box  # the last known box
        service.put_frame(sent(scene(path(2)), 2))
        assert reports.wait(lambda items: items[-1].frame.seq == 2)
        assert reports.of(track_id)[-1].update.tracking
    finally:
        service.stop_worker()


def test_track_ids_differ_from_those_of_an_earlier_run():
    """A restarted node must not hand out the ids its clients may still stop."""
    import subprocess
    import sys

    code = ("from finers_ros.tracking import service as s; "
            "print(f'track-{s._RUN}-{next(s._TRACK_NUMBERS)}')")
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() for _ in range(3)}
    assert len(ids) == 3 and all(i.startswith("track-") and i.endswith("-1") for i in ids)


def test_a_track_being_seeded_counts_against_max_tracks():
    """The worker has taken the first track and builds it: a second is still too many."""
    slow_build, entered, gate = held_tracker_factory()
    reports = Reports()
    service = TrackingService(reports, max_tracks=1, tracker_factory=slow_build)
    service.start_worker()
    try:
        assert start(service, "first")
        assert entered.wait(5)
        assert start(service, "second") is None
        assert "too many tracks (1 running)" in reports.items[-1].update.reason
    finally:
        gate.set()
        service.stop_worker()
