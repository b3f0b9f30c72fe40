"""
A recorded 3D episode keeps the CameraInfo of the answered frame, not the newest one.

A camera streams colour, aligned depth and CameraInfo at 20 Hz over real topics, each
CameraInfo marked with its frame's number in ``K[0]``; the node (its own process, bring-up
backend, depth on, recording) answers one instruction while the camera keeps streaming. The
bag's CameraInfo must be the one stamped as the answered frame.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np

from finers_ros.ros.launcher import NodeProcess

TIMEOUT = 60.0
FOCAL = 500.0
FRAME = "camera_color_optical_frame"


def stamped(msg, stamp_ns: int):
    msg.header.frame_id = FRAME
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def test_the_answered_frames_camera_info_is_recorded(domain, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import CameraInfo, Image

    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={
        "record_dir": str(tmp_path), "depth_enabled": True, "frame_policy": "latest",
        "frame_wait_s": 10.0})
    client = PerceptionClient(domain_id=domain, name="info_recording_client")
    depth_pub = client.node.create_publisher(Image, "/camera/aligned_depth/image_raw",
                                             qos_profile_sensor_data)
    info_pub = client.node.create_publisher(CameraInfo, "/camera/camera_info",
                                            qos_profile_sensor_data)
    image = np.full((240, 320, 3), 110, np.uint8)
    image[100:130, 200:230] = (230, 20, 20)
    depth = np.full((240, 320), 800, np.uint16)
    streaming = threading.Event()
    stamps = {}  # CameraInfo K[0] -> the stamp of its frame

    def stream() -> None:
        count = 0
        while not streaming.is_set():
            count += 1
            now = time.time_ns()
            info = CameraInfo(width=320, height=240, distortion_model="plumb_bob", d=[0.0] * 5,
                              k=[FOCAL + count, 0.0, 159.5, 0.0, FOCAL, 119.5, 0.0, 0.0, 1.0])
            stamps[FOCAL + count] = now
            info_pub.publish(stamped(info, now))
            client.publish_frame(stamped(client.frame_message(image), now))
            depth_pub.publish(stamped(Image(encoding="16UC1", height=240, width=320, step=640,
                                            data=depth.tobytes()), now))
            streaming.wait(0.05)

    camera = threading.Thread(target=stream, daemon=True)
    try:
        assert client.wait_for_node(TIMEOUT), node.log()[-2000:]
        camera.start()
        time.sleep(1.5)
        client.send(json.dumps({"instruction": "find the red square", "id": "paired"}))
        detection = client.next_detection(0, TIMEOUT)
        assert detection is not None and detection.found, node.log()[-2000:]
        assert detection.has_3d, detection.reason_3d
        time.sleep(1.0)  # 20 more CameraInfo after the answer
    finally:
        streaming.set()
        camera.join(5)
        client.close()
        code = node.stop()  # finishes the bag
    assert code == 0, node.log()[-2000:]
    bags = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    with AnyReader(bags) as reader:
        infos = [reader.deserialize(raw, conn.msgtype) for conn, _, raw in reader.messages()
                 if conn.topic == "/camera/camera_info"]
    (info,) = infos
    answered = detection.header.stamp.sec * 1_000_000_000 + detection.header.stamp.nanosec
    assert info.header.stamp.sec * 1_000_000_000 + info.header.stamp.nanosec == answered
    assert stamps[info.k[0]] == answered  # its own frame's CameraInfo, by content too
