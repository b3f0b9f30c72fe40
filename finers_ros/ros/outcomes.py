"""
Publishing one outcome: Detection, full-resolution mask and overlay, with the frame's header.

Runs in the serving worker thread. ``close()`` (from the node's cleanup) and ``publish()``
share a lock, so a publisher is never used while it is being destroyed.
"""
from __future__ import annotations

import threading

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from finers_ros.msg import Detection

from ..overlay import draw_overlay
from ..serving import Outcome
from .markers import fill_detection
from .messages import detection_message, mask_image, outcome_header, rgb_image

DETECTIONS_TOPIC = "finers/detections"
MASK_TOPIC = "finers/mask"
OVERLAY_TOPIC = "finers/overlay"


class OutcomePublisher:
    """The node's three outcome topics (relative names: remap them like any ROS topic)."""

    def __init__(self, node):
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST)
        images = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                            history=HistoryPolicy.KEEP_LAST)
        self._node = node
        self._lock = threading.Lock()
        self._publishers = {
            "detections": node.create_publisher(Detection, DETECTIONS_TOPIC, reliable),
            "mask": node.create_publisher(Image, MASK_TOPIC, images),
            "overlay": node.create_publisher(Image, OVERLAY_TOPIC, images),
        }

    def publish(self, outcome: Outcome, settings, target_3d=None) -> Detection:
        """Publish ``outcome`` (mask/overlay as ``settings`` say); returns its Detection."""
        result = outcome.result
        header = outcome_header(outcome, self._node.get_clock().now().to_msg())
        detection = detection_message(outcome, header)
        fill_detection(detection, target_3d)  # 3D fields; None: depth is off
        with self._lock:
            publishers = self._publishers
            if not publishers:  # closed: the node is cleaning up or shutting down
                return detection
            publishers["detections"].publish(detection)
            if outcome.image is None:
                return detection
            if settings.publish_mask:
                publishers["mask"].publish(mask_image(result.mask, outcome.image.shape, header))
            if settings.publish_overlay:
                label = "bring-up backend" if "bringup" in (result.backend or "") \
                    else result.backend
                overlay = draw_overlay(outcome.image, result, settings.overlay_max_width, label)
                publishers["overlay"].publish(rgb_image(overlay, header))
        return detection

    def close(self) -> None:
        """Destroy the publishers (waits for a publish in progress)."""
        with self._lock:
            for publisher in self._publishers.values():
                self._node.destroy_publisher(publisher)
            self._publishers = {}
