"""
Tracking after the answer, against a live frame stream (ROS-free).

- Frames: every received frame is offered (``put_frame``, cheap: nothing is decoded). The
  newest one is what the worker tracks on; frames that arrive while it is busy are dropped
  and counted. While a tracking request waits for its cascade answer, frames are also kept
  in a bounded ``FrameRing`` so that the new track can catch up.
- Tracks: ``start`` seeds a tracker from a found answer (the frame it was answered on, box,
  mask) in the worker, replays the ring frames received since, and reports from the newest
  one on. Several tracks at once (``max_tracks``), one id each; ``stop`` ends one or all.
- Every processed frame gives one ``TrackReport`` per track through ``on_report``, with the
  frame's header; every track ends with exactly one report in state ``ended`` and a reason
  (stopped, max age, frame size changed, camera time went backwards, service stopped).
- After a loss, ``reacquire`` decides: ``search`` (the tracker keeps searching wide),
  ``cascade`` (``on_reacquire`` is called once; ``resume`` re-seeds the same track id from
  a new answer), or ``off`` (the track ends when lost).

Nothing here runs in the caller's thread except bookkeeping: one worker thread does all
decoding and tracking, so the caller (a ROS callback, the cascade's worker) never waits.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional

import numpy as np

from ..geometry import Box
from .base import Tracker, TrackerError, TrackState, TrackUpdate
from .config import TrackerConfig
from .frames import FrameView
from .registry import build_tracker
from .ring import FrameRing, TrackFrame

log = logging.getLogger(__name__)
REACQUIRE_MODES = ("search", "cascade", "off")
_TRACK_NUMBERS = itertools.count(1)  # per process: a reconfigured node never reuses an id
# per process start: a restarted node's ids differ from those its clients still hold
_RUN = os.urandom(3).hex()
REACQUIRE_RETRY_S = 2.0  # track_reacquire cascade: ask again this long after a "not found"


@dataclass
class TrackReport:
    """
    One track on one frame.

    ``frame`` is None only for a track that never started without an answered frame.
    """

    track_id: str
    request_id: str
    instruction: str
    update: TrackUpdate
    frame: Optional[TrackFrame]
    frame_size: tuple = (0, 0)  # (W, H) of the frame the update refers to
    frames_tracked: int = 0  # frames with state tracking since the track started
    update_ms: float = 0.0  # tracker time for this frame (wall, ms)
    catch_up_frames: int = 0  # frames replayed before this report (first report only)


@dataclass
class _Track:
    track_id: str
    request_id: str
    instruction: str
    tracker: Tracker
    started: float  # time.monotonic()
    frame_size: tuple = (0, 0)
    frames_tracked: int = 0
    state: TrackState = TrackState.TRACKING
    reacquire_asked: bool = False
    reacquire_after: float = 0.0  # time.monotonic() before which the cascade is not re-asked
    last_stamp_ns: int = 0  # newest camera stamp this track ran on (0: unknown)
    last_frame: Optional[TrackFrame] = None
    last_update: Optional[TrackUpdate] = None


@dataclass
class _Seed:
    track_id: str
    request_id: str
    instruction: str
    image: np.ndarray  # H x W x 3 uint8 RGB: the frame the answer refers to
    seq: int  # that frame's sequence number
    header: object
    box: Box
    mask: Optional[np.ndarray]
    resume: bool = False
    counted_out: bool = False  # no longer among the service's seeding ones


@dataclass
class TrackingCounters:
    """Totals since the service was created."""

    tracks_started: int = 0
    tracks_ended: int = 0
    frames_processed: int = 0  # frames the worker tracked on
    frames_dropped: int = 0  # frames that arrived while the worker was busy, never tracked
    losses: int = 0  # transitions into lost
    reacquired: int = 0  # lost (or searching) -> tracking again
    fps: float = 0.0  # processed frames per second (smoothed)
    last_update_ms: float = 0.0
    ring_bytes_peak: int = 0
    errors: int = 0
    recent: Deque[float] = field(default_factory=lambda: deque(maxlen=30))


class TrackingService:
    """Tracks of found targets, updated on the newest frame in one worker thread."""

    def __init__(self, on_report: Callable[[TrackReport], None],
                 config: Optional[TrackerConfig] = None, max_tracks: int = 8,
                 max_age_s: float = 0.0, reacquire: str = "search",
                 on_reacquire: Optional[Callable[[str, str, str], None]] = None,
                 ring_frames: int = 30, ring_bytes: int = 256 * 2 ** 20,
                 stall_s: float = 2.0,
                 tracker_factory: Callable[[TrackerConfig], Tracker] = build_tracker,
                 on_frame: Optional[Callable[[TrackFrame, List[TrackReport]], None]] = None):
        if reacquire not in REACQUIRE_MODES:
            raise ValueError(f"reacquire={reacquire!r}: expected one of {REACQUIRE_MODES}")
        if max_tracks < 1 or max_age_s < 0 or stall_s <= 0:
            raise ValueError("max_tracks >= 1, max_age_s >= 0 and stall_s > 0 are required")
        self.config = (config or TrackerConfig()).validate()
        self.on_report = on_report
        self.on_frame = on_frame  # after every track's report on a live frame (a display)
        self.max_tracks = max_tracks
        self.max_age_s = max_age_s
        self.reacquire = reacquire
        self.on_reacquire = on_reacquire or (lambda track_id, request_id, instruction: None)
        self.stall_s = stall_s
        self.ring = FrameRing(ring_frames, ring_bytes)
        self.counters = TrackingCounters()
        self._factory = tracker_factory
        self._cond = threading.Condition()
        self._tracks: Dict[str, _Track] = {}
        self._seeds: List[_Seed] = []
        self._ends: List[tuple] = []  # (track_id or None for all, reason)
        self._pending = 0  # tracking requests waiting for their answer: keep the ring
        self._seeding = 0  # seeds the worker took and has not registered (or refused) yet
        self._stop_reason = "tracking stopped"
        self._newest: Optional[TrackFrame] = None
        self._newest_taken = 0  # seq of the newest frame the worker took
        self._last_frame_time = time.monotonic()
        self._stall_reported = False
        self._ids = _TRACK_NUMBERS
        self._running = False
        self._generation = 0  # one per worker: a worker of an earlier start exits on its own
        self._worker: Optional[threading.Thread] = None

    # -- any thread ----------------------------------------------------------------
    def start_worker(self) -> None:
        """Start the worker (idempotent)."""
        with self._cond:
            if self._running:
                return
            self._running = True
            self._generation += 1
            self._worker = threading.Thread(target=self._loop, args=(self._generation,),
                                            name="finers-tracking", daemon=True)
            self._worker.start()

    def stop_worker(self, reason: str = "tracking stopped", join_s: float = 2.0) -> None:
        """End every track (each reported as ended with ``reason``) and stop the worker."""
        with self._cond:
            self._ends.append((None, reason))
            self._stop_reason = reason
            refused = list(self._seeds)
            self._seeds.clear()
            self._pending = 0
            self._running = False
            self._cond.notify_all()
            worker = self._worker
        for seed in refused:
            self._report_never_started(seed.track_id, seed.request_id, seed.instruction,
                                       reason, None)
        if worker is not None and worker is not threading.current_thread():
            worker.join(join_s)
        self._end_all(reason)  # anything the worker did not get to
        self.ring.clear()

    def put_frame(self, frame: TrackFrame) -> None:
        """Offer a received frame (cheap: tracked if still the newest when the worker is free)."""
        with self._cond:
            if (self._tracks and self._newest is not None
                    and self._newest.seq > self._newest_taken):
                self.counters.frames_dropped += 1  # replaced before the worker took it
            self._newest = frame
            self._last_frame_time = time.monotonic()
            self._stall_reported = False  # a camera that stops again is reported again
            wanted = self._pending > 0
            if self._tracks or self._seeds:
                self._cond.notify_all()
        if wanted:
            self.ring.put(frame)
            self.counters.ring_bytes_peak = max(self.counters.ring_bytes_peak,
                                                self.ring.peak_bytes)

    def expect(self) -> None:
        """Keep frames for a queued tracking request's catch-up, until ``settle``."""
        with self._cond:
            self._pending += 1

    def settle(self) -> None:
        """Note that a tracking request got its answer (found or not)."""
        with self._cond:
            self._pending = max(0, self._pending - 1)
            clear = self._pending == 0 and not self._seeds and not self._seeding
        if clear:
            self.ring.clear()

    def start(self, request_id: str, instruction: str, image: np.ndarray, seq: int,
              header, box: Optional[Box], mask: Optional[np.ndarray],
              refusal: Optional[str] = None) -> Optional[str]:
        """
        Start tracking a found answer on its frame ``image`` (``H x W x 3`` RGB, frame ``seq``).

        Returns the new track id, or None when it cannot start (not found, too many tracks,
        not running): then one ``ended`` report with the reason has been delivered, on the
        answered frame's header when there is one. ``refusal`` says why an answer without a
        box has nothing to track (its error); by default, that it was not found.
        """
        track_id = ""
        why = None
        with self._cond:
            if not self._running:
                why = "tracking is not running (node inactive)"
            elif box is None or mask is None or not mask.any():
                why = f"nothing to track: {refusal or 'the answer was not found'}"
            elif len(self._tracks) + len(self._seeds) + self._seeding >= self.max_tracks:
                why = f"too many tracks ({self.max_tracks} running); stop one first"
            else:
                track_id = f"track-{_RUN}-{next(self._ids)}"
                self._seeds.append(_Seed(track_id, request_id, instruction, image, seq,
                                         header, box, mask))
                self._cond.notify_all()
        if why:
            answered = None if header is None else \
                TrackFrame(lambda: FrameView(image), header, seq, 0, _stamp_ns(header))
            self._report_never_started(track_id, request_id, instruction, why,
                                       (image.shape[1], image.shape[0])
                                       if image is not None else (0, 0), answered)
            return None
        return track_id

    def resume(self, track_id: str, image: np.ndarray, seq: int, header, box: Optional[Box],
               mask: Optional[np.ndarray]) -> bool:
        """Re-seed a lost track from a new answer (``reacquire: cascade``)."""
        if box is None or mask is None:
            self.not_reacquired(track_id)
            return False
        with self._cond:
            track = self._tracks.get(track_id)
            if track is None or not self._running:
                return False
            self._seeds.append(_Seed(track_id, track.request_id, track.instruction, image, seq,
                                     header, box, mask, resume=True))
            self._cond.notify_all()
            return True

    def not_reacquired(self, track_id: str) -> None:
        """Note a re-acquisition answer without the target: ask again a little later."""
        with self._cond:
            track = self._tracks.get(track_id)
            if track is not None:
                track.reacquire_asked = False
                track.reacquire_after = time.monotonic() + REACQUIRE_RETRY_S

    def stop(self, track_id: Optional[str] = None, reason: str = "stopped by client") -> int:
        """End one track (or all with None); returns how many tracks will end."""
        with self._cond:
            ids = list(self._tracks) if track_id is None else \
                [track_id] if track_id in self._tracks else []
            for tid in ids:
                self._ends.append((tid, reason))
            self._cond.notify_all()
        return len(ids)

    def track_ids(self) -> List[str]:
        """Ids of the tracks running now."""
        with self._cond:
            return list(self._tracks)

    @property
    def active(self) -> int:
        """How many tracks are running or starting (also while the worker seeds one)."""
        with self._cond:
            return len(self._tracks) + len(self._seeds) + self._seeding

    # -- worker ----------------------------------------------------------------------
    def _loop(self, generation: int) -> None:
        while True:
            with self._cond:
                if self._running and generation == self._generation and \
                        not self._work_ready():
                    self._cond.wait(0.2)  # then the periodic checks (stall, max age) run
                    self._check_stall_locked()
                if not self._running or generation != self._generation:
                    return
                seeds, self._seeds = self._seeds, []
                self._seeding += len(seeds)
                ends, self._ends = self._ends, []
                frame = self._newest if (self._newest is not None
                                         and self._newest.seq > self._newest_taken) else None
                if frame is not None:
                    self._newest_taken = frame.seq
            try:
                self._apply_ends(ends)
                for seed in seeds:
                    try:
                        self._seed(seed, generation)
                    finally:
                        self._seeded(seed)
                if frame is not None:
                    self._track_frame(frame)
                self._expire()
            except Exception:  # never let the worker die: tracks must keep being reported
                log.exception("tracking worker step failed")
                self.counters.errors += 1

    def _work_ready(self) -> bool:
        if self._seeds or self._ends:
            return True
        fresh = self._newest is not None and self._newest.seq > self._newest_taken
        return bool(self._tracks) and fresh

    def _check_stall_locked(self) -> None:
        """Tell each track once when the camera stopped sending (reported from the worker)."""
        if not self._tracks or self._stall_reported:
            return
        silent = time.monotonic() - self._last_frame_time
        if silent >= self.stall_s:
            self._stall_reported = True
            for track in self._tracks.values():
                self._ends.append((f"stall:{track.track_id}",
                                   f"camera stopped: no frame for {silent:.1f} s"))

    def _apply_ends(self, ends) -> None:
        for track_id, reason in ends:
            if track_id is None:
                self._end_all(reason)
            elif track_id.startswith("stall:"):
                self._report_stall(track_id[len("stall:"):], reason)
            else:
                self._end(track_id, reason)

    def _seeded(self, seed: _Seed) -> None:
        """Count ``seed`` out of the seeding ones (once: at its registration, else after)."""
        with self._cond:
            if not seed.counted_out:
                seed.counted_out = True
                self._seeding -= 1

    def _current(self, generation: int) -> bool:
        """Tell whether the worker of ``generation`` is still the running one (under lock)."""
        return self._running and generation == self._generation

    def _seed(self, seed: _Seed, generation: int) -> None:
        started = time.perf_counter()
        frame = TrackFrame(lambda: FrameView(seed.image), seed.header, seed.seq,
                           seed.image.nbytes)
        size = (seed.image.shape[1], seed.image.shape[0])
        with self._cond:
            old = self._tracks.get(seed.track_id)
        if seed.resume and old is None:
            return  # ended meanwhile
        tracker = None
        try:  # a tracker that cannot be built (no sam2, no CUDA) is reported like a bad seed
            tracker = self._factory(self.config)
            update = tracker.seed(FrameView(seed.image), seed.box, seed.mask)
        except Exception as exc:
            if tracker is not None:
                tracker.close()
            if seed.resume:
                old.reacquire_asked = False
                return
            self._report_never_started(seed.track_id, seed.request_id, seed.instruction,
                                       f"cannot track: {exc}", size)
            return
        track = _Track(seed.track_id, seed.request_id, seed.instruction, tracker,
                       time.monotonic() if old is None else old.started, size,
                       frames_tracked=0 if old is None else old.frames_tracked,
                       state=TrackState.TRACKING if old is None else old.state,
                       last_stamp_ns=_stamp_ns(seed.header),
                       last_update=None if old is None else old.last_update,
                       last_frame=frame)  # an end during its catch-up is on a camera frame
        with self._cond:  # registered first: a replay step that ends it reports it
            stopped = not self._current(generation) or (
                old is not None and self._tracks.get(seed.track_id) is not old)
            if not stopped:
                if old is None:
                    self.counters.tracks_started += 1
                self._tracks[track.track_id] = track
                self._stall_reported = False
            seed.counted_out = True
            self._seeding -= 1
            reason = self._stop_reason
        if stopped:  # stopped (or ended) while it was seeded: its one end is reported here
            tracker.close()
            if old is None:
                self._report_never_started(seed.track_id, seed.request_id, seed.instruction,
                                           reason, size, frame)
            return
        if old is not None:
            old.tracker.close()
        replay = self.ring.after(seed.seq)
        replayed = 0
        track.frames_tracked += 1  # the answered frame
        for older in replay:
            if not self._holds(track, generation):
                return  # ended or stopped during its catch-up: that end was reported
            update, ok = self._step(track, older, update)
            if not ok:
                return
            track.last_frame = older
            track.frames_tracked += int(update.tracking)
            replayed += 1
        if old is None:
            self.settle_ring_if_idle()
        last = replay[-1] if replay else frame
        track.frames_tracked -= int(update.tracking)  # _report counts the reported frame
        self._report(track, update, last, (time.perf_counter() - started) * 1000.0, replayed)

    def _holds(self, track: _Track, generation: int) -> bool:
        """Tell whether ``track`` is still running in the worker of ``generation``."""
        with self._cond:
            return self._current(generation) and self._tracks.get(track.track_id) is track

    def settle_ring_if_idle(self) -> None:
        """Free the ring once no request waits for a catch-up."""
        with self._cond:
            idle = self._pending == 0 and not self._seeds and not self._seeding
        if idle:
            self.ring.clear()

    def _step(self, track: _Track, frame: TrackFrame, previous: TrackUpdate):
        """One tracker update on ``frame`` (returns the update and whether the track goes on)."""
        try:
            view = frame.view()
        except Exception as exc:  # an undecodable frame: not seen in it, the track goes on
            with self._cond:
                self.counters.errors += 1
            log.warning("frame %d not tracked: %s", frame.seq, exc)
            box = previous.box if previous is not None else None
            return TrackUpdate(TrackState.SEARCHING, box, 0.0,
                               reason=f"frame not readable: {exc}"[:300]), True
        if frame.stamp_ns and frame.stamp_ns < track.last_stamp_ns:
            self._end(track.track_id, "camera time went backwards (a replayed or restarted "
                      "stream): track ended")
            return previous, False
        track.last_stamp_ns = max(track.last_stamp_ns, frame.stamp_ns)
        try:
            update = track.tracker.update(view)
        except TrackerError as exc:
            self._end(track.track_id, f"{exc}: track ended")
            return previous, False
        track.frame_size = view.size
        return update, True

    def _track_frame(self, frame: TrackFrame) -> None:
        with self._cond:
            tracks = list(self._tracks.values())
        if not tracks:
            return
        self.counters.frames_processed += 1
        self.counters.recent.append(time.monotonic())
        if len(self.counters.recent) > 1:
            span = self.counters.recent[-1] - self.counters.recent[0]
            self.counters.fps = (len(self.counters.recent) - 1) / span if span > 0 else 0.0
        reports = []
        for track in tracks:
            if track.last_frame is not None and track.last_frame.seq >= frame.seq:
                continue  # already there (its catch-up replayed this frame)
            started = time.perf_counter()
            update, ok = self._step(track, frame, track.last_update)
            report = self._report(track, update, frame,
                                  (time.perf_counter() - started) * 1000.0) if ok else None
            if report is not None:
                reports.append(report)
        if reports and self.on_frame is not None:
            try:
                self.on_frame(frame, reports)
            except Exception:
                log.exception("frame display failed")

    def _report(self, track: _Track, update: TrackUpdate, frame: TrackFrame, ms: float,
                replayed: int = 0) -> Optional[TrackReport]:
        with self._cond:
            if self._tracks.get(track.track_id) is not track:
                return None  # ended meanwhile (stopped, deactivated): its end was reported
        if update.tracking:
            if track.state is not TrackState.TRACKING:
                self.counters.reacquired += 1
            track.frames_tracked += 1
        elif update.state is TrackState.LOST and track.state is not TrackState.LOST:
            self.counters.losses += 1
        track.state = update.state
        track.last_update = update
        track.last_frame = frame
        self.counters.last_update_ms = ms
        report = TrackReport(track.track_id, track.request_id, track.instruction, update,
                             frame, track.frame_size, track.frames_tracked, ms, replayed)
        self._deliver(report)
        if update.state is TrackState.LOST:
            if self.reacquire == "off":
                self._end(track.track_id, "target lost (track_reacquire: off)")
            elif self.reacquire == "cascade" and not track.reacquire_asked and \
                    time.monotonic() >= track.reacquire_after:
                track.reacquire_asked = True
                try:
                    self.on_reacquire(track.track_id, track.request_id, track.instruction)
                except Exception:
                    log.exception("re-acquisition request failed")
        elif update.tracking:
            track.reacquire_asked = False
        return report

    def _report_stall(self, track_id: str, reason: str) -> None:
        self._no_fps()
        with self._cond:
            track = self._tracks.get(track_id)
        if track is None or track.last_update is None:
            return
        update = TrackUpdate(TrackState.LOST, track.last_update.box, 0.0, reason=reason)
        if track.state is not TrackState.LOST:
            self.counters.losses += 1
        track.state = TrackState.LOST
        self._deliver(TrackReport(track.track_id, track.request_id, track.instruction, update,
                                  track.last_frame, track.frame_size, track.frames_tracked))

    def _expire(self) -> None:
        if self.max_age_s <= 0:
            return
        now = time.monotonic()
        with self._cond:
            old = [t.track_id for t in self._tracks.values()
                   if now - t.started > self.max_age_s]
        for track_id in old:
            self._end(track_id, f"track_max_age_s ({self.max_age_s:g} s) reached")

    def _end(self, track_id: str, reason: str) -> None:
        with self._cond:
            track = self._tracks.pop(track_id, None)
            if track is not None:
                self.counters.tracks_ended += 1
            idle = not self._tracks
        if idle:
            self._no_fps()
        if track is None:
            return
        track.tracker.close()
        box = track.last_update.box if track.last_update is not None else None
        self._deliver(TrackReport(track.track_id, track.request_id, track.instruction,
                                  TrackUpdate(TrackState.ENDED, box, 0.0, reason=reason),
                                  track.last_frame, track.frame_size, track.frames_tracked))

    def _end_all(self, reason: str) -> None:
        for track_id in self.track_ids():
            self._end(track_id, reason)

    def _no_fps(self) -> None:
        """Nothing is tracked now (no track, or the camera stopped): the rate is 0."""
        self.counters.fps = 0.0
        self.counters.recent.clear()

    def _report_never_started(self, track_id, request_id, instruction, reason, size,
                              answered: Optional[TrackFrame] = None) -> None:
        """Report the one ``ended`` message of a track that never started (empty id)."""
        self._deliver(TrackReport(track_id, request_id, instruction,
                                  TrackUpdate(TrackState.ENDED, None, 0.0, reason=reason),
                                  answered, size or (0, 0)))

    def _deliver(self, report: TrackReport) -> None:
        """Hand one report to ``on_report`` (a failing callback is logged, not raised)."""
        try:
            self.on_report(report)
        except Exception:
            log.exception("track report callback failed")


def _stamp_ns(header) -> int:
    """Return a ROS-style header's stamp in nanoseconds (0 when it has none)."""
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return 0
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
