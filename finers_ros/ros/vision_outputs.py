"""
The answer and tracked frames as standard ``vision_msgs`` detections, for other ROS packages.

Topics (relative names, remap them like any ROS topic), reliable, depth 10, the colour
frame's header:

- ``finers/detections_2d``: ``vision_msgs/Detection2DArray`` per answer: one detection when
  the target was found (box centre and sides in native pixels, the instruction as
  ``class_id``, the segmenter's score, the request id as ``id``), none otherwise;
- ``finers/detections_3d``: ``vision_msgs/Detection3DArray`` per answer, with depth on: the
  oriented box and the point with its covariance (``finers_ros.detection_layout``), in the
  colour optical frame; none without a 3D result;
- ``finers/tracks_2d`` / ``finers/tracks_3d``: the same per tracked frame while a track is
  ``tracking`` (the track id as ``id``, the tracker's confidence as score): one array per
  track and frame.

vision_msgs is on every ROS install but not on PyPI: without it (``AVAILABLE`` false) nothing
is published and the node says so once.
"""
from __future__ import annotations

import threading
from typing import Optional

from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..depth3d import Target3D
from ..detection_layout import box_2d, box_3d, hypothesis_score, pose_covariance

try:
    from vision_msgs.msg import (
        BoundingBox2D, BoundingBox3D, Detection2D, Detection2DArray, Detection3D,
        Detection3DArray, ObjectHypothesisWithPose)
    AVAILABLE, MISSING = True, ""
except ImportError as exc:  # a ROS install without ros-$ROS_DISTRO-vision-msgs
    AVAILABLE, MISSING = False, f"{type(exc).__name__}: {exc}"

DETECTIONS_2D_TOPIC = "finers/detections_2d"
DETECTIONS_3D_TOPIC = "finers/detections_3d"
TRACKS_2D_TOPIC = "finers/tracks_2d"
TRACKS_3D_TOPIC = "finers/tracks_3d"


def _hypothesis(class_id: str, score: Optional[float]):
    result = ObjectHypothesisWithPose()
    result.hypothesis.class_id = class_id
    result.hypothesis.score = hypothesis_score(score)
    return result


def detection_2d(header, box, class_id: str, score: Optional[float], object_id: str):
    """Return one Detection2D of an inclusive ``(x1, y1, x2, y2)`` pixel box."""
    layout = box_2d(box)
    bbox = BoundingBox2D(size_x=layout.size_x, size_y=layout.size_y)
    bbox.center.position.x, bbox.center.position.y = layout.centre_x, layout.centre_y
    return Detection2D(header=header, results=[_hypothesis(class_id, score)], bbox=bbox,
                       id=object_id)


def detection_3d(header, target: Target3D, class_id: str, score: Optional[float],
                 object_id: str):
    """Return one Detection3D of a target with a 3D result (box, point, covariance)."""
    layout = box_3d(target)
    x, y, z, w = (float(v) for v in layout.orientation)
    orientation = Quaternion(x=x, y=y, z=z, w=w)
    bbox = BoundingBox3D(
        center=Pose(position=Point(**dict(zip("xyz", map(float, layout.centre)))),
                    orientation=orientation),
        size=Vector3(**dict(zip("xyz", map(float, layout.size)))))
    result = _hypothesis(class_id, score)
    result.pose.pose = Pose(position=Point(**dict(zip("xyz", map(float, target.point)))),
                            orientation=orientation)
    if target.covariance is not None:
        result.pose.covariance = list(pose_covariance(target.covariance))
    return Detection3D(header=header, results=[result], bbox=bbox, id=object_id)


def detection_arrays(header, box, class_id: str, score: Optional[float], object_id: str,
                     target: Optional[Target3D]):
    """
    ``(Detection2DArray, Detection3DArray or None)`` of one target.

    ``box`` None: nothing found, empty arrays. ``target`` None: depth is off, no 3D array;
    without a 3D result the 3D array is empty.
    """
    array_2d = Detection2DArray(header=header)
    if box is not None:
        array_2d.detections = [detection_2d(header, box, class_id, score, object_id)]
    if target is None:
        return array_2d, None
    array_3d = Detection3DArray(header=header)
    if box is not None and target.has_3d:
        array_3d.detections = [detection_3d(header, target, class_id, score, object_id)]
    return array_2d, array_3d


class VisionPublisher:
    """The vision_msgs topics of answers and tracked frames (with ``depth``: the 3D ones)."""

    def __init__(self, node, depth: bool):
        self._node = node
        self._lock = threading.Lock()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        self._publishers = {DETECTIONS_2D_TOPIC: node.create_publisher(
            Detection2DArray, DETECTIONS_2D_TOPIC, qos),
            TRACKS_2D_TOPIC: node.create_publisher(Detection2DArray, TRACKS_2D_TOPIC, qos)}
        if depth:
            self._publishers[DETECTIONS_3D_TOPIC] = node.create_publisher(
                Detection3DArray, DETECTIONS_3D_TOPIC, qos)
            self._publishers[TRACKS_3D_TOPIC] = node.create_publisher(
                Detection3DArray, TRACKS_3D_TOPIC, qos)

    def publish_answer(self, detection, target: Optional[Target3D]) -> None:
        """Publish a Detection's answer (``target``: its 3D result, None with depth off)."""
        found = detection.found and not detection.error
        self._publish(DETECTIONS_2D_TOPIC, DETECTIONS_3D_TOPIC, detection_arrays(
            detection.header, detection.box if found else None, detection.instruction,
            detection.score, detection.request_id, target))

    def publish_track(self, track, target: Optional[Target3D]) -> None:
        """Publish a Track message's frame while it is tracking (``target`` as above)."""
        if track.state != "tracking":
            return
        self._publish(TRACKS_2D_TOPIC, TRACKS_3D_TOPIC, detection_arrays(
            track.header, track.box, track.instruction, track.confidence, track.track_id,
            target))

    def _publish(self, topic_2d: str, topic_3d: str, arrays) -> None:
        array_2d, array_3d = arrays
        with self._lock:
            if not self._publishers:  # closed
                return
            self._publishers[topic_2d].publish(array_2d)
            if array_3d is not None and topic_3d in self._publishers:
                self._publishers[topic_3d].publish(array_3d)

    def close(self) -> None:
        with self._lock:
            for publisher in self._publishers.values():
                self._node.destroy_publisher(publisher)
            self._publishers = {}


def vision_publisher(node, settings) -> Optional[VisionPublisher]:
    """Return the publisher ``publish_vision_msgs`` asks for, or None (said once when missing)."""
    if not settings.publish_vision_msgs:
        return None
    if not AVAILABLE:
        node.get_logger().info(
            f"publish_vision_msgs: vision_msgs is not installed ({MISSING}); the "
            f"{DETECTIONS_2D_TOPIC} and {DETECTIONS_3D_TOPIC} topics are not published "
            f"(install ros-$ROS_DISTRO-vision-msgs)")
        return None
    try:
        return VisionPublisher(node, bool(settings.depth_enabled))
    except Exception as exc:  # its Python modules, but not its type support libraries
        node.get_logger().error(
            f"publish_vision_msgs: vision_msgs cannot be used ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); its topics are not published")
        return None
