"""
Camera topics of the launch file: its arguments to remappings of the node's inputs (no ROS).

The node reads relative names (``camera/image_raw``, ``camera/image_raw/compressed``,
``camera/aligned_depth/image_raw``, ``camera/camera_info``). A camera driver publishes
elsewhere; RealSense's ``realsense2_camera`` (ROS 2 wrapper 4.x, ``align_depth.enable:=true``)
publishes under ``/<camera_namespace>/<camera_name>``, by default ``/camera/camera``::

    /camera/camera/color/image_raw                   colour image
    /camera/camera/color/camera_info                 its CameraInfo (K, D, P)
    /camera/camera/aligned_depth_to_color/image_raw  16UC1 depth registered to the colour

``camera_namespace:=/camera/camera`` derives all three from that layout; ``camera_topic``,
``depth_topic`` and ``camera_info_topic`` each name one topic and win over the derived one.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

CAMERA = "camera/image_raw"
COMPRESSED = "camera/image_raw/compressed"
DEPTH = "camera/aligned_depth/image_raw"
CAMERA_INFO = "camera/camera_info"

# Under ``camera_namespace``: the RealSense ROS 2 wrapper's names with aligned depth on.
REALSENSE_COLOUR = "color/image_raw"
REALSENSE_DEPTH = "aligned_depth_to_color/image_raw"
REALSENSE_INFO = "color/camera_info"


def camera_topics(camera_namespace: str = "", camera_topic: str = "", depth_topic: str = "",
                  camera_info_topic: str = "") -> Dict[str, str]:
    """
    Return the topic each of the node's camera inputs reads, by the node's relative name.

    An empty argument means "not given": the topic is derived from ``camera_namespace`` when
    that is given, else the node's own name is kept. The compressed input follows the colour
    topic (``<colour>/compressed``, image_transport's naming).
    """
    base = camera_namespace.strip().rstrip("/")

    def pick(given: str, derived: str, own: str) -> str:
        if given.strip():
            return given.strip()
        return f"{base}/{derived}" if base else own

    colour = pick(camera_topic, REALSENSE_COLOUR, CAMERA)
    return {CAMERA: colour, COMPRESSED: f"{colour}/compressed",
            DEPTH: pick(depth_topic, REALSENSE_DEPTH, DEPTH),
            CAMERA_INFO: pick(camera_info_topic, REALSENSE_INFO, CAMERA_INFO)}


def remappings(topics: Dict[str, str]) -> List[Tuple[str, str]]:
    """``(node's name, topic)`` pairs for the inputs that are not read under their own name."""
    return [(own, topic) for own, topic in topics.items() if own != topic]
