"""
The 3D answer also in another frame (``target_frame``), through tf2.

With ``target_frame`` set and depth on, each answer's 3D result (optical frame of the colour
camera, ``header.frame_id``) is moved into ``target_frame`` with the transform tf2 has *at the
colour frame's stamp* (not the latest one: the robot moved since), waiting up to
``target_frame_timeout_s`` for it. Published (relative names, latched like the point):

- ``finers/in_target_frame/target_point``: ``geometry_msgs/PointStamped``;
- ``finers/in_target_frame/detections_3d``: ``vision_msgs/Detection3DArray`` (oriented box,
  point and covariance), when vision_msgs is installed and ``publish_vision_msgs`` is on.

Both carry the colour frame's stamp and ``frame_id`` = ``target_frame``. A transform that
cannot be had leaves the point unpublished and the detection array empty, with a throttled
warning saying why. The conversion itself is ``finers_ros.rigid_transform``. tf2_ros is on
every ROS install but not on PyPI: without it, ``target_frame`` is reported and ignored.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Tuple

from geometry_msgs.msg import PointStamped
from rclpy.duration import Duration
from rclpy.time import Time
from std_msgs.msg import Header

from ..depth3d import Target3D
from ..rigid_transform import RigidTransform, target_in_frame
from . import vision_outputs
from .markers import LATCHED, point_message

try:
    import tf2_ros
    TF2_MISSING = ""
except ImportError as exc:  # tf2_ros comes with ROS, not with the PyPI wheels
    tf2_ros = None
    TF2_MISSING = f"{type(exc).__name__}: {exc}"

POINT_TOPIC = "finers/in_target_frame/target_point"
DETECTIONS_3D_TOPIC = "finers/in_target_frame/detections_3d"
WARN_EVERY_S = 5.0


def rigid_transform(transform) -> RigidTransform:
    """Return a ``geometry_msgs/Transform`` (translation m, unit quaternion) as a transform."""
    t, q = transform.translation, transform.rotation
    return RigidTransform.from_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


class Tf2Lookup:
    """Transforms from tf2 (``/tf``, ``/tf_static``) into ``frame``, at a header's stamp."""

    def __init__(self, node, frame: str, timeout_s: float):
        self.frame = frame
        self.timeout = Duration(seconds=float(timeout_s))
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)

    def __call__(self, header) -> Tuple[Optional[RigidTransform], str]:
        """``(transform into frame, "")`` at ``header``'s stamp, or ``(None, why)``."""
        try:
            stamped = self._buffer.lookup_transform(self.frame, header.frame_id,
                                                    Time.from_msg(header.stamp), self.timeout)
        except tf2_ros.TransformException as exc:
            return None, f"no transform {header.frame_id!r} -> {self.frame!r} at the frame's " \
                         f"stamp: {' '.join(str(exc).split())[:300]}"
        return rigid_transform(stamped.transform), ""

    def close(self) -> None:
        unregister = getattr(self._listener, "unregister", None)
        if unregister is not None:
            unregister()


class TargetFramePublisher:
    """
    Publishes each 3D answer moved into ``frame``.

    ``lookup(header)`` gives ``(RigidTransform or None, why)``: the transform from the
    header's frame into ``frame`` at its stamp (``Tf2Lookup`` on a ROS install).
    """

    def __init__(self, node, frame: str, lookup: Callable, vision: bool):
        self._node = node
        self.frame = frame
        self.lookup = lookup
        self._lock = threading.Lock()
        # the vision_msgs one first: when its type support fails, nothing was created
        self._detections = node.create_publisher(
            vision_outputs.Detection3DArray, DETECTIONS_3D_TOPIC, LATCHED) if vision else None
        self._point = node.create_publisher(PointStamped, POINT_TOPIC, LATCHED)

    def publish(self, detection, target: Target3D) -> None:
        """Publish a Detection's 3D result in ``frame`` (worker thread)."""
        header = Header(stamp=detection.header.stamp, frame_id=self.frame)
        moved, why = None, "" if target.has_3d else target.reason
        if target.has_3d:
            transform, why = self.lookup(detection.header)
            moved = target_in_frame(target, transform) if transform is not None else None
        if why and target.has_3d:
            self._node.get_logger().warning(f"target_frame: {why}",
                                            throttle_duration_sec=WARN_EVERY_S)
        with self._lock:
            if self._point is None:  # closed
                return
            if moved is not None:
                self._point.publish(point_message(header, moved))
            if self._detections is not None:
                found = detection.found and not detection.error
                _, array = vision_outputs.detection_arrays(
                    header, detection.box if found and moved is not None else None,
                    detection.instruction, detection.score, detection.request_id,
                    moved or Target3D.none(why))
                self._detections.publish(array)

    def close(self) -> None:
        with self._lock:
            for publisher in (self._point, self._detections):
                if publisher is not None:
                    self._node.destroy_publisher(publisher)
            self._point = self._detections = None
        close = getattr(self.lookup, "close", None)
        if close is not None:
            close()


def target_frame_publisher(node, settings) -> Optional[TargetFramePublisher]:
    """Return the publisher ``target_frame`` asks for, or None (said once when it cannot be)."""
    frame = settings.target_frame.strip()
    if not frame:
        return None
    if not settings.depth_enabled:
        node.get_logger().warning(f"target_frame {frame!r} is ignored: it needs depth_enabled")
        return None
    if tf2_ros is None:
        node.get_logger().warning(
            f"target_frame {frame!r} is ignored: tf2_ros is not installed ({TF2_MISSING}); "
            f"install ros-$ROS_DISTRO-tf2-ros")
        return None
    vision = bool(settings.publish_vision_msgs and vision_outputs.AVAILABLE)
    try:
        lookup = Tf2Lookup(node, frame, settings.target_frame_timeout_s)
        try:
            return TargetFramePublisher(node, frame, lookup, vision)
        except Exception:  # vision_msgs without its type support: the point alone
            return TargetFramePublisher(node, frame, lookup, False)
    except Exception as exc:  # a broken tf2_ros install
        node.get_logger().error(f"target_frame {frame!r} is ignored: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:300]}")
        return None
