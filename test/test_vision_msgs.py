"""
The answer as standard vision_msgs detections, decoded by a real subscriber in its own process.

vision_msgs is not on PyPI: the tests build an interface package with its messages, field for
field (``test/interfaces/vision_msgs``), with the project's colcon machinery, cached under
``build/`` (``interface_builds``). The node and the listener get that install in their
environment; this process never imports it. The node answers a synthetic RGB-D scene.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import interface_builds

HERE = Path(__file__).resolve().parent
TIMEOUT = 60.0
TOPICS = {"/finers/detections_2d": "Detection2DArray", "/finers/detections_3d": "Detection3DArray",
          "/finers/tracks_2d": "Detection2DArray", "/finers/tracks_3d": "Detection3DArray"}


@pytest.fixture(scope="session")
def vision_msgs_install():
    return interface_builds.build("vision_msgs")


class Listener:
    """``vision_listener.py`` in its own process; the messages it decoded, by topic."""

    def __init__(self, domain: int, install: Path):
        from finers_ros.ros.launcher import ros_environment

        env = dict(ros_environment(domain), **interface_builds.environment(install))
        specs = [f"{topic}={kind}" for topic, kind in TOPICS.items()]
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "vision_listener.py"), *specs], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list = []
        self.messages: dict = {topic: [] for topic in TOPICS}
        self.matched: set = set()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip())
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if "matched" in data:
                    self.matched.add(data["matched"])
                elif "topic" in data:
                    self.messages[data["topic"]].append(data)
                self._cond.notify_all()

    def wait(self, predicate, timeout: float = TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return predicate()
                self._cond.wait(min(left, 0.2))
        return True

    def stamped(self, topic: str, stamp) -> list:
        """Return the decoded messages on ``topic`` with header stamp ``(sec, nanosec)``."""
        with self._cond:
            return [m for m in self.messages[topic]
                    if (m["msg"]["header"]["stamp"]["sec"],
                        m["msg"]["header"]["stamp"]["nanosec"]) == stamp]

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-40:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture(scope="module")
def vision_node(domain, vision_msgs_install):
    from finers_ros.ros.launcher import NodeProcess

    node = NodeProcess(domain, parameters={"depth_enabled": True, "frame_wait_s": 10.0,
                                           "publish_vision_msgs": True,
                                           "target_frame": "base_link"},
                       env=interface_builds.environment(vision_msgs_install))
    yield node
    code = node.stop()
    assert code == 0, node.log()[-2000:]


@pytest.fixture(scope="module")
def rig(domain, vision_node, vision_msgs_install, scene_4k):
    """Yield the client, an RGB-D camera streaming a 4K scene, its record and the listener."""
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.rgbd_camera import RgbdStreamer, rgbd_scene

    listener = Listener(domain, vision_msgs_install)
    client = PerceptionClient(domain_id=domain, name="vision_client")
    image, record = scene_4k
    scene = rgbd_scene(client.frame_message(image, frame_id="camera_color_optical_frame"),
                       record["points"])
    camera = RgbdStreamer(client.node, client.camera, scene)
    try:
        assert client.wait_for_node(TIMEOUT), vision_node.log()[-2000:]
        assert listener.wait(lambda: len(listener.matched) == len(TOPICS)), (
            listener.output(), vision_node.log()[-2000:])
        yield client, camera, record, listener
    finally:
        camera.close()
        client.close()
        listener.stop()


def _ask(client, camera, command):
    """Send ``command`` while the RGB-D camera streams; the Detection that answers it."""
    camera.start()
    try:
        before = len(client.detections)
        client.send(command)
        return client.next_detection(before, TIMEOUT)
    finally:
        camera.stop()


def _stamp(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def _only(listener, topic, stamp):
    assert listener.wait(lambda: listener.stamped(topic, stamp)), listener.output()
    found = listener.stamped(topic, stamp)
    assert len(found) == 1, found
    assert found[0]["type"] == f"vision_msgs.msg._{_module(topic)}.{TOPICS[topic]}"
    return found[0]["msg"]


def _module(topic):
    return {"Detection2DArray": "detection2_d_array",
            "Detection3DArray": "detection3_d_array"}[TOPICS[topic]]


def test_found_answer_as_detection_2d_and_3d(rig):
    client, camera, record, listener = rig
    detection = _ask(client, camera, record["Q"])
    assert detection is not None and detection.found and detection.has_3d, (
        detection and (detection.error, detection.reason_3d))
    stamp = _stamp(detection)
    array_2d = _only(listener, "/finers/detections_2d", stamp)
    assert array_2d["header"]["frame_id"] == "camera_color_optical_frame"
    (one,) = array_2d["detections"]
    assert one["header"] == array_2d["header"] and one["id"] == detection.request_id
    x1, y1, x2, y2 = (float(v) for v in detection.box)
    box = one["bbox"]
    assert box["center"]["position"] == pytest.approx({"x": (x1 + x2) / 2, "y": (y1 + y2) / 2})
    assert (box["size_x"], box["size_y"]) == pytest.approx((x2 - x1 + 1, y2 - y1 + 1))
    assert box["center"]["theta"] == 0.0
    (hypothesis,) = one["results"]
    assert hypothesis["hypothesis"]["class_id"] == record["Q"]
    expected_score = detection.score if math.isfinite(detection.score) else 1.0
    assert hypothesis["hypothesis"]["score"] == pytest.approx(expected_score, rel=1e-6)

    array_3d = _only(listener, "/finers/detections_3d", stamp)
    (one_3d,) = array_3d["detections"]
    assert one_3d["id"] == detection.request_id
    assert array_3d["header"]["frame_id"] == "camera_color_optical_frame"
    centre = one_3d["bbox"]["center"]
    obb = detection.obb_pose
    assert centre["position"] == pytest.approx(
        {"x": obb.position.x, "y": obb.position.y, "z": obb.position.z})
    assert centre["orientation"] == pytest.approx(
        {"x": obb.orientation.x, "y": obb.orientation.y, "z": obb.orientation.z,
         "w": obb.orientation.w})
    size = detection.obb_size
    assert one_3d["bbox"]["size"] == pytest.approx({"x": size.x, "y": size.y, "z": size.z})
    (hypothesis_3d,) = one_3d["results"]
    assert hypothesis_3d["hypothesis"]["class_id"] == record["Q"]
    pose = hypothesis_3d["pose"]
    point = detection.point_3d
    assert pose["pose"]["position"] == pytest.approx({"x": point.x, "y": point.y, "z": point.z})
    covariance = np.array(pose["covariance"]).reshape(6, 6)
    assert np.allclose(covariance[:3, :3], np.array(detection.covariance_3d).reshape(3, 3))
    assert np.allclose(np.diag(covariance)[3:], math.pi ** 2)


def test_no_target_is_an_empty_detection_array(rig):
    client, camera, record, listener = rig
    detection = _ask(client, camera, "find the xyzzy plugh")
    assert detection is not None and not detection.found, detection
    stamp = _stamp(detection)
    assert _only(listener, "/finers/detections_2d", stamp)["detections"] == []
    assert _only(listener, "/finers/detections_3d", stamp)["detections"] == []


def test_found_without_3d_is_a_2d_detection_and_an_empty_3d_array(rig):
    client, camera, record, listener = rig
    camera.with_depth = False  # colour keeps streaming, depth stopped: old frames only
    try:
        detection = _ask(client, camera, record["Q"])
    finally:
        camera.with_depth = True
    assert detection is not None and detection.found and not detection.has_3d, detection
    stamp = _stamp(detection)
    (one,) = _only(listener, "/finers/detections_2d", stamp)["detections"]
    assert one["id"] == detection.request_id
    assert _only(listener, "/finers/detections_3d", stamp)["detections"] == []


def test_tracked_frames_as_detections_with_the_track_id(rig):
    client, camera, record, listener = rig
    before_tracks = len(client.tracks)
    camera.start(hz=4.0)
    try:
        before = len(client.detections)
        client.send(json.dumps({"instruction": record["Q"], "track": True}))
        detection = client.next_detection(before, TIMEOUT)
        assert detection is not None and detection.found, detection and detection.error
        assert client.wait_until(
            lambda: sum(t.state == "tracking" and t.has_3d
                        for t in client.tracks[before_tracks:]) >= 2, TIMEOUT)
    finally:
        camera.stop()
        client.send(json.dumps({"stop_track": "all"}))
    track = next(t for t in client.tracks[before_tracks:] if t.state == "tracking" and t.has_3d)
    # the tracked frame is as grasp-ready as the answer
    assert 0 < track.obb_size.z <= track.obb_size.y <= track.obb_size.x < 0.1
    assert np.trace(np.array(track.covariance_3d).reshape(3, 3)) > 0
    stamp = _stamp(track)
    (one,) = _only(listener, "/finers/tracks_2d", stamp)["detections"]
    assert one["id"] == track.track_id and one["id"].startswith("track-")
    x1, y1, x2, y2 = (float(v) for v in track.box)
    assert (one["bbox"]["size_x"], one["bbox"]["size_y"]) == pytest.approx(
        (x2 - x1 + 1, y2 - y1 + 1))
    (hypothesis,) = one["results"]
    assert hypothesis["hypothesis"]["class_id"] == record["Q"]
    assert hypothesis["hypothesis"]["score"] == pytest.approx(track.confidence, rel=1e-6)
    (one_3d,) = _only(listener, "/finers/tracks_3d", stamp)["detections"]
    assert one_3d["id"] == track.track_id
    assert one_3d["results"][0]["pose"]["pose"]["position"] == pytest.approx(
        {"x": track.point_3d.x, "y": track.point_3d.y, "z": track.point_3d.z})
    assert one_3d["bbox"]["size"] == pytest.approx(
        {"x": track.obb_size.x, "y": track.obb_size.y, "z": track.obb_size.z})


def test_target_frame_without_tf2_is_said_and_the_rest_still_served(rig, vision_node):
    # tf2_ros comes with ROS, not with the PyPI wheels: the node says so once and serves on
    import importlib.util

    if importlib.util.find_spec("tf2_ros") is not None:
        pytest.skip("tf2_ros is installed here: target_frame is served, not refused")
    lines = [line for line in vision_node.log().splitlines() if "target_frame" in line]
    assert len(lines) == 1 and "WARN" in lines[0], lines
    assert "'base_link' is ignored: tf2_ros is not installed" in lines[0]


def test_transform_message_to_rigid_transform():
    from geometry_msgs.msg import Transform

    from finers_ros.ros.target_frame import rigid_transform

    message = Transform()
    message.translation.x, message.translation.z = 0.1, 0.5
    q = message.rotation
    q.x, q.y, q.z, q.w = -0.5, 0.5, -0.5, 0.5  # camera_link -> camera_optical_frame
    body = rigid_transform(message)
    assert body.point((0.2, 0.1, 1.0)) == pytest.approx((1.1, -0.2, 0.4))


def _serving(node) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and node.alive() and "serving:" not in node.log():
        time.sleep(0.2)
    return "serving:" in node.log()


def test_off_or_not_installed_nothing_is_published(domain, vision_msgs_install, rig):
    # without vision_msgs (the venv of make setup) the node says so and serves the rest
    from finers_ros.ros.launcher import NodeProcess

    client = rig[0]
    plain = NodeProcess(domain, parameters={"depth_enabled": True},
                        ros_args=("-r", "__ns:=/plain"))
    off = NodeProcess(domain, parameters={"depth_enabled": True, "publish_vision_msgs": False},
                      ros_args=("-r", "__ns:=/off"),
                      env=interface_builds.environment(vision_msgs_install))
    try:
        assert _serving(plain) and _serving(off), (plain.log()[-2000:], off.log()[-2000:])
        for name in ("/plain", "/off"):
            assert client.wait_until(
                lambda: client.node.count_publishers(f"{name}/finers/detections") == 1, TIMEOUT)
            for topic in TOPICS:
                assert client.node.count_publishers(f"{name}{topic}") == 0, (name, topic)
    finally:
        assert plain.stop() == 0 and off.stop() == 0
    said = [line for line in plain.log().splitlines() if "vision_msgs is not installed" in line]
    assert len(said) == 1 and "finers/detections_2d" in said[0], plain.log()[-2000:]
    assert "vision_msgs" not in off.log()


def test_target_frame_publishes_the_answer_moved_with_the_transform_at_its_stamp(rig):
    # the transform source is asked for the colour frame's own frame and stamp; a static one
    # here (tf2_ros is not on PyPI), answering only for stamp 100 s
    import rclpy
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from finers_ros.depth3d import Target3D
    from finers_ros.msg import Detection
    from finers_ros.rigid_transform import RigidTransform
    from finers_ros.ros.target_frame import POINT_TOPIC, TargetFramePublisher

    client = rig[0]
    node = rclpy.create_node("target_frame_test", namespace="/tf_test", context=client.context)
    client.executor.add_node(node)
    asked, received = [], []
    body = RigidTransform.from_quaternion((0.1, 0.0, 0.5), (-0.5, 0.5, -0.5, 0.5))

    def lookup(header):
        asked.append((header.frame_id, header.stamp.sec, header.stamp.nanosec))
        return (body, "") if header.stamp.sec == 100 else (None, "no transform at that stamp")

    publisher = TargetFramePublisher(node, "base_link", lookup, vision=False)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(PointStamped, POINT_TOPIC, client._keep(received), latched)
    detection = Detection(found=True, instruction="find it", request_id="r1",
                          box=[10.0, 10.0, 20.0, 20.0])
    detection.header.frame_id = "camera_color_optical_frame"
    detection.header.stamp.sec, detection.header.stamp.nanosec = 100, 5
    target = Target3D(point=(0.2, 0.1, 1.0), extent_min=(0.18, 0.09, 0.99),
                      extent_max=(0.22, 0.11, 1.01), valid_pixels=40)
    try:
        publisher.publish(detection, target)
        assert client.wait_until(lambda: received, TIMEOUT)
        (point,) = received
        assert (point.header.frame_id, point.header.stamp.sec, point.header.stamp.nanosec) == (
            "base_link", 100, 5)
        assert (point.point.x, point.point.y, point.point.z) == pytest.approx((1.1, -0.2, 0.4))
        detection.header.stamp.sec = 101  # no transform at this stamp: no point
        publisher.publish(detection, target)
        publisher.publish(detection, Target3D.none("no depth"))  # nothing to move: not asked
        time.sleep(1.0)
        assert len(received) == 1
        assert asked == [("camera_color_optical_frame", 100, 5),
                         ("camera_color_optical_frame", 101, 5)]
    finally:
        publisher.close()
        client.executor.remove_node(node)
        node.destroy_node()


def test_a_broken_vision_msgs_install_costs_only_its_topics(domain, vision_msgs_install, rig):
    # its Python modules found but not its type support libraries: the node serves the rest
    from finers_ros.ros.launcher import NodeProcess

    client = rig[0]
    python_only = {"PYTHONPATH": interface_builds.environment(vision_msgs_install)["PYTHONPATH"]}
    node = NodeProcess(domain, parameters={"depth_enabled": True},
                       ros_args=("-r", "__ns:=/broken"), env=python_only)
    try:
        assert _serving(node), node.log()[-3000:]
        assert client.wait_until(
            lambda: client.node.count_publishers("/broken/finers/detections") == 1, TIMEOUT)
        assert client.node.count_publishers("/broken/finers/detections_2d") == 0
    finally:
        assert node.stop() == 0, node.log()[-2000:]
    said = [line for line in node.log().splitlines() if "vision_msgs cannot be used" in line]
    assert len(said) == 1 and "ERROR" in said[0], node.log()[-3000:]
    assert "rosidl_typesupport_c" in said[0]
