"""
The tracking service on small hand-made scenes: catch-up, reports, ends, losses, stalls.

The scenes of test_tracking_core.py (a red target placed by hand on a 240 x 160 textured
frame, so every box is known to the pixel) fed to a real TrackingService with the template
tracker, one worker thread, frames offered one at a time as the node offers them.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from finers_ros.tracking import FrameView, TrackerConfig, TrackState
from finers_ros.tracking import build_tracker
from finers_ros.tracking.ring import TrackFrame
from finers_ros.tracking.service import TrackingService
from test_tracking_core import box_at, HEIGHT, one_cv_thread, RED, scene, WIDTH  # noqa: F401


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
    assert "frame 1 not tracked: 16UC1 is not a colour encoding" in caplog.messages


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
    gate, entered = threading.Event(), threading.Event()

    def slow_tracker(config):
        entered.set()
        gate.wait(5)  # the worker is busy building the first track's tracker
        return build_tracker(config)

    reports = Reports()
    service = TrackingService(reports, tracker_factory=slow_tracker)
    service.start_worker()
    first = start(service, "a")
    assert entered.wait(5)  # taken by the worker, not yet running
    assert service.active == 1  # still counted: the node keeps taking frames for it
    second = start(service, "b")
    assert service.active == 2
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
    service.put_frame(sent(scene(path(1)), 1))  # frames still arrive: nobody waits for them
    assert len(service.ring) == 0
    service.settle()  # the answer of a request made before the stop
    assert not service.resume(track_id, scene(), 1, header(1), box_at(1, 1),
                              np.ones((HEIGHT, WIDTH), bool))
    assert service.counters.errors == 0 and service.active == 0
    service.start_worker()  # a node activated again tracks again
    again = start(service, "again")
    assert reports.wait(lambda items: items[-1].track_id == again)
    assert reports.items[-1].update.tracking and service.counters.errors == 0
    service.put_frame(sent(scene(path(2)), 2))
    assert reports.wait(lambda items: items[-1].frame.seq == 2)
    assert reports.items[-1].update.box == box_at(*path(2))
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
    # no new answer: asked again at a later lost frame
    assert blank_frames_until(service, reports, lambda: len(asked) == 2, 3) < 100
    assert service.resume(track_id, scene(at), 3, header(3), (-50.0, -50.0, 300.0, 300.0),
                          mask)  # a loose box: the answer's mask says where the target is
    assert reports.wait(lambda items: items[-1].frame.seq == 3 and items[-1].update.tracking)
    assert reports.items[-1].update.box == box_at(*at) and reports.items[-1].track_id == track_id
    service.put_frame(sent(scene((152, 42)), 100))
    assert reports.wait(lambda items: items[-1].frame.seq == 100 and items[-1].update.tracking)
    back = reports.items[-1]
    assert (back.track_id, back.request_id, back.instruction) == (track_id, "r1",
                                                                  "the red tag")
    assert back.update.box == box_at(152, 42) and back.frames_tracked == 3
    assert service.counters.tracks_started == 1 and service.counters.reacquired == 1
    assert blank_frames_until(service, reports, lambda: len(asked) == 3, 101) < 200
    assert service.counters.losses == 2  # a new loss asks again


def test_a_resume_that_cannot_be_tracked_keeps_the_lost_track_and_asks_again(running):
    asked = []
    service, reports = running(reacquire="cascade", config=TrackerConfig(lost_after=1),
                               on_reacquire=lambda *args: asked.append(args))
    track_id = start(service)
    service.put_frame(sent(scene(), 1))
    assert reports.wait(lambda items: items and items[-1].update.state is TrackState.LOST)
    off = (400.0, 10.0, 420.0, 20.0)
    assert service.resume(track_id, scene(), 2, header(2), off, np.ones((HEIGHT, WIDTH), bool))
    assert blank_frames_until(service, reports, lambda: len(asked) == 2, 3) < 100
    states = {r.update.state for r in reports.of(track_id)[1:]}
    assert states == {TrackState.LOST} and service.track_ids() == [track_id]
    assert service.counters.tracks_started == 1 and service.counters.tracks_ended == 0


def blank_frames_until(service, reports, condition, seq: int) -> int:
    """Send target-less frames 0.1 s apart until ``condition()`` (5 s at most); next seq."""
    deadline = time.monotonic() + 5.0
    while not condition() and time.monotonic() < deadline:
        service.put_frame(sent(scene(), seq))
        assert reports.wait(lambda items: items[-1].frame.seq == seq)
        seq += 1
        time.sleep(0.1)
    return seq if condition() else 10 ** 6


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
