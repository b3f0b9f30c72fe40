"""
The tracking service per frame: the display callback, the rate, dropped frames, stamps, age.

The scenes of test_tracking_core.py (red targets placed by hand on a 240 x 160 frame) fed
to a real TrackingService with the template tracker, frame by frame.
"""
from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import numpy as np

from finers_ros.tracking import build_tracker, TrackerError, TrackState
from finers_ros.tracking.service import TrackingService
from test_tracking_core import box_at, HEIGHT, one_cv_thread, RED, scene, WIDTH  # noqa: F401
from test_tracking_service import header, path, Reports, sent, start, until


def serving(**options):
    reports = Reports()
    service = TrackingService(reports, **options)
    service.start_worker()
    return service, reports


def test_the_display_gets_each_tracked_frame_once_with_every_tracks_report(caplog):
    shown = []

    def display(frame, reports):
        shown.append((frame.seq, [r.track_id for r in reports]))
        if frame.seq == 2:
            raise RuntimeError("window closed")

    service, reports = serving(on_frame=display)
    try:
        first, second = start(service, "a"), start(service, "b")
        assert reports.wait(lambda items: len(items) == 2)
        with caplog.at_level(logging.ERROR, logger="finers_ros.tracking.service"):
            for seq in (1, 2, 3):
                service.put_frame(sent(scene(path(seq)), seq))
                assert until(lambda: len(shown) == seq)
        assert shown == [(1, [first, second]), (2, [first, second]), (3, [first, second])]
        assert "frame display failed" in caplog.messages
        service.put_frame(sent(scene(path(4)), 4, stamp_ns=1))  # older: both tracks end
        assert reports.wait(lambda items: items[-1].update.state is TrackState.ENDED
                            and len(items) == 10)
        time.sleep(0.3)
        assert len(shown) == 3  # a frame that gave no report is not shown
    finally:
        service.stop_worker()


def test_update_time_is_the_trackers_own_in_milliseconds():
    service, reports = serving()
    try:
        start(service)
        assert reports.wait(lambda items: items)
        sent_at = time.perf_counter()
        service.put_frame(sent(scene(path(1)), 1))
        assert reports.wait(lambda items: len(items) == 2)
        waited_ms = (time.perf_counter() - sent_at) * 1000.0
        assert 0.05 < reports.items[-1].update_ms <= waited_ms
    finally:
        service.stop_worker()


def test_the_rate_is_frames_per_second_over_the_recent_frames():
    service, reports = serving()
    try:
        start(service)
        assert reports.wait(lambda items: items)
        began = time.monotonic()
        for seq in range(1, 6):
            if seq > 1:
                time.sleep(0.2)
            service.put_frame(sent(scene(path(seq)), seq))
            assert reports.wait(lambda items: items[-1].frame.seq == seq)
        took = time.monotonic() - began
        # four gaps of at least 0.2 s between the five processed frames, within ``took``
        assert 4 / took <= service.counters.fps <= 4 / 0.8
    finally:
        service.stop_worker()


def test_frames_that_arrive_while_the_worker_is_busy_are_dropped_and_counted():
    gate, built = threading.Event(), []

    def second_is_slow(config):
        built.append(config)
        if len(built) == 2:
            gate.wait(5)
        return build_tracker(config)

    service, reports = serving(tracker_factory=second_is_slow)
    try:
        start(service, "a")
        assert reports.wait(lambda items: items)
        start(service, "b")
        assert until(lambda: len(built) == 2)  # the worker builds the second tracker
        for seq in (1, 2, 3):
            service.put_frame(sent(scene(path(seq)), seq))
        gate.set()
        assert reports.wait(lambda items: any(r.frame.seq == 3 for r in items))
        assert service.counters.frames_dropped == 2  # 1 and 2, replaced before they were taken
        assert not any(r.frame.seq in (1, 2) for r in reports.items)
    finally:
        gate.set()
        service.stop_worker()


def test_a_header_without_a_stamp_is_time_zero_and_stamps_are_nanoseconds():
    service, reports = serving(max_tracks=1)
    try:
        at = path(0)
        mask = np.all(scene(at) == RED, axis=2)
        service.start("r1", "the red tag", scene(at), 4, SimpleNamespace(), box_at(*at), mask)
        service.start("r2", "the red tag", scene(at), 5, SimpleNamespace(), box_at(*at), mask)
        assert reports.items[-1].frame.stamp_ns == 0  # refused: too many tracks
        service.start("r3", "the red tag", scene(at), 6, header(7 * 10 ** 9 + 5), box_at(*at),
                      mask)
        assert reports.items[-1].frame.stamp_ns == 7_000_000_005
    finally:
        service.stop_worker()


def test_a_track_older_than_max_age_ends_with_the_age_in_the_reason():
    service, reports = serving(max_age_s=0.5)
    try:
        track_id = start(service)
        began = time.monotonic()
        assert reports.wait(lambda items: items and items[-1].update.state is TrackState.ENDED,
                            5)
        assert time.monotonic() - began >= 0.5
        ended = reports.items[-1]
        assert ended.track_id == track_id
        assert ended.update.reason == "track_max_age_s (0.5 s) reached"
    finally:
        service.stop_worker()


def test_the_first_report_is_on_the_answered_frame_with_its_pixels_and_size():
    service, reports = serving()
    try:
        image = scene(path(0))
        track_id = start(service, seq=5)
        assert reports.wait(lambda items: items)
        (first,) = reports.items
        assert first.track_id == track_id and first.frame_size == (WIDTH, HEIGHT)
        assert first.frame.seq == 5 and first.frame.header.stamp == header(5).stamp
        assert first.frame.nbytes == image.nbytes
        assert np.array_equal(first.frame.view().pixels, image)
    finally:
        service.stop_worker()


def test_a_seed_the_tracker_cannot_take_is_reported_with_the_trackers_reason():
    def no_tracker(config):
        raise TrackerError("no CUDA device for the sam2 tracker")

    for factory, why in ((no_tracker, "cannot track: no CUDA device for the sam2 tracker"),
                         (build_tracker, "cannot track: the seed mask has no pixel near box")):
        service, reports = serving(tracker_factory=factory)
        try:
            far = np.zeros((HEIGHT, WIDTH), bool)
            far[150:155, 230:235] = True  # an answer whose mask is nowhere near its box
            track_id = service.start("r7", "the red tag", scene(path(0)), 3, header(3),
                                     box_at(*path(0)), far)
            assert reports.wait(lambda items: items)
            (report,) = reports.items
            assert (report.track_id, report.request_id, report.instruction) == (
                track_id, "r7", "the red tag")
            assert report.update.state is TrackState.ENDED and report.update.reason.startswith(why)
            assert report.frame_size == (WIDTH, HEIGHT) and service.counters.errors == 0
            assert service.active == 0
        finally:
            service.stop_worker()
