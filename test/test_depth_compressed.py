"""
3D from a rectified colour image that comes compressed, its compressed topic remapped.

``image_transport: compressed`` with ``camera/image_raw/compressed`` remapped to a rectified
image's compressed topic: ``depth_camera_model: auto`` must read the topic the node takes
(``/cam/image_rect/compressed``, without image_transport's ``/compressed``), so the rectified
pixels are back-projected with ``P``. The node runs in its own process over real topics.
"""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np

from finers_ros.ros.launcher import NodeProcess

TIMEOUT = 60.0
WIDTH, HEIGHT = 640, 480
K = [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]
D = [-0.3, 0.0, 0.0, 0.0, 0.0]
P = [440.0, 0.0, 319.5, 0.0, 0.0, 440.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]


def stamped(msg, stamp_ns: int):
    msg.header.frame_id = "cam"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def test_auto_reads_the_remapped_compressed_topic(domain):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={"depth_enabled": True, "image_transport": "compressed",
                                           "frame_wait_s": 10.0},
                       ros_args=("-r", "camera/image_raw/compressed:=/cam/image_rect/compressed",
                                 "-r", "camera/aligned_depth/image_raw:=/cam/depth",
                                 "-r", "camera/camera_info:=/cam/camera_info"))
    client = PerceptionClient(domain_id=domain, name="compressed_rect_client")
    colour_pub = client.node.create_publisher(CompressedImage, "/cam/image_rect/compressed",
                                              qos_profile_sensor_data)
    depth_pub = client.node.create_publisher(Image, "/cam/depth", qos_profile_sensor_data)
    info_pub = client.node.create_publisher(CameraInfo, "/cam/camera_info",
                                            qos_profile_sensor_data)
    image = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
    image[380:420, 540:580] = (20, 20, 230)  # red, in OpenCV's BGR: near a corner
    ok, png = cv2.imencode(".png", image)
    assert ok
    depth = np.full((HEIGHT, WIDTH), 1000, np.uint16)  # 1 m
    streaming = threading.Event()

    def stream() -> None:
        while not streaming.is_set():
            now = time.time_ns()
            info_pub.publish(stamped(CameraInfo(width=WIDTH, height=HEIGHT, k=K, d=D, p=P,
                                                distortion_model="plumb_bob"), now))
            colour_pub.publish(stamped(CompressedImage(format="png", data=png.tobytes()), now))
            depth_pub.publish(stamped(Image(encoding="16UC1", height=HEIGHT, width=WIDTH,
                                            step=2 * WIDTH, data=depth.tobytes()), now))
            streaming.wait(0.1)

    camera = threading.Thread(target=stream, daemon=True)
    try:
        assert client.wait_for_node(TIMEOUT, camera=False), node.log()[-2000:]
        camera.start()
        time.sleep(1.0)
        client.send(json.dumps({"instruction": "find the red square", "id": "rect"}))
        detection = client.next_detection(0, TIMEOUT)
    finally:
        streaming.set()
        camera.join(5)
        client.close()
        code = node.stop()
    log = node.log()
    assert code == 0, log[-2000:]
    assert "/cam/image_rect/compressed are rectified images" in log, log[-2000:]
    assert detection is not None and detection.found and detection.has_3d, log[-2000:]
    truth = np.array([(559.5 - P[2]) / P[0], (399.5 - P[6]) / P[5], 1.0])  # P's pinhole
    point = np.array([detection.point_3d.x, detection.point_3d.y, detection.point_3d.z])
    assert np.linalg.norm(point - truth) < 0.005, (point, truth)
