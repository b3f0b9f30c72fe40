"""
Tracking in the node: the tracking service's reports as ``finers/tracks`` messages.

``NodeTracking`` owns the core ``TrackingService`` for the node's lifetime between configure
and cleanup: frames are offered from the intake callback (nothing decoded there), tracks
start from found outcomes of ``track`` requests, and each report becomes one Track message
with its frame's header, in the tracking worker thread (never in a callback). With depth
enabled, every tracked frame's mask is located in 3D as the Detection's is.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from finers_ros.msg import Track

from ..serving import Outcome
from ..tracking.config import Sam2Config, TrackerConfig
from ..tracking.ring import TrackFrame
from ..tracking.service import TrackingService, TrackReport
from .markers import fill_detection
from .track_display import TrackDisplay

TRACKS_TOPIC = "finers/tracks"


def track_message(report: TrackReport, header: Header) -> Track:
    """One Track message of a report (compact mask as in Detection)."""
    update = report.update
    msg = Track(header=header, request_id=report.request_id, track_id=report.track_id,
                instruction=report.instruction[:4096], state=update.state.value,
                reason=update.reason[:2000], confidence=float(update.confidence),
                frames_tracked=int(report.frames_tracked),
                catch_up_frames=int(report.catch_up_frames), update_ms=float(report.update_ms))
    msg.box = [float(v) for v in update.box] if update.box is not None else [0.0] * 4
    msg.image_width, msg.image_height = (int(v) for v in report.frame_size)
    if update.mask is not None and update.mask.any():
        x0, y0, width, height = (int(v) for v in update.mask_roi)
        msg.mask_roi = RegionOfInterest(x_offset=x0, y_offset=y0, width=width, height=height)
        msg.mask = update.mask.astype(np.uint8).tobytes()
    return msg


def tracker_config(settings) -> TrackerConfig:
    """Return the tracker settings of the node's parameters (``track_sam2_*``: sam2)."""
    return TrackerConfig(backend=settings.tracker_backend, sam2=Sam2Config(
        checkpoint=settings.track_sam2_checkpoint or None,
        model_config=settings.track_sam2_model_config, device=settings.track_sam2_device,
        crop_size=settings.track_sam2_crop_px,
        memory_frames=settings.track_sam2_memory_frames))


def service_options(settings) -> dict:
    """Return the ``TrackingService`` options of the node's ``track_*`` parameters."""
    return {"max_tracks": settings.track_max_tracks, "max_age_s": settings.track_max_age_s,
            "reacquire": settings.track_reacquire, "ring_frames": settings.track_ring_frames,
            "ring_bytes": int(settings.track_ring_mb * 2 ** 20),
            "stall_s": settings.track_stall_s}


