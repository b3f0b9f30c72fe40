"""
Messages for a target's 3D result: Detection fields, PointStamped, RViz MarkerArray, cloud.

Every message carries the colour frame's header, so the point and markers are in the colour
camera's optical frame (``header.frame_id``) at the frame's stamp, and tf2 can move them to
any other frame (README, "3D position"). The topics are latched (transient local, depth 1):
a subscriber that joins later, RViz opened after an answer, still gets the last result.
"""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np
from geometry_msgs.msg import Point, PointStamped, Pose, Quaternion, Vector3
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..depth3d import Target3D

POINT_TOPIC = "finers/target_point"
MARKERS_TOPIC = "finers/markers"
CLOUD_TOPIC = "finers/target_points"
MARKER_NAMESPACE = "finers_target"
SPHERE_DIAMETER_M = 0.02
MIN_BOX_SIDE_M = 0.002  # a flat target still shows as a thin box
TEXT_HEIGHT_M = 0.025
LABEL_CHARS = 80


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _vector(xyz) -> Vector3:
    return Vector3(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _pose(centre, orientation) -> Pose:
    x, y, z, w = (float(v) for v in orientation)
    return Pose(position=_point(centre), orientation=Quaternion(x=x, y=y, z=z, w=w))


def fill_detection(detection, target: Optional[Target3D]) -> None:
    """
    Set a message's 3D fields from ``target`` (None: 3D is off, the fields stay empty).

    A Detection, or any message with its 3D fields (a Track): the grasp fields (oriented box,
    covariance) are set where the message type has them.
    """
    if target is None:
        return
    detection.has_3d = target.has_3d
    detection.reason_3d = " ".join(target.reason.split())[:500]  # one line, whatever raised
    detection.depth_pixels = int(target.valid_pixels)
    if not target.has_3d:
        return
    detection.point_3d = _point(target.point)
    detection.extent_min_3d = _point(target.extent_min)
    detection.extent_max_3d = _point(target.extent_max)
    if "obb_pose" in type(detection).get_fields_and_field_types() and target.obb_size:
        detection.obb_pose = _pose(target.obb_centre, target.obb_orientation)
        detection.obb_size = _vector(target.obb_size)
        detection.covariance_3d = [float(v) for v in target.covariance]


def point_message(header: Header, target: Target3D) -> PointStamped:
    """Return the target's point (m, colour optical frame) with the colour frame's header."""
    return PointStamped(header=header, point=_point(target.point))


def label_text(instruction: str, answer: str) -> str:
    """``instruction -> answer`` on one line, shortened for RViz."""
    text = " ".join(instruction.split())
    if answer and answer.strip():
        text = f"{text} -> {' '.join(answer.split())}"
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 3] + "..."


def cloud_message(header: Header, points: Optional[np.ndarray]) -> PointCloud2:
    """
    Return ``N x 3`` points (m, optical frame) as an unorganised x, y, z float32 cloud.

    ``None`` or no points: an empty cloud with the same fields (so a latched cloud is cleared).
    """
    xyz = np.zeros((0, 3), "<f4") if points is None else np.asarray(points, "<f4").reshape(-1, 3)
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate("xyz")]
    return PointCloud2(header=header, height=1, width=len(xyz), fields=fields,
                       is_bigendian=False, point_step=12, row_step=12 * len(xyz),
                       data=xyz.tobytes(), is_dense=True)


def marker_array(header: Header, target: Target3D, label: str,
                 namespace: str = MARKER_NAMESPACE) -> MarkerArray:
    """
    Build a sphere at the point, a box over the extent, a label and the oriented box.

    Ids: 0 sphere, 1 axis-aligned extent, 2 text above it, 3 the oriented box (with a
    3D result that has one).

    Without a 3D result: one DELETEALL, so RViz never keeps showing a previous target as if it
    were this one (a tracked target's own ``namespace``: its four ids deleted, the others'
    markers kept).
    """
    if not target.has_3d:
        return delete_markers(header, namespace)
    low, high = target.extent_min, target.extent_max
    centre = [(a + b) / 2 for a, b in zip(low, high)]
    sides = [max(b - a, MIN_BOX_SIDE_M) for a, b in zip(low, high)]

    def marker(index: int, kind: int, position, scale, colour, orientation=(0, 0, 0, 1.0)):
        m = Marker(header=header, ns=namespace, id=index, type=kind, action=Marker.ADD)
        m.pose = _pose(position, orientation)
        m.scale = _vector(scale)
        m.color = ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=colour[3])
        return m

    sphere = marker(0, Marker.SPHERE, target.point, [SPHERE_DIAMETER_M] * 3, (1.0, 0.2, 0.2, 1.0))
    box = marker(1, Marker.CUBE, centre, sides, (0.2, 0.9, 1.0, 0.35))
    above = (target.point[0], low[1] - TEXT_HEIGHT_M, target.point[2])  # y points down
    text = marker(2, Marker.TEXT_VIEW_FACING, above, (0, 0, TEXT_HEIGHT_M), (1.0, 1.0, 1.0, 1.0))
    text.text = label
    if not target.obb_size:
        return MarkerArray(markers=[sphere, box, text])
    oriented = marker(3, Marker.CUBE, target.obb_centre,
                      [max(side, MIN_BOX_SIDE_M) for side in target.obb_size],
                      (1.0, 0.75, 0.1, 0.6), target.obb_orientation)
    return MarkerArray(markers=[sphere, box, text, oriented])


def delete_markers(header: Header, namespace: str = MARKER_NAMESPACE) -> MarkerArray:
    """
    Clear what ``marker_array`` drew in ``namespace``.

    The answer's own namespace: one DELETEALL. Another (a track's): DELETE of its ids only,
    as a DELETEALL clears every namespace on RViz before Iron.
    """
    if namespace == MARKER_NAMESPACE:
        return MarkerArray(markers=[Marker(header=header, ns=namespace,
                                           action=Marker.DELETEALL)])
    return MarkerArray(markers=[Marker(header=header, ns=namespace, id=index,
                                       action=Marker.DELETE) for index in range(4)])


# the last result stays for subscribers that join later (RViz opened after an answer)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


class TargetPublisher:
    """
    The point, marker and (with ``cloud``) target-points topics, latched.

    Relative names: remap them like any ROS topic.
    """

    def __init__(self, node, cloud: bool = False):
        self._node = node
        self._lock = threading.Lock()
        self._point = node.create_publisher(PointStamped, POINT_TOPIC, LATCHED)
        self._markers = node.create_publisher(MarkerArray, MARKERS_TOPIC, LATCHED)
        self._cloud = node.create_publisher(PointCloud2, CLOUD_TOPIC, LATCHED) if cloud else None

    def publish(self, header: Header, target: Target3D, instruction: str, answer: str) -> None:
        """
        Publish point, markers and cloud with the colour frame's header.

        The point only with a 3D result (the latched point is the last target located);
        without one the markers are cleared and the cloud is empty.
        """
        with self._lock:
            if self._point is None:  # closed
                return
            if target.has_3d:
                self._point.publish(point_message(header, target))
            self._markers.publish(marker_array(header, target, label_text(instruction, answer)))
            if self._cloud is not None:
                self._cloud.publish(cloud_message(header, target.points))

    def close(self) -> None:
        with self._lock:
            for publisher in (self._point, self._markers, self._cloud):
                if publisher is not None:
                    self._node.destroy_publisher(publisher)
            self._point = self._markers = self._cloud = None
