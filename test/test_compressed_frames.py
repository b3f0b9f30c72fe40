"""
Oversized compressed frames over ROS: refused from their header, in one line, not decoded.

The node (its own process, ``image_transport: compressed``) gets a 300 kB PNG of 20000x12000
zeros (decoded, it took 7 s and kept 1.4 GB) and a PNG header declaring 40000x40000 (OpenCV
raised its multi-line assertion); each answer is a one-line frame error naming the size,
and the next good frame is answered.
"""
from __future__ import annotations

import json
import struct
import time
import zlib

import cv2
import numpy as np

from finers_ros.ros.launcher import NodeProcess

TIMEOUT = 60.0


def png_of_zeros(width: int, height: int, rows: int) -> bytes:
    """Return a grey PNG declaring ``width x height``, ``rows`` rows of zeros in it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    pixels = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def test_oversized_compressed_frames_are_refused_in_one_line(domain):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={"image_transport": "compressed",
                                           "frame_policy": "latest", "frame_wait_s": 5.0})
    client = PerceptionClient(domain_id=domain, name="compressed_frames_client")
    frames = client.node.create_publisher(CompressedImage, "/camera/image_raw/compressed",
                                          qos_profile_sensor_data)
    good = np.full((240, 320, 3), 110, np.uint8)
    good[100:130, 200:230] = (20, 20, 230)  # a red square (BGR)
    cases = [("20000x12000", png_of_zeros(20000, 12000, 12000)),
             ("40000x40000", png_of_zeros(40000, 40000, 2)),
             ("good", cv2.imencode(".png", good)[1].tobytes())]
    answers = []
    try:
        assert client.wait_for_node(TIMEOUT, camera=False), node.log()[-2000:]
        for name, data in cases:
            msg = CompressedImage(format="png", data=data)
            msg.header.frame_id = "cam"
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10 ** 9)
            frames.publish(msg)
            time.sleep(0.5)  # the newest frame the middleware holds
            count = len(client.detections)
            start = time.monotonic()
            client.send(json.dumps({"instruction": "find the red square", "id": name}))
            answers.append((client.next_detection(count, TIMEOUT), time.monotonic() - start))
    finally:
        client.close()
        code = node.stop()
    log = node.log()
    assert code == 0, log[-2000:]
    for (name, _), (detection, seconds) in zip(cases[:2], answers):
        assert detection is not None and detection.request_id == name, log[-2000:]
        assert detection.error_stage == "frame" and name in detection.error, detection.error
        assert "16384" in detection.error and "\n" not in detection.error
        assert seconds < 5.0  # refused from the header, not decoded
        (line,) = [line for line in log.splitlines() if f"instruction {name} " in line]
        assert line.rstrip().endswith("not decoded"), line
    good_answer, _ = answers[2]
    assert good_answer is not None and good_answer.found, good_answer
