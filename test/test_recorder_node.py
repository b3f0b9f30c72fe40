"""
Recordings of the node in its own process: what the camera sent, depth and CameraInfo, QoS.

A camera publishes a Bayer frame with aligned depth and CameraInfo, a big-endian 16-bit frame
and a JPEG on the compressed topic over real topics; the node (bring-up backend, depth on,
the deprecated ``subscribe_compressed`` that takes both transports, ``use_sim_time`` with a
``/clock`` publisher) records each answered instruction. The bag is read with rosbags.
"""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest

from finers_ros.ros.launcher import NodeProcess

TIMEOUT = 90.0
SIM_START_S = 1000  # /clock starts here: log times on the node's clock are near it


def bayer_rggb(image: np.ndarray) -> np.ndarray:
    """Mosaic ``H x W x 3`` RGB into one ``H x W`` RGGB Bayer plane (what the sensor sees)."""
    plane = np.empty(image.shape[:2], np.uint8)
    plane[0::2, 0::2] = image[0::2, 0::2, 0]
    plane[0::2, 1::2] = image[0::2, 1::2, 1]
    plane[1::2, 0::2] = image[1::2, 0::2, 1]
    plane[1::2, 1::2] = image[1::2, 1::2, 2]
    return plane


@pytest.fixture(scope="module")
def recording(domain, scene_4k, tmp_path_factory):
    """Run the episodes; yield (bag folder, sent messages by name, the node's log)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.rgbd_camera import RgbdStreamer, rgbd_scene

    record_dir = tmp_path_factory.mktemp("episodes")
    node = NodeProcess(domain, parameters={
        "record_dir": str(record_dir), "depth_enabled": True, "subscribe_compressed": True,
        "frame_policy": "latest", "frame_wait_s": 20.0, "use_sim_time": True,
        "status_period_s": 0.5})
    client = PerceptionClient(domain_id=domain, name="recording_client")
    clock = client.node.create_publisher(Clock, "/clock", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE))
    ticking = threading.Event()

    def tick() -> None:
        start = time.monotonic()
        while not ticking.is_set():
            now = SIM_START_S + time.monotonic() - start
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = int(now), int(now % 1 * 1e9)
            clock.publish(msg)
            ticking.wait(0.02)

    threading.Thread(target=tick, daemon=True).start()
    compressed = client.node.create_publisher(CompressedImage, "/camera/image_raw/compressed",
                                              qos_profile_sensor_data)
    sent = {}
    try:
        assert client.wait_for_node(TIMEOUT), node.log()[-3000:]
        image, record = scene_4k
        colour = client.frame_message(image, frame_id="camera_color_optical_frame")
        bayer = bayer_rggb(image)
        colour.encoding, colour.step, colour.data = "bayer_rggb8", bayer.shape[1], bayer.tobytes()
        scene = rgbd_scene(colour, record["points"])
        camera = RgbdStreamer(client.node, client.camera, scene)
        time.sleep(1.0)  # depth and CameraInfo publishers matched
        sent["bayer"], sent["bayer_depth"], sent["bayer_info"] = ask(
            client, camera.publish_once, lambda: (scene.colour, scene.depth, scene.info),
            record["Q"], "bayer")
        wide = np.random.default_rng(1).integers(0, 65535, (120, 160, 3), np.uint16)
        big_endian = Image(header=Header(), height=120, width=160, encoding="rgb16",
                           is_bigendian=1, step=160 * 6, data=wide.astype(">u2").tobytes())
        big_endian.header.frame_id = "camera_color_optical_frame"
        sent["rgb16"] = ask(client, lambda: client.camera.publish(restamp(big_endian)),
                            lambda: big_endian, "find the blue bolt", "rgb16")
        ok, jpeg = cv2.imencode(".jpg", image[1000:1240, 1600:1920])
        assert ok
        jpeg_msg = CompressedImage(header=Header(), format="jpeg", data=jpeg.tobytes())
        jpeg_msg.header.frame_id = "camera_color_optical_frame"
        sent["jpeg"] = ask(client, lambda: compressed.publish(restamp(jpeg_msg)),
                           lambda: jpeg_msg, "find the green circle", "jpeg")
        camera.close()
    finally:
        ticking.set()
        client.close()
        code = node.stop()
    log = node.log()
    assert code == 0, log[-3000:]
    # bags are finished after 30 s without episodes: a slow answer may start another one
    bags = sorted(path for path in record_dir.iterdir() if path.is_dir())
    assert bags and all((path / "metadata.yaml").is_file() for path in bags)
    yield bags, sent, log


def restamp(msg):
    """Stamp ``msg`` now (wall clock, as a camera driver would)."""
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
    return msg


def ask(client, publish, messages, instruction: str, request_id: str):
    """Publish a frame, ask about it (frame_policy latest), wait for the answer's Detection."""
    publish()
    time.sleep(1.0)  # the frame is the newest the middleware holds
    count = len(client.detections)
    client.send(json.dumps({"instruction": instruction, "id": request_id}))
    detection = client.next_detection(count, TIMEOUT)
    assert detection is not None and detection.request_id == request_id
    assert detection.error_stage != "frame", detection.error
    return messages()