class NodeTracking:
    """The node's tracks: service, ``finers/tracks`` publisher, re-acquisition by cascade."""

    def __init__(self, node, settings, depth=None,
                 reacquire: Optional[Callable[[str, str, str], None]] = None, outputs=None):
        self._node = node
        self._depth = depth
        self._outputs = outputs  # StandardOutputs: tracked frames as vision_msgs too
        self._lock = threading.Lock()
        self._stop_all_at = float("-inf")  # time.monotonic() of the last stop_track "all"
        self._logged_state: dict = {}  # track id -> the state last logged (one line a change)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        self._publisher = node.create_publisher(Track, TRACKS_TOPIC, qos)
        self._display = TrackDisplay(node)
        self.service = TrackingService(
            self._publish, tracker_config(settings), on_reacquire=reacquire,
            on_frame=self._display.frame_done, **service_options(settings))

    def put_frame(self, view, header, seq: int, nbytes: int) -> None:
        """Offer a received frame (``view()`` decodes it; called from the intake callback)."""
        stamp = header.stamp
        self.service.put_frame(TrackFrame(view, header, seq, nbytes,
                                          int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)))

    def stop(self, track_id: Optional[str]) -> int:
        """
        End one track, or (None) all: also those asked for and still being answered.

        Returns how many running tracks will end.
        """
        if track_id is None:
            self._stop_all_at = time.monotonic()
        return self.service.stop(track_id)

    def start_from(self, outcome: Outcome) -> None:
        """Start (or refuse, with an ended report) the track a ``track`` request asked for."""
        result = outcome.result
        frame = outcome.frame
        stopped = outcome.request.received <= self._stop_all_at
        if stopped or result.error or not result.found or outcome.image is None or \
                frame is None:
            why = result.error and f"[{result.error_stage}] {result.error}"
            if stopped:
                why = "stopped by client (stop_track all) before the answer came"
            self.service.start(outcome.request.request_id, outcome.request.instruction,
                               outcome.image, frame.seq if frame is not None else 0,
                               frame.header if frame is not None else None, None, None,
                               refusal=why or None)
            self.service.settle()
            if why:
                self._node.get_logger().info(f"no track for {outcome.request.request_id}: "
                                             f"{why}")
            return
        track_id = self.service.start(outcome.request.request_id, outcome.request.instruction,
                                      outcome.image, frame.seq, frame.header, result.box,
                                      result.mask)
        self.service.settle()  # after start: the ring stays until the new track caught up
        if track_id:
            self._node.get_logger().info(f"tracking {outcome.request.instruction[:80]!r} as "
                                         f"{track_id}")

    def resume_from(self, track_id: str, outcome: Outcome) -> None:
        """Re-seed a lost track from a re-acquisition answer (``track_reacquire: cascade``)."""
        result = outcome.result
        frame = outcome.frame
        found = not result.error and result.found and frame is not None
        if not found:  # not found (yet): the service asks again a little later
            self.service.not_reacquired(track_id)
        if not found or not self.service.resume(track_id, outcome.image, frame.seq,
                                                frame.header, result.box, result.mask):
            self._node.get_logger().info(f"{track_id} not re-acquired by the cascade: "
                                         f"{result.error or 'target not found'}")

    def _publish(self, report: TrackReport) -> None:
        """Publish one report (tracking worker thread)."""
        header = report.frame.header if report.frame is not None and \
            report.frame.header is not None else \
            Header(stamp=self._node.get_clock().now().to_msg(), frame_id="")
        msg = track_message(report, header)
        depth = self._depth
        target = None
        if depth is not None and report.update.tracking:
            try:
                target = depth.input.locate(header, report.update.full_mask(report.frame_size))
                fill_detection(msg, target)
            except Exception as exc:  # a 3D problem must not cost the track its message
                msg.has_3d = False
                msg.reason_3d = f"3D failed: {type(exc).__name__}: {exc}"[:500]
        if depth is not None:
            self._display.markers(report, header, target)
        self._log_change(report)
        with self._lock:
            if self._publisher is not None:
                self._publisher.publish(msg)
        outputs = self._outputs
        if outputs is not None:
            try:
                outputs.publish_track(msg, target)
            except Exception as exc:  # publishing after cleanup began, for example
                self._node.get_logger().warning(f"track not published as vision_msgs: {exc}")

    def _log_change(self, report: TrackReport) -> None:
        """Log a track that gets lost or ends, once per change (not every frame it stays so)."""
        key = report.track_id or report.request_id
        state = report.update.state.value
        previous = self._logged_state.get(key)
        if state == "ended":
            self._logged_state.pop(key, None)
        elif state in ("lost", "tracking"):
            self._logged_state[key] = state
        if state in ("lost", "ended") and state != previous:
            self._node.get_logger().info(f"{key} {state}: {report.update.reason}")

    def close(self, reason: str) -> None:
        """End every track (reported) and stop; the publisher goes last."""
        self.service.stop_worker(reason)
        self._display.close()
        with self._lock:
            if self._publisher is not None:
                self._node.destroy_publisher(self._publisher)
            self._publisher = None
