"""
A synthetic RGB-D camera over ROS: colour, aligned depth and CameraInfo with paired stamps.

``finers-demo`` and the tests stand in for an RGB-D driver with it. The scene's depth is a
plane at a known distance with the target's pixels raised towards the camera, so the
target's 3D position is known (``finers_ros.data.synthetic_depth``). Depth is published at
half the colour resolution, as ``16UC1`` millimetres, registered to the colour camera.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Tuple

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..data.annotations import gt_mask
from ..data.synthetic_depth import camera_for, corrupt, depth_to_16uc1, raised_mask_scene
from ..depth3d import CameraModel, Vec3
from .depth_input import CAMERA_INFO_TOPIC, DEPTH_TOPIC


def depth_message(depth_m: np.ndarray, frame_id: str, encoding: str = "16UC1") -> Image:
    """Encode ``h x w`` metres as a ``16UC1`` (mm) or ``32FC1`` (m) Image."""
    pixels = depth_to_16uc1(depth_m) if encoding == "16UC1" else depth_m.astype(np.float32)
    height, width = pixels.shape
    return Image(
        header=Header(frame_id=frame_id),
        encoding=encoding,
        height=height,
        width=width,
        step=width * pixels.itemsize,
        data=pixels.tobytes(),
    )


def camera_info_message(camera: CameraModel, frame_id: str) -> CameraInfo:
    """Return a distortion-free CameraInfo (K, identity R, P = [K | 0]) of ``camera``."""
    k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    return CameraInfo(
        header=Header(frame_id=frame_id),
        width=camera.width,
        height=camera.height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k,
        r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        p=k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0],
    )


@dataclass
class RgbdScene:
    """Messages of one RGB-D frame and the target's known centre (m, colour optical frame)."""

    colour: Image
    depth: Image
    info: CameraInfo
    centre: Vec3


def rgbd_scene(
    colour_msg: Image, polygon_points, plane_z: float = 1.0, raised_m: float = 0.03, seed: int = 0
) -> RgbdScene:
    """
    Build the RGB-D frame of a synthetic colour scene.

    ``polygon_points``: the target's outline (annotation polygons, native pixels). The camera
    has a 69-degree field of view; depth comes at half the colour resolution.
    """
    width, height = colour_msg.width, colour_msg.height
    colour_camera = camera_for(width, height)
    mask = gt_mask(polygon_points, (width, height))
    depth_camera = colour_camera.scaled_to(width // 2, height // 2)
    scene = raised_mask_scene(depth_camera, mask, plane_z=plane_z, height=raised_m)
    depth = corrupt(scene, np.random.default_rng(seed), edge_px=1)
    frame_id = colour_msg.header.frame_id
    return RgbdScene(
        colour_msg,
        depth_message(depth, frame_id),
        camera_info_message(colour_camera, frame_id),
        scene.centre,
    )


class RgbdStreamer:
    """
    Publish an ``RgbdScene`` from a thread, as a driver would.

    Each colour frame goes with a depth frame stamped ``depth_offset_ms`` later and the
    CameraInfo, restamped each time.
    """

    def __init__(
        self,
        node,
        colour_publisher,
        scene: RgbdScene,
        depth_offset_ms: float = 7.0,
        namespace: str = "",
    ):
        self._node = node
        self.colour_publisher = colour_publisher
        self.scene = scene
        prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
        self.depth_publisher = node.create_publisher(
            Image, f"{prefix}/{DEPTH_TOPIC}", qos_profile_sensor_data
        )
        self.info_publisher = node.create_publisher(
            CameraInfo, f"{prefix}/{CAMERA_INFO_TOPIC}", qos_profile_sensor_data
        )
        self.offset_ns = int(depth_offset_ms * 1e6)
        self.with_depth = True
        self._stop = None

    def publish_once(self) -> Tuple[int, int]:
        """Publish one restamped triple; its (colour, depth) stamps in ns."""
        now = time.time_ns()
        scene = self.scene
        for msg, stamp in (
            (scene.colour, now),
            (scene.depth, now + self.offset_ns),
            (scene.info, now),
        ):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.info_publisher.publish(scene.info)
        if self.with_depth:
            self.depth_publisher.publish(scene.depth)
        self.colour_publisher.publish(scene.colour)
        return now, now + self.offset_ns

    def start(self, hz: float = 3.0) -> None:
        self.stop()
        stop = threading.Event()
        self._stop = stop

        def loop() -> None:
            while not stop.is_set():
                self.publish_once()
                stop.wait(1.0 / hz)

        threading.Thread(target=loop, daemon=True).start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None

    def close(self) -> None:
        self.stop()
        self._node.destroy_publisher(self.depth_publisher)
        self._node.destroy_publisher(self.info_publisher)
