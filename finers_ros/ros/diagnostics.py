"""The node's health as ``finers/status`` (Status) and ``/diagnostics`` (DiagnosticArray)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from finers_ros.msg import Status

from .messages import split_timings


@dataclass
class Counters:
    """What the node counts between status messages (guarded by the node's stats lock)."""

    frames_received: int = 0
    frames_rejected: int = 0
    frames_taken: int = 0  # frames copied from the middleware into the node
    frames_decoded: int = 0  # frames converted to pixels (requests, tracks); idle: none
    last_frame_stamp: Optional[object] = None  # builtin_interfaces/Time of the newest frame
    requests_done: int = 0
    requests_failed: int = 0
    last_timings: dict = field(default_factory=dict)
    last_error: str = ""


def status_message(state: str, pipeline, server, queue_limit: int, counters: Counters,
                   stamp, tracking=None) -> Status:
    """One Status message from the node's state, its pipeline/server, counters and tracks."""
    msg = Status(state=state, model_loaded=pipeline is not None,
                 backend=str(getattr(pipeline, "backend_name", "") or ""),
                 queue_depth=server.queue_depth if server else 0, queue_limit=queue_limit,
                 busy=bool(server and server.busy),
                 abandoned_runs=server.abandoned_runs if server else 0,
                 frames_received=counters.frames_received,
                 frames_rejected=counters.frames_rejected,
                 frames_taken=counters.frames_taken,
                 frames_decoded=counters.frames_decoded,
                 requests_done=counters.requests_done,
                 requests_failed=counters.requests_failed,
                 last_error=counters.last_error[:2000])
    if counters.last_frame_stamp is not None:
        msg.last_frame_stamp = counters.last_frame_stamp
    msg.timing_names = list(counters.last_timings)
    msg.timings_ms = [float(v) for v in counters.last_timings.values()]
    msg.stamp = stamp
    if tracking is not None:
        totals = tracking.counters
        msg.tracks_active = tracking.active
        msg.tracks_started = totals.tracks_started
        msg.track_losses = totals.losses
        msg.track_frames_processed = totals.frames_processed
        msg.track_frames_dropped = totals.frames_dropped
        msg.track_fps = float(totals.fps)
        msg.track_update_ms = float(totals.last_update_ms)
    return msg


def diagnostic_array(status: Status, node_name: str) -> DiagnosticArray:
    """
    Report the same health to diagnostic aggregators.

    ERROR with no model, WARN after a failed request (not after a client's bad input).
    """
    # a client's malformed request ([input]: empty, too long, bad fields) is not the node's
    # health: it stays OK and says so
    client_error = status.last_error.startswith("[input]")
    if status.model_loaded:
        level = DiagnosticStatus.WARN if status.last_error and not client_error else \
            DiagnosticStatus.OK
    else:
        level = DiagnosticStatus.ERROR
    values = [KeyValue(key=k, value=str(v)) for k, v in (
        ("state", status.state), ("backend", status.backend),
        ("queue_depth", status.queue_depth), ("frames_received", status.frames_received),
        ("frames_rejected", status.frames_rejected),
        ("frames_taken", status.frames_taken), ("frames_decoded", status.frames_decoded),
        ("requests_done", status.requests_done),
        ("requests_failed", status.requests_failed), ("tracks_active", status.tracks_active),
        ("track_fps", f"{status.track_fps:.1f}"), ("track_losses", status.track_losses),
        ("track_frames_dropped", status.track_frames_dropped))]
    latency, counts = split_timings(status.timing_names, status.timings_ms)
    values += [KeyValue(key=f"latency_ms/{k}", value=f"{v:.1f}") for k, v in latency.items()]
    values += [KeyValue(key=f"tokens/{k}", value=str(v)) for k, v in counts.items()]
    message = status.last_error[:200] or ("ok" if status.model_loaded else "model not loaded")
    if client_error and status.model_loaded:
        message = f"ok (last client input error: {status.last_error[:160]})"
    return DiagnosticArray(header=Header(stamp=status.stamp), status=[DiagnosticStatus(
        level=level, name=f"{node_name}: FineRS perception", hardware_id="finers_ros",
        message=message, values=values)])


class FrameFlowWatch:
    """
    Says, once per camera match, when a matched camera publisher delivers no frame.

    ``update`` is called periodically with the matched publisher count of the frame
    subscriptions and the frames received so far; it returns a warning text or None.
    """

    def __init__(self, topic: str, warn_after_s: float, profile: str, now: float):
        self.topic = topic
        self.warn_after_s = warn_after_s
        self.profile = profile
        self._activated = now
        self._matched_since: Optional[float] = None
        self._frames_at_match = 0
        self._warned_match = False
        self._warned_none = False

    def update(self, matched: int, frames: int, now: float) -> Optional[str]:
        """Return a warning when one is due now, else None."""
        if matched and self._matched_since is None:  # a camera (re)appeared
            self._matched_since, self._frames_at_match = now, frames
            self._warned_match = False
        elif not matched:
            self._matched_since = None
        if self._matched_since is not None:
            silent_s = now - self._matched_since
            if (not self._warned_match and frames == self._frames_at_match
                    and silent_s >= self.warn_after_s):
                self._warned_match = True
                return (f"{matched} publisher(s) matched on {self.topic} but no frame arrived in "
                        f"{silent_s:.0f} s: large frames (e.g. 4K) from a camera on default "
                        f"Fast DDS are dropped on the camera side; start the camera driver with "
                        f"FASTDDS_DEFAULT_PROFILES_FILE={self.profile} (the shipped "
                        f"config/fastdds_shm.xml)")
        elif not self._warned_none and frames == 0 and now - self._activated >= self.warn_after_s:
            self._warned_none = True
            return f"no publisher on {self.topic} after {now - self._activated:.0f} s"
        return None
