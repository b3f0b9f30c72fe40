"""
Messages for a target's 3D result: Detection fields, PointStamped, RViz MarkerArray.

Every message carries the colour frame's header, so the point and markers are in the colour
camera's optical frame (``header.frame_id``) at the frame's stamp, and tf2 can move them to
any other frame (README, "3D position").
"""

from __future__ import annotations

import threading
from typing import Optional

from geometry_msgs.msg import Point, PointStamped, Vector3
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..depth3d import Target3D

POINT_TOPIC = "finers/target_point"
MARKERS_TOPIC = "finers/markers"
MARKER_NAMESPACE = "finers_target"
SPHERE_DIAMETER_M = 0.02
MIN_BOX_SIDE_M = 0.002  # a flat target still shows as a thin box
TEXT_HEIGHT_M = 0.025
LABEL_CHARS = 80


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def fill_detection(detection, target: Optional[Target3D]) -> None:
    """Set a Detection's 3D fields from ``target`` (None: 3D is off, the fields stay empty)."""
    if target is None:
        return
    detection.has_3d = target.has_3d
    detection.reason_3d = " ".join(target.reason.split())[:500]  # one line, whatever raised
    detection.depth_pixels = int(target.valid_pixels)
    if target.has_3d:
        detection.point_3d = _point(target.point)
        detection.extent_min_3d = _point(target.extent_min)
        detection.extent_max_3d = _point(target.extent_max)


def point_message(header: Header, target: Target3D) -> PointStamped:
    """Return the target's point (m, colour optical frame) with the colour frame's header."""
    return PointStamped(header=header, point=_point(target.point))


def label_text(instruction: str, answer: str) -> str:
    """``instruction -> answer`` on one line, shortened for RViz."""
    text = " ".join(instruction.split())
    if answer and answer.strip():
        text = f"{text} -> {' '.join(answer.split())}"
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 3] + "..."


def marker_array(header: Header, target: Target3D, label: str) -> MarkerArray:
    """
    Build a sphere at the point, a box over the extent and a text label above it.

    Without a 3D result: one DELETEALL, so RViz never keeps showing a previous target as if it
    were this one.
    """
    if not target.has_3d:
        return MarkerArray(
            markers=[Marker(header=header, ns=MARKER_NAMESPACE, action=Marker.DELETEALL)]
        )
    low, high = target.extent_min, target.extent_max
    centre = [(a + b) / 2 for a, b in zip(low, high)]
    sides = [max(b - a, MIN_BOX_SIDE_M) for a, b in zip(low, high)]

    def marker(index: int, kind: int, position, scale, colour) -> Marker:
        m = Marker(header=header, ns=MARKER_NAMESPACE, id=index, type=kind, action=Marker.ADD)
        m.pose.position = _point(position)
        m.pose.orientation.w = 1.0
        m.scale = Vector3(x=float(scale[0]), y=float(scale[1]), z=float(scale[2]))
        m.color = ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=colour[3])
        return m

    sphere = marker(0, Marker.SPHERE, target.point, [SPHERE_DIAMETER_M] * 3, (1.0, 0.2, 0.2, 1.0))
    box = marker(1, Marker.CUBE, centre, sides, (0.2, 0.9, 1.0, 0.35))
    above = (target.point[0], low[1] - TEXT_HEIGHT_M, target.point[2])  # y points down
    text = marker(2, Marker.TEXT_VIEW_FACING, above, (0, 0, TEXT_HEIGHT_M), (1.0, 1.0, 1.0, 1.0))
    text.text = label
    return MarkerArray(markers=[sphere, box, text])


class TargetPublisher:
    """The point and marker topics (relative names: remap them like any ROS topic)."""

    def __init__(self, node):
        reliable = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
        )
        self._node = node
        self._lock = threading.Lock()
        self._point = node.create_publisher(PointStamped, POINT_TOPIC, reliable)
        self._markers = node.create_publisher(MarkerArray, MARKERS_TOPIC, reliable)

    def publish(self, header: Header, target: Target3D, instruction: str, answer: str) -> None:
        """Publish the point (only with a 3D result) and markers with the colour frame's header."""
        with self._lock:
            if self._point is None:  # closed
                return
            if target.has_3d:
                self._point.publish(point_message(header, target))
            self._markers.publish(marker_array(header, target, label_text(instruction, answer)))

    def close(self) -> None:
        with self._lock:
            for publisher in (self._point, self._markers):
                if publisher is not None:
                    self._node.destroy_publisher(publisher)
            self._point = self._markers = None
