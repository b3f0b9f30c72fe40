"""
The node's outputs in standard message types: vision_msgs detections, the target frame.

One object for the node to hold: created on configure (from ``publish_vision_msgs``,
``target_frame``), fed every answer's Detection and every Track with their 3D results (worker
threads), closed on cleanup. Either part may be absent (switched off, or its ROS package not
installed); then its calls do nothing.
"""
from __future__ import annotations

from typing import Optional

from ..depth3d import Target3D
from .target_frame import target_frame_publisher
from .vision_outputs import vision_publisher


class StandardOutputs:
    """vision_msgs topics (``vision``) and the 3D result in ``target_frame`` (``in_frame``)."""

    def __init__(self, node, settings):
        self.depth = bool(settings.depth_enabled)
        self.vision = vision_publisher(node, settings)
        self.in_frame = target_frame_publisher(node, settings)

    def publish_answer(self, detection, target: Optional[Target3D]) -> None:
        """Publish an answer (``target``: its 3D result; None with depth off)."""
        if self.vision is not None:
            self.vision.publish_answer(detection, target)
        if self.in_frame is not None and target is not None:
            self.in_frame.publish(detection, target)

    def publish_track(self, track, target: Optional[Target3D]) -> None:
        """Publish a tracked frame (``target`` None with depth on: its 3D result failed)."""
        if self.vision is not None:
            if self.depth and target is None:
                target = Target3D.none(track.reason_3d or "no 3D result")
            self.vision.publish_track(track, target)

    def close(self) -> None:
        for part in (self.vision, self.in_frame):
            if part is not None:
                part.close()
        self.vision = self.in_frame = None
