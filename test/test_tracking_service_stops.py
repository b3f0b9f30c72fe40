"""
Stopping the tracking service, tracks that end, and asking the cascade again.

The scenes of test_tracking_core.py and the helpers of test_tracking_service.py; the
tracker factory is the real template tracker, held back where a test needs the worker busy.
"""
from __future__ import annotations

import logging
import threading
import time

from finers_ros.tracking import TrackerConfig, TrackState
from finers_ros.tracking import build_tracker
from finers_ros.tracking.ring import TrackFrame
from finers_ros.tracking.service import TrackingService
from test_tracking_core import one_cv_thread, scene  # noqa: F401
from test_tracking_service import blank_frames_until, header, path, Reports, sent, start
from test_tracking_service import until


def test_a_report_callback_may_stop_the_service(caplog):
    reports = Reports()
    service = None

    def stop_on_first_tracking(report):
        reports(report)
        if report.update.tracking and len(reports.items) == 1:
            service.stop_worker("operator pressed stop")

    service = TrackingService(stop_on_first_tracking)
    service.start_worker()
    with caplog.at_level(logging.ERROR, logger="finers_ros.tracking.service"):
        track_id = start(service)
        assert reports.wait(lambda items: len(items) == 2)
    ended = reports.items[1]
    assert ended.track_id == track_id and ended.update.state is TrackState.ENDED
    assert ended.update.reason == "operator pressed stop"
    assert "callback failed" not in caplog.text and service.active == 0


def test_stopping_gives_up_waiting_for_a_stuck_tracker_after_two_seconds():
    gate = threading.Event()

    building = threading.Event()

    def stuck_tracker(config):
        building.set()
        gate.wait(10)
        return build_tracker(config)

    service = TrackingService(Reports(), tracker_factory=stuck_tracker)
    service.start_worker()
    start(service)
    assert building.wait(5)  # the worker is inside the factory
    begun = time.monotonic()
    service.stop_worker()
    waited = time.monotonic() - begun
    gate.set()
    assert 1.9 <= waited < 2.9


def test_a_track_stopped_twice_before_the_worker_gets_to_it_ends_once():
    gate = threading.Event()
    built = []

    def second_is_slow(config):
        built.append(config)
        if len(built) == 2:
            gate.wait(5)
        return build_tracker(config)

    reports = Reports()
    service = TrackingService(reports, tracker_factory=second_is_slow)
    service.start_worker()
    try:
        first = start(service, "a")
        assert reports.wait(lambda items: items)
        second = start(service, "b")
        assert until(lambda: len(built) == 2)  # the worker waits on the second tracker
        assert service.stop(first) == 1 and service.stop(first) == 1
        gate.set()
        assert reports.wait(lambda items: any(r.track_id == second for r in items))
        ended = [r for r in reports.of(first) if r.update.state is TrackState.ENDED]
        assert len(ended) == 1 and service.counters.errors == 0
        assert service.track_ids() == [second] and service.counters.tracks_ended == 1
    finally:
        gate.set()
        service.stop_worker()


def test_a_kept_frame_of_another_size_ends_the_new_track_before_its_first_report():
    reports = Reports()
    service = TrackingService(reports)
    service.start_worker()
    service.expect()
    service.put_frame(sent(scene(path(1)), 1))
    service.put_frame(sent(scene(path(2))[:120], 2))  # the camera changed its resolution
    track_id = start(service, seq=0)
    assert reports.wait(lambda items: items)
    (ended,) = reports.items
    assert ended.track_id == track_id and ended.update.state is TrackState.ENDED
    assert ended.update.box is None and ended.frame.seq == 1  # the last frame it ran on
    assert ended.update.reason == "frame size changed from 240x160 to 240x120: track ended"
    service.stop_worker()


def test_nothing_is_reported_for_a_track_after_its_end():
    for name, late in (("time went backwards", sent(scene(path(2)), 2, stamp_ns=4 * 10 ** 9)),
                       ("frame size changed", sent(scene(path(2))[:, :200], 2, 6 * 10 ** 9))):
        reports = Reports()
        service = TrackingService(reports)
        service.start_worker()
        try:
            track_id = start(service)
            service.put_frame(sent(scene(path(1)), 1, stamp_ns=5 * 10 ** 9))
            assert reports.wait(lambda items: len(items) == 2)
            service.put_frame(late)
            assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED)
            time.sleep(0.3)
            mine = reports.of(track_id)
            assert len(mine) == 3 and mine[-1].update.state is TrackState.ENDED, name
            assert name in mine[-1].update.reason
        finally:
            service.stop_worker()


def test_an_unreadable_frames_reason_is_cut_at_300_characters():
    reports = Reports()
    service = TrackingService(reports)
    service.start_worker()
    try:
        start(service)
        assert reports.wait(lambda items: items)

        def unreadable():
            raise ValueError("x" * 400)

        service.put_frame(TrackFrame(unreadable, header(1), 1, 10, 1))
        assert reports.wait(lambda items: items[-1].frame.seq == 1)
        reason = reports.items[-1].update.reason
        assert reason.startswith("frame not readable: xxx") and len(reason) == 300
    finally:
        service.stop_worker()


def test_a_cascade_that_found_nothing_is_asked_again_after_two_seconds_not_at_once():
    asked = []
    reports = Reports()
    service = TrackingService(reports, reacquire="cascade", config=TrackerConfig(lost_after=1),
                              on_reacquire=lambda *args: asked.append(time.monotonic()))
    service.start_worker()
    try:
        track_id = start(service)
        service.put_frame(sent(scene(), 1))
        assert reports.wait(lambda items: items and items[-1].update.state is TrackState.LOST)
        assert len(asked) == 1
        refused = time.monotonic()
        assert not service.resume(track_id, scene(), 2, header(2), None, None)  # not found
        service.put_frame(sent(scene(), 2))
        assert reports.wait(lambda items: items[-1].frame.seq == 2)
        assert len(asked) == 1 or asked[1] - refused >= 2.0
        assert blank_frames_until(service, reports, lambda: len(asked) == 2, 3) < 10 ** 6
        assert asked[1] - refused >= 2.0
    finally:
        service.stop_worker()