def read(bags):
    from rosbags.highlevel import AnyReader

    with AnyReader(bags) as reader:
        connections = {c.topic: c for c in reader.connections}
        messages = {}
        for conn, log_ns, raw in reader.messages():
            messages.setdefault(conn.topic, []).append((log_ns, bytes(raw),
                                                        reader.deserialize(raw, conn.msgtype)))
    return connections, messages


def same_message(recorded, sent) -> bool:
    """
    Compare a message read back with rosbags field by field with the rclpy one sent.

    Not the CDR bytes: their alignment padding is whatever was in memory.
    """
    for name in type(sent).get_fields_and_field_types():
        mine, theirs = getattr(recorded, name), getattr(sent, name)
        if hasattr(theirs, "get_fields_and_field_types"):
            if not same_message(mine, theirs):
                return False
        elif isinstance(mine, np.ndarray) or not isinstance(theirs, (str, int, float)):
            if np.asarray(mine).tobytes() != np.asarray(theirs).tobytes():
                return False
        elif mine != theirs:
            return False
    return True


def test_frames_are_recorded_as_the_camera_sent_them(recording):
    bag, sent, log = recording
    assert "subscribe_compressed is deprecated" in log
    connections, messages = read(bag)
    assert connections["/camera/image_raw"].msgtype == "sensor_msgs/msg/Image"
    assert connections["/camera/image_raw/compressed"].msgtype == \
        "sensor_msgs/msg/CompressedImage"
    raw_frames = [m for _, _, m in messages["/camera/image_raw"]]
    assert [m.encoding for m in raw_frames] == ["bayer_rggb8", "rgb16"]
    assert [m.is_bigendian for m in raw_frames] == [0, 1]
    for name, frame in zip(("bayer", "rgb16"), raw_frames):
        assert same_message(frame, sent[name]), name  # every field, the pixels byte for byte
    ((_, _, jpeg),) = messages["/camera/image_raw/compressed"]
    assert jpeg.format == "jpeg" and same_message(jpeg, sent["jpeg"])


def test_depth_and_camera_info_of_the_answered_frame_are_recorded(recording):
    bag, sent, _ = recording
    connections, messages = read(bag)
    assert connections["/camera/aligned_depth/image_raw"].msgtype == "sensor_msgs/msg/Image"
    assert connections["/camera/camera_info"].msgtype == "sensor_msgs/msg/CameraInfo"
    (depth_log, _, depth), = messages["/camera/aligned_depth/image_raw"]
    (info_log, _, info), = messages["/camera/camera_info"]
    assert same_message(depth, sent["bayer_depth"]) and same_message(info, sent["bayer_info"])
    frame_log = messages["/camera/image_raw"][0][0]
    assert info_log < depth_log < frame_log  # as a driver publishes them: replayed in order


def test_topic_metadata_carries_the_offered_qos(recording):
    from rosbags.interfaces import QosDurability, QosReliability

    bag, _, _ = recording
    connections, _ = read(bag)
    camera = connections["/camera/image_raw"].ext.offered_qos_profiles
    assert camera and camera[0].reliability == QosReliability.BEST_EFFORT
    assert camera[0].durability == QosDurability.VOLATILE  # history and depth: not discovered
    depth = connections["/camera/aligned_depth/image_raw"].ext.offered_qos_profiles
    assert depth and depth[0].reliability == QosReliability.BEST_EFFORT
    detections = connections["/finers/detections"].ext.offered_qos_profiles
    assert detections and detections[0].reliability == QosReliability.RELIABLE
    assert detections[0].durability == QosDurability.VOLATILE
    assert "offered_qos_profiles" in (bag[0] / "metadata.yaml").read_text()


def test_log_times_are_on_the_nodes_clock(recording):
    bag, _, _ = recording
    _, messages = read(bag)
    stamps = [log_ns for entries in messages.values() for log_ns, _, _ in entries]
    assert len(stamps) >= 11
    # sim time from /clock, not the wall clock (which is ~1.8e18 ns)
    assert all(SIM_START_S * 10 ** 9 <= t < (SIM_START_S + 600) * 10 ** 9 for t in stamps)


def test_a_3d_episode_replays_from_the_bag(recording):
    """The recorded depth and CameraInfo give the recorded Detection's 3D point again."""
    from finers_ros.depth3d import DepthOptions, locate_target
    from finers_ros.ros.depth_input import camera_model
    from finers_ros.ros.image_codec import depth_to_metres
    from finers_training.bags import read_episodes

    bag, _, _ = recording
    episodes = {e.request_id: e for e in read_episodes(bag)}
    assert set(episodes) == {"bayer", "rgb16", "jpeg"}
    assert all(e.image is not None for e in episodes.values())
    episode = episodes["bayer"]
    assert episode.detection.found and episode.image.shape == (2160, 3840, 3)
    _, messages = read(bag)
    (_, _, detection), = [m for m in messages["/finers/detections"]
                          if m[2].request_id == "bayer"]
    assert detection.has_3d, detection.reason_3d
    (_, _, depth), = messages["/camera/aligned_depth/image_raw"]
    (_, _, info), = messages["/camera/camera_info"]
    metres = depth_to_metres(depth.encoding, depth.width, depth.height, depth.step, depth.data,
                             bool(depth.is_bigendian))
    target = locate_target(episode.detection.mask, metres, camera_model(info, "raw"),
                           DepthOptions())
    point = (detection.point_3d.x, detection.point_3d.y, detection.point_3d.z)
    assert target.point == pytest.approx(point, abs=1e-6)
