"""
Tracks for RViz: the tracked frame as an overlay image, each track's 3D target as markers.

``finers/tracks/overlay``: one frame with every track's mask, box and state drawn (the
newest tracked frame, at most ``track_overlay_hz`` per second, and only while someone
subscribes: drawing costs a shrink of the 4K frame). ``finers/tracks/markers``: with depth,
each track's point, extent, label and oriented box in its own namespace
``finers_track/<track id>``, deleted when the track stops being seen or ends.
"""
from __future__ import annotations

import threading
import time
from typing import List

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from ..tracking.overlay import draw_tracked_frame
from ..tracking.ring import TrackFrame
from ..tracking.service import TrackReport
from .markers import delete_markers, marker_array
from .messages import rgb_image

TRACK_OVERLAY_TOPIC = "finers/tracks/overlay"
TRACK_MARKERS_TOPIC = "finers/tracks/markers"
TRACK_MARKER_PREFIX = "finers_track/"


def track_label(report: TrackReport) -> str:
    """Return the short text drawn next to a track: its id, else its request id."""
    return report.track_id or report.request_id


class TrackDisplay:
    """The tracks' overlay and marker publishers (called from the tracking worker)."""

    def __init__(self, node):
        self._node = node
        self._lock = threading.Lock()
        self._last_overlay = 0.0
        self._shown: set = set()  # track ids with markers on display
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        self._overlay = node.create_publisher(Image, TRACK_OVERLAY_TOPIC, qos)
        self._markers = node.create_publisher(MarkerArray, TRACK_MARKERS_TOPIC, qos)

    def frame_done(self, frame: TrackFrame, reports: List[TrackReport]) -> None:
        """Publish the overlay of ``frame`` when it is due and someone subscribes."""
        settings = self._node.settings
        hz = settings.track_overlay_hz
        now = time.monotonic()
        with self._lock:
            publisher = self._overlay
            due = publisher is not None and settings.publish_overlay and hz > 0 and \
                now - self._last_overlay >= 1.0 / hz
            if not due or publisher.get_subscription_count() == 0:
                return
            self._last_overlay = now
        image = draw_tracked_frame(frame.view(), [(track_label(r), r.update) for r in reports],
                                   settings.overlay_max_width)
        with self._lock:
            if self._overlay is not None:
                self._overlay.publish(rgb_image(image, frame.header))

    def markers(self, report: TrackReport, header: Header, target) -> None:
        """Show ``report``'s 3D target (``None``: no 3D this frame), or clear its markers."""
        if not report.track_id:
            return  # a track that never started has nothing on display
        namespace = TRACK_MARKER_PREFIX + report.track_id
        if target is not None and target.has_3d and report.update.tracking:
            msg = marker_array(header, target, f"{report.track_id}: "
                                               f"{report.instruction[:60]}", namespace)
            shown = True
        elif report.track_id in self._shown:
            msg, shown = delete_markers(header, namespace), False
        else:
            return
        with self._lock:
            if self._markers is None:
                return
            self._markers.publish(msg)
            if shown:
                self._shown.add(report.track_id)
            else:
                self._shown.discard(report.track_id)

    def close(self) -> None:
        with self._lock:
            for publisher in (self._overlay, self._markers):
                if publisher is not None:
                    self._node.destroy_publisher(publisher)
            self._overlay = self._markers = None
