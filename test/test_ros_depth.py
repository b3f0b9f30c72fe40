"""
3D target position over ROS.

Depth input, pairing, point and marker messages, and the node in its own process answering
with a 3D point for a synthetic RGB-D scene.

Isolated ROS domain, loopback-only discovery, the shipped shared-memory Fast DDS profile.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from finers_ros.data.synthetic_depth import (
    camera_for,
    corrupt,
    depth_to_16uc1,
    disc_scene,
    raised_mask_scene,
)
from finers_ros.depth3d import Target3D, locate_target

HERE = Path(__file__).resolve().parent
TIMEOUT = 60.0
COLOUR = camera_for(640, 480)
CENTRE = (0.02, 0.01, 1.0)


def header(stamp_ns, frame_id="camera_color_optical_frame"):
    from std_msgs.msg import Header

    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return msg


def camera_info(camera, stamp_ns=0, k=None, model="plumb_bob", d=(0.0,) * 5):
    from sensor_msgs.msg import CameraInfo

    k = k if k is not None else [camera.fx, 0, camera.cx, 0, camera.fy, camera.cy, 0, 0, 1]
    return CameraInfo(
        header=header(stamp_ns),
        width=camera.width,
        height=camera.height,
        distortion_model=model,
        d=list(d),
        k=[float(v) for v in k],
    )


def depth_image(depth_m, stamp_ns, encoding="16UC1"):
    from sensor_msgs.msg import Image

    if encoding == "16UC1":
        pixels = depth_to_16uc1(depth_m)
    else:
        pixels = depth_m.astype(np.float32)
    height, width = pixels.shape
    return Image(
        header=header(stamp_ns),
        encoding=encoding,
        height=height,
        width=width,
        step=width * pixels.itemsize,
        data=pixels.tobytes(),
    )


def disc_depth(seed=0):
    tilt = (0.0, -math.sin(math.radians(20)), -math.cos(math.radians(20)))
    scene = disc_scene(COLOUR, CENTRE, 0.02, tilt, height=0.03)
    return scene, corrupt(scene, np.random.default_rng(seed))


# -- messages -------------------------------------------------------------------------------
def test_markers_point_and_detection_fields():
    from finers_ros.msg import Detection
    from finers_ros.ros.markers import fill_detection, label_text, marker_array, point_message
    from visualization_msgs.msg import Marker

    half_turn_z = (0.0, 0.0, math.sin(math.radians(15)), math.cos(math.radians(15)))
    target = Target3D(
        point=(0.1, -0.2, 1.5),
        extent_min=(0.08, -0.22, 1.49),
        extent_max=(0.12, -0.18, 1.5),
        valid_pixels=321,
        obb_centre=(0.101, -0.199, 1.497),
        obb_orientation=half_turn_z,
        obb_size=(0.05, 0.02, 0.0005),
        covariance=(4e-5, 1e-6, 0, 1e-6, 9e-6, 0, 0, 0, 2e-7),
    )
    head = header(1_700_000_000_500_000_000)
    point = point_message(head, target)
    assert point.header == head and (point.point.x, point.point.y, point.point.z) == target.point
    markers = marker_array(head, target, label_text("find  the red\nscrew", "a screw"))
    sphere, box, text, oriented = markers.markers
    assert [m.type for m in markers.markers] == [
        Marker.SPHERE,
        Marker.CUBE,
        Marker.TEXT_VIEW_FACING,
        Marker.CUBE,
    ]
    assert all(m.header == head and m.action == Marker.ADD for m in markers.markers)
    assert len({m.id for m in markers.markers}) == 4
    o = oriented.pose.orientation
    assert (o.x, o.y, o.z, o.w) == half_turn_z and oriented.pose.position.z == 1.497
    assert (oriented.scale.x, oriented.scale.y) == (0.05, 0.02)
    assert oriented.scale.z == pytest.approx(0.002)  # a flat box still shows
    assert (sphere.pose.position.x, sphere.pose.position.z) == (0.1, 1.5)
    assert box.pose.position.x == pytest.approx(0.10) and box.scale.x == pytest.approx(0.04)
    assert box.scale.z == pytest.approx(0.01) and box.color.a < 1.0
    assert text.text == "find the red screw -> a screw" and text.pose.position.y < -0.22
    detection = Detection()
    fill_detection(detection, target)
    assert detection.has_3d and detection.depth_pixels == 321 and detection.reason_3d == ""
    assert (detection.extent_max_3d.x, detection.point_3d.z) == (0.12, 1.5)
    pose = detection.obb_pose
    assert (pose.position.x, pose.position.y, pose.position.z) == target.obb_centre
    assert (pose.orientation.x, pose.orientation.z, pose.orientation.w) == (
        0.0, half_turn_z[2], half_turn_z[3])
    assert (detection.obb_size.x, detection.obb_size.z) == (0.05, 0.0005)
    assert list(detection.covariance_3d) == list(target.covariance)


def test_track_messages_get_the_grasp_fields_as_detections_do():
    # a tracked frame is as grasp-ready as the answer: oriented box and covariance too
    from finers_ros.msg import Track
    from finers_ros.ros.markers import fill_detection

    msg = Track()
    turn = (0.0, 0.0, math.sin(math.radians(10)), math.cos(math.radians(10)))
    fill_detection(msg, Target3D(point=(0.0, 0.1, 1.0), extent_min=(0.0, 0.1, 1.0),
                                 extent_max=(0.0, 0.1, 1.0), valid_pixels=9,
                                 obb_centre=(0.0, 0.12, 1.0), obb_orientation=turn,
                                 obb_size=(0.02, 0.01, 0.001),
                                 covariance=(4e-5, 0, 0, 0, 9e-6, 0, 0, 0, 1e-7)))
    assert msg.has_3d and msg.point_3d.y == 0.1 and msg.depth_pixels == 9
    assert msg.obb_pose.position.y == 0.12 and msg.obb_pose.orientation.z == turn[2]
    assert (msg.obb_size.x, msg.obb_size.y, msg.obb_size.z) == (0.02, 0.01, 0.001)
    assert list(msg.covariance_3d) == [4e-5, 0, 0, 0, 9e-6, 0, 0, 0, 1e-7]


def test_target_points_as_point_cloud():
    from finers_ros.ros.markers import cloud_message
    from sensor_msgs.msg import PointField

    points = np.array([[0.1, -0.2, 1.5], [0.11, -0.19, 1.49], [0.0, 0.0, 2.0]], np.float32)
    head = header(1_700_000_000_000_000_123)
    cloud = cloud_message(head, points)
    assert cloud.header == head and (cloud.height, cloud.width) == (1, 3)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
    ]
    assert cloud.point_step == 12 and cloud.row_step == 36 and cloud.is_dense
    assert not cloud.is_bigendian
    decoded = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 3)
    assert np.array_equal(decoded, points)
    empty = cloud_message(head, None)
    assert (empty.width, len(empty.data)) == (0, 0) and len(empty.fields) == 3


def test_without_3d_markers_are_cleared_and_detection_says_why():
    from finers_ros.msg import Detection
    from finers_ros.ros.markers import fill_detection, label_text, marker_array
    from visualization_msgs.msg import Marker

    target = Target3D.none("no depth frame within 50 ms of the colour frame")
    (clear,) = marker_array(header(5), target, "x").markers
    assert clear.action == Marker.DELETEALL
    detection = Detection()
    fill_detection(detection, target)
    assert not detection.has_3d and "within 50 ms" in detection.reason_3d
    untouched = Detection()
    fill_detection(untouched, None)  # 3D off: the message is as before
    assert untouched == Detection()
    multi_line = Detection()  # e.g. an OpenCV error text: reason_3d stays one line
    fill_detection(multi_line, Target3D.none("3D failed: error: (-215)\n  in 'undistort'\n"))
    assert multi_line.reason_3d == "3D failed: error: (-215) in 'undistort'"
    long_label = label_text("x" * 500, "")
    assert len(long_label) == 80 and long_label.endswith("...")


# -- the depth input, in this process -------------------------------------------------------
@pytest.fixture
def depth_input(domain):
    import rclpy
    from rclpy.context import Context

    from finers_ros.ros.depth_input import DepthInput

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("depth_input_test", context=context)
    depth = DepthInput(node, slop_s=0.05)
    depth.subscribe()
    yield depth
    depth.close()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


T0 = 1_700_000_000_000_000_000


def test_depth_input_locates_the_target_of_the_paired_frame(depth_input):
    scene, depth = disc_depth()
    depth_input._on_info(camera_info(COLOUR))
    far = np.full_like(depth, 3.0)
    for ms in (0, 33, 66):  # only the frame at 33 ms shows the target
        depth_input._on_depth(depth_image(depth if ms == 33 else far, T0 + ms * 1_000_000))
    result = depth_input.locate(header(T0 + 40_000_000), scene.target_mask)
    assert result.has_3d and np.linalg.norm(np.subtract(result.point, CENTRE)) < 0.005, result
    assert not depth_input._warned  # same frame_id: registered depth, nothing to say


def test_depth_in_another_frame_is_refused(depth_input):
    # unregistered depth would give a point in the wrong place: no point, the reason, one log
    scene, depth = disc_depth()
    depth_input._on_info(camera_info(COLOUR))
    msg = depth_image(depth, T0)
    msg.header.frame_id = "camera_depth_optical_frame"
    depth_input._on_depth(msg)
    for _ in range(2):
        result = depth_input.locate(header(T0), scene.target_mask)
        assert not result.has_3d and "'camera_depth_optical_frame'" in result.reason
        assert "'camera_color_optical_frame'" in result.reason and "registered" in result.reason
    (warning,) = depth_input._warned
    assert "'camera_depth_optical_frame'" in warning


def test_camera_info_of_another_camera_is_refused(depth_input):
    scene, depth = disc_depth()
    info = camera_info(COLOUR)
    info.header.frame_id = "camera_depth_optical_frame"  # the depth camera's calibration
    depth_input._on_info(info)
    depth_input._on_depth(depth_image(depth, T0))
    result = depth_input.locate(header(T0), scene.target_mask)
    assert not result.has_3d and "CameraInfo frame_id 'camera_depth_optical_frame'" in (
        result.reason
    ), result.reason


def test_unaligned_depth_size_is_refused(depth_input):
    # a D400's 848x480 depth stream next to 1280x720 colour: 0.6 % off in aspect, not aligned
    colour = camera_for(1280, 720)
    depth_input._on_info(camera_info(colour))
    depth_input._on_depth(depth_image(np.full((480, 848), 1.0, np.float32), T0))
    mask = np.zeros((720, 1280), bool)
    mask[300:340, 600:660] = True
    result = depth_input.locate(header(T0), mask)
    assert not result.has_3d and "848x480 is not 1280x720 scaled" in result.reason, result.reason


# a distorted asymmetric colour camera (k1 = -0.3) and its rectified projection P
K_DISTORTED = [1000.0, 0, 950.0, 0, 990.0, 530.0, 0, 0, 1]
D_DISTORTED = [-0.3, 0.08, 0.001, -0.002, 0.0]
P_RECTIFIED = [880.0, 0, 940.0, 0, 0, 875.0, 525.0, 0, 0, 0, 1, 0]


def rectified_inputs():
    """Return CameraInfo (K, D, P), depth registered into P, the mask and the disc's centre."""
    from finers_ros.depth3d import CameraModel

    pinhole = CameraModel(880.0, 875.0, 940.0, 525.0, 1920, 1080)  # P's pinhole
    centre = (0.55, 0.3, 1.0)
    tilt = (0.0, -math.sin(math.radians(20)), -math.cos(math.radians(20)))
    scene = disc_scene(pinhole, centre, 0.02, tilt, height=0.03)
    info = camera_info(pinhole, k=K_DISTORTED, d=D_DISTORTED)
    info.p = P_RECTIFIED
    return info, corrupt(scene, np.random.default_rng(7)), scene.target_mask, centre


@pytest.mark.parametrize(
    "setting, remap, kind",
    [
        ("auto", "/cam/color/image_rect", "rectified"),
        ("rectified", "/cam/color/image_raw", "rectified"),
        ("auto", "/cam/color/image_raw", "raw"),
    ],
)
def test_rectified_colour_is_back_projected_with_p(domain, setting, remap, kind):
    # the colour topic remapped to a rectified image: auto reads the remapped name
    import rclpy
    from rclpy.context import Context

    from finers_ros.ros.depth_input import DepthInput

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node(
        "depth_rect_test", context=context,
        cli_args=["--ros-args", "-r", f"camera/image_raw:={remap}"],
    )
    depth_input = DepthInput(node, slop_s=0.05, camera_image=setting,
                             colour_topic="camera/image_raw")
    try:
        assert depth_input.colour_topic == remap and depth_input.image == kind
        info, depth, mask, centre = rectified_inputs()
        depth_input._on_info(info)
        depth_input._on_depth(depth_image(depth, T0, encoding="32FC1"))
        result = depth_input.locate(header(T0), mask)
        error_mm = 1000 * np.linalg.norm(np.subtract(result.point, centre))
        if kind == "rectified":
            assert result.has_3d and error_mm < 5.0, (error_mm, result.reason)
        else:  # these pixels are rectified: taken as raw, K and D put the point centimetres off
            assert error_mm > 15.0
    finally:
        depth_input.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_pinned_depth_survives_a_long_run(depth_input):
    # the worker takes the colour frame (decode pins its depth); 40 more depth frames arrive
    # while the model runs; the outcome still gets the depth of its own frame
    scene, depth = disc_depth(1)
    depth_input._on_info(camera_info(COLOUR))
    depth_input._on_depth(depth_image(depth, T0))
    decode = depth_input.pinning(lambda: "pixels", header(T0 + 10_000_000))
    assert decode() == "pixels"
    for i in range(1, 41):
        depth_input._on_depth(depth_image(np.full_like(depth, 2.0), T0 + i * 33_000_000))
    result = depth_input.locate(header(T0 + 10_000_000), scene.target_mask)
    assert result.has_3d and abs(result.point[2] - CENTRE[2]) < 0.01, result
    # an unpinned old stamp has fallen out of the bounded buffer
    lost = depth_input.locate(header(T0 + 100_000_000), scene.target_mask)
    assert (
        not lost.has_3d
        and "no depth frame on /camera/aligned_depth/image_raw within" in lost.reason
    )


def test_depth_published_after_the_outcome_is_ready_still_pairs(depth_input):
    # drivers publish aligned depth some 100 ms after colour (registration takes time); a fast
    # model is done before the frame's depth arrives: the node waits for it, briefly
    scene, depth = disc_depth(2)
    depth_input._on_info(camera_info(COLOUR))
    depth_input._on_depth(depth_image(np.full_like(depth, 3.0), T0 - 400_000_000))  # streaming
    assert depth_input.pinning(lambda: "pixels", header(T0))() == "pixels"
    late = threading.Timer(0.2, depth_input._on_depth, [depth_image(depth, T0 + 5_000_000)])
    late.start()
    result = depth_input.locate(header(T0), scene.target_mask)
    late.join()
    assert result.has_3d and abs(result.point[2] - CENTRE[2]) < 0.01, result


def test_late_depth_of_a_long_run_is_pinned_when_it_arrives(depth_input):
    # nothing within the slop when the worker takes the colour frame; its depth arrives after,
    # then 40 more frames push it out of the buffer while the model runs
    scene, depth = disc_depth(3)
    depth_input._on_info(camera_info(COLOUR))
    depth_input._on_depth(depth_image(np.full_like(depth, 3.0), T0 - 400_000_000))
    depth_input.pinning(lambda: None, header(T0))()
    depth_input._on_depth(depth_image(depth, T0 + 5_000_000))
    for i in range(1, 41):
        depth_input._on_depth(depth_image(np.full_like(depth, 2.0), T0 + i * 33_000_000))
    result = depth_input.locate(header(T0), scene.target_mask)
    assert result.has_3d and abs(result.point[2] - CENTRE[2]) < 0.01, result


def test_no_wait_for_depth_that_cannot_come(depth_input):
    # no depth publisher at all, or a newer frame already outside the slop: answer at once
    from finers_ros.ros.depth_input import LATE_DEPTH_WAIT_S

    scene, depth = disc_depth()
    depth_input._on_info(camera_info(COLOUR))
    start = time.monotonic()
    assert "received" in depth_input.locate(header(T0), scene.target_mask).reason
    depth_input._on_depth(depth_image(depth, T0 + 300_000_000))
    assert "300 ms away" in depth_input.locate(header(T0), scene.target_mask).reason
    assert time.monotonic() - start < LATE_DEPTH_WAIT_S / 2


@pytest.mark.parametrize(
    "case, reason",
    [
        ("no camera info", "no CameraInfo received on /camera/camera_info"),
        ("zero K", "K is all zero"),
        ("unknown distortion", "distortion model 'fancy_model' is not handled"),
        ("no depth", "no depth frame on /camera/aligned_depth/image_raw received"),
        ("depth too old", "nearest is 200 ms away"),
        ("bad depth encoding", "unsupported depth encoding 'rgb8'"),
        ("no mask", "no target mask"),
    ],
)
def test_depth_input_reasons(depth_input, case, reason):
    scene, depth = disc_depth()
    mask = scene.target_mask
    if case != "no camera info":
        k = [0.0] * 9 if case == "zero K" else None
        model, d = ("fancy_model", (0.1, 0, 0, 0)) if case == "unknown distortion" else ("", ())
        depth_input._on_info(camera_info(COLOUR, k=k, model=model, d=d))
    if case not in ("no depth", "bad depth encoding"):
        depth_input._on_depth(
            depth_image(depth, T0 - 200_000_000 if case == "depth too old" else T0)
        )
    if case == "bad depth encoding":
        bad = depth_image(depth, T0)
        bad.encoding = "rgb8"
        depth_input._on_depth(bad)
    if case == "no mask":
        mask = np.zeros_like(mask)
    result = depth_input.locate(header(T0), mask)
    assert not result.has_3d and reason in result.reason, result.reason


def test_camera_info_at_colour_resolution_with_half_resolution_depth():
    # what the node computes for finers-demo: a 4K colour frame, depth at 1920x1080
    colour = camera_for(3840, 2160)
    mask = np.zeros((2160, 3840), bool)
    mask[1000:1030, 2000:2024] = True
    scene = raised_mask_scene(colour.scaled_to(1920, 1080), mask, plane_z=1.0, height=0.03)
    result = locate_target(mask, scene.depth_m, colour)
    assert result.has_3d and np.linalg.norm(np.subtract(result.point, scene.centre)) < 0.002


def test_rviz_config_shows_the_3d_target():
    import yaml

    config = yaml.safe_load((HERE.parent / "rviz" / "finers.rviz").read_text())
    displays = {d["Topic"]["Value"]: d for d in config["Visualization Manager"]["Displays"]
                if "Topic" in d}
    from finers_ros.ros.markers import MARKERS_TOPIC, POINT_TOPIC
    from finers_ros.ros.track_display import TRACK_MARKERS_TOPIC, TRACK_OVERLAY_TOPIC

    assert displays[MARKERS_TOPIC]["Class"] == "rviz_default_plugins/MarkerArray"
    assert displays[POINT_TOPIC]["Class"] == "rviz_default_plugins/PointStamped"
    # the 3D displays take the latched last result: RViz opened after an answer shows it
    for topic in (MARKERS_TOPIC, POINT_TOPIC):
        assert displays[topic]["Topic"]["Durability Policy"] == "Transient Local"
    # tracked targets: the tracked frame and each track's 3D target
    assert displays[TRACK_MARKERS_TOPIC]["Class"] == "rviz_default_plugins/MarkerArray"
    assert displays[TRACK_OVERLAY_TOPIC]["Class"] == "rviz_default_plugins/Image"


def test_rviz_config_topics_resolve_in_the_namespace():
    # relative names: RViz launched in the node's namespace sees the node's topics
    import yaml

    config = yaml.safe_load((HERE.parent / "rviz" / "finers.rviz").read_text())
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]
              if "Topic" in d]
    assert len(topics) >= 5 and all(not topic.startswith("/") for topic in topics), topics
    assert "camera/image_raw" in topics


# -- the node in its own process, over real topics -----------------------------------------
@pytest.fixture(scope="module")
def rgbd_node(domain):
    from finers_ros.ros.launcher import NodeProcess

    node = NodeProcess(
        domain,
        parameters={"depth_enabled": True, "frame_wait_s": 10.0, "publish_target_points": True},
    )
    yield node
    code = node.stop()
    assert code == 0, node.log()[-2000:]


@pytest.fixture(scope="module")
def rgbd(domain, rgbd_node, scene_4k):
    """Yield the client, an RGB-D camera streaming a 4K scene and the target's 3D centre."""
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from visualization_msgs.msg import MarkerArray

    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.rgbd_camera import RgbdStreamer, rgbd_scene

    client = PerceptionClient(
        domain_id=domain, name="rgbd_client", camera_topic="/camera/image_raw"
    )
    image, record = scene_4k
    scene = rgbd_scene(
        client.frame_message(image, frame_id="camera_color_optical_frame"), record["points"]
    )
    camera = RgbdStreamer(client.node, client.camera, scene)
    points, markers = [], []
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    client.node.create_subscription(
        PointStamped, "/finers/target_point", client._keep(points), reliable
    )
    client.node.create_subscription(
        MarkerArray, "/finers/markers", client._keep(markers), reliable
    )
    try:
        assert client.wait_for_node(TIMEOUT), rgbd_node.log()[-2000:]
        yield client, camera, record, scene.centre, points, markers
    finally:
        camera.close()
        client.close()


def _ask_while_streaming(client, camera, question):
    """Send ``question`` while the RGB-D camera streams; the Detection that answers it."""
    camera.start()
    try:
        before = len(client.detections)
        client.send(question)
        return client.next_detection(before, TIMEOUT)
    finally:
        camera.stop()


def stamp_of(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def test_node_publishes_3d_point_and_markers_with_the_colour_frames_stamp(rgbd):
    client, camera, record, centre, points, markers = rgbd
    detection = _ask_while_streaming(client, camera, record["Q"])
    assert detection is not None and detection.found, detection and detection.error
    assert detection.has_3d and detection.reason_3d == "", detection.reason_3d
    point = (detection.point_3d.x, detection.point_3d.y, detection.point_3d.z)
    assert np.linalg.norm(np.subtract(point, centre)) < 0.01, (point, centre)
    assert detection.depth_pixels > 20
    assert detection.extent_min_3d.z <= point[2] <= detection.extent_max_3d.z
    stamp = stamp_of(detection)
    assert detection.header.frame_id == "camera_color_optical_frame"
    assert client.wait_until(lambda: any(stamp_of(p) == stamp for p in points), 30)
    assert client.wait_until(lambda: any(stamp_of(m.markers[0]) == stamp for m in markers), 30)
    point_msg = [p for p in points if stamp_of(p) == stamp][-1]
    assert point_msg.header.frame_id == "camera_color_optical_frame"
    assert (point_msg.point.x, point_msg.point.y, point_msg.point.z) == point
    marker_msg = [m for m in markers if stamp_of(m.markers[0]) == stamp][-1]
    assert [m.type for m in marker_msg.markers] == [2, 1, 9, 1]  # sphere, cube, text, box
    assert record["Q"][:20] in marker_msg.markers[2].text
    # grasp-ready fields: the oriented box around the point, the spread's covariance
    obb = detection.obb_pose.position
    assert np.linalg.norm(np.subtract((obb.x, obb.y, obb.z), point)) < 0.01
    q = detection.obb_pose.orientation
    assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1.0) < 1e-6
    size = detection.obb_size
    assert 0 < size.z <= size.y <= size.x < 0.1
    covariance = np.array(detection.covariance_3d).reshape(3, 3)
    assert np.allclose(covariance, covariance.T) and np.trace(covariance) > 0


def _late_subscriber(client, kind, topic, store):
    """Subscribe now, as RViz opened after the answer would (transient local, depth 1)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return client.node.create_subscription(kind, topic, client._keep(store), latched)


def test_a_late_subscriber_gets_the_last_point_markers_and_cloud(rgbd):
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import MarkerArray

    client, camera, record, centre, points, markers = rgbd
    detection = _ask_while_streaming(client, camera, record["Q"])
    assert detection is not None and detection.has_3d, detection and detection.reason_3d
    stamp = stamp_of(detection)
    assert client.wait_until(lambda: any(stamp_of(p) == stamp for p in points), 30)
    late_points, late_markers, late_clouds = [], [], []
    subscriptions = [
        _late_subscriber(client, PointStamped, "/finers/target_point", late_points),
        _late_subscriber(client, MarkerArray, "/finers/markers", late_markers),
        _late_subscriber(client, PointCloud2, "/finers/target_points", late_clouds),
    ]
    try:
        assert client.wait_until(lambda: late_points and late_markers and late_clouds, 30), (
            len(late_points), len(late_markers), len(late_clouds))
    finally:
        for subscription in subscriptions:
            client.node.destroy_subscription(subscription)
    assert [stamp_of(late_points[0]), stamp_of(late_markers[0].markers[0])] == [stamp, stamp]
    assert late_points[0].point.z == detection.point_3d.z
    cloud = late_clouds[0]
    assert stamp_of(cloud) == stamp and cloud.header.frame_id == detection.header.frame_id
    xyz = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 3)
    assert 10 < len(xyz) <= detection.depth_pixels
    assert np.linalg.norm(np.median(xyz, 0) - np.array(centre)) < 0.01


def test_node_says_why_without_a_depth_frame_in_the_slop(rgbd):
    client, camera, record, centre, points, markers = rgbd
    camera.with_depth = False  # colour keeps streaming, depth stopped: old frames only
    try:
        detection = _ask_while_streaming(client, camera, record["Q"])
    finally:
        camera.with_depth = True
    assert detection is not None and detection.found
    assert not detection.has_3d and "no depth frame on /camera/aligned_depth/image_raw" in (
        detection.reason_3d
    ), detection.reason_3d
    stamp = stamp_of(detection)
    assert client.wait_until(
        lambda: any(stamp_of(m.markers[0]) == stamp and m.markers[0].action == 3 for m in markers),
        30,
    )


def test_a_tracked_target_is_shown_in_rviz_as_overlay_and_markers_then_cleared(rgbd):
    """A track's frames on finers/tracks/overlay, its 3D target in its own marker namespace."""
    import json

    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import Marker, MarkerArray

    client, camera, record, centre, points, markers = rgbd
    overlays, track_markers = [], []
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    subscriptions = [
        client.node.create_subscription(Image, "/finers/tracks/overlay",
                                        client._keep(overlays), reliable),
        client.node.create_subscription(MarkerArray, "/finers/tracks/markers",
                                        client._keep(track_markers), reliable),
    ]
    camera.start()
    try:
        client.send(json.dumps({"instruction": record["Q"], "track": True, "id": "shown-1"}))

        def tracked():
            return [t for t in client.tracks if t.request_id == "shown-1" and t.has_3d]
        assert client.wait_until(lambda: len(tracked()) >= 3 and overlays and track_markers,
                                 TIMEOUT), (len(tracked()), len(overlays), len(track_markers))
        track_id = tracked()[0].track_id
        namespace = f"finers_track/{track_id}"
        shown = [m for m in track_markers if m.markers[0].ns == namespace]
        sphere = shown[-1].markers[0]
        assert sphere.type == Marker.SPHERE and sphere.action == Marker.ADD
        assert np.linalg.norm(np.subtract(
            (sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z),
            centre)) < 0.01
        tracked_stamps = {stamp_of(t) for t in tracked()}
        assert stamp_of(sphere) in tracked_stamps
        overlay = overlays[-1]
        assert overlay.encoding == "rgb8" and overlay.width <= 1280
        assert overlay.header.frame_id == "camera_color_optical_frame"
        client.send(json.dumps({"stop_track": track_id}))
        assert client.wait_until(lambda: any(
            m.markers[0].ns == namespace and m.markers[0].action == Marker.DELETE
            for m in track_markers), TIMEOUT)
    finally:
        camera.stop()
        for subscription in subscriptions:
            client.node.destroy_subscription(subscription)
    overlay_stamps = {stamp_of(o) for o in overlays}
    assert overlay_stamps <= {stamp_of(t) for t in client.tracks}  # only tracked frames


def test_camera_info_of_the_colour_frame_is_used_not_the_newest(depth_input):
    # CameraInfo streams with the frames; a long run gets its own frame's, also as recorded
    scene, depth = disc_depth(4)
    for i in range(30):  # the frame at 0 ms is answered; 29 more CameraInfo come meanwhile
        focal = COLOUR.fx if i == 0 else 2 * COLOUR.fx  # a zoom in the later ones
        depth_input._on_info(camera_info(COLOUR, T0 + i * 33_000_000,
                                         k=[focal, 0, COLOUR.cx, 0, focal, COLOUR.cy, 0, 0, 1]))
        if i == 0:
            depth_input._on_depth(depth_image(depth, T0))
            depth_input.pinning(lambda: None, header(T0))()
    recorded = dict(depth_input.inputs_of(header(T0)))
    assert recorded["/camera/camera_info"].header.stamp.nanosec == 0
    assert recorded["/camera/camera_info"].k[0] == COLOUR.fx
    result = depth_input.locate(header(T0), scene.target_mask)
    assert result.has_3d and np.linalg.norm(np.subtract(result.point, CENTRE)) < 0.005, result


def test_camera_info_without_a_stamp_near_the_frame_is_the_newest(depth_input):
    # a calibration publisher of its own (other stamps, slower): its newest CameraInfo is used
    scene, depth = disc_depth(5)
    depth_input._on_info(camera_info(COLOUR, T0 - 3_000_000_000))
    depth_input._on_depth(depth_image(depth, T0))
    result = depth_input.locate(header(T0), scene.target_mask)
    assert result.has_3d and np.linalg.norm(np.subtract(result.point, CENTRE)) < 0.005, result
    recorded = dict(depth_input.inputs_of(header(T0)))
    assert recorded["/camera/camera_info"].header.stamp.sec == (T0 - 3_000_000_000) // 10 ** 9


def test_camera_info_is_taken_only_while_the_frames_are(domain):
    # an idle node leaves CameraInfo in the middleware as it does the frames: at 30 Hz taking
    # it into Python cost an idle node ~17 % of a core
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo

    from finers_ros.ros.depth_input import DepthInput
    from finers_ros.ros.frame_intake import GatedGroup

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("info_gate_test", context=context)
    camera = rclpy.create_node("info_gate_camera", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    gate = GatedGroup(is_open=False)
    depth_input = DepthInput(node, slop_s=0.05)
    depth_input.subscribe(gate)
    publisher = camera.create_publisher(CameraInfo, "/camera/camera_info",
                                        qos_profile_sensor_data)
    scene, depth = disc_depth(6)
    try:
        deadline = time.monotonic() + TIMEOUT
        while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        depth_input._on_depth(depth_image(depth, T0))
        for i in range(10):
            publisher.publish(camera_info(COLOUR, T0 + i * 33_000_000))
            executor.spin_once(timeout_sec=0.03)
        result = depth_input.locate(header(T0), scene.target_mask)
        assert not result.has_3d and "no CameraInfo received" in result.reason, result
        gate.is_open = True  # a request: the frames are taken, and the held CameraInfo
        deadline = time.monotonic() + 5.0
        while len(depth_input.inputs_of(header(T0))) < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        result = depth_input.locate(header(T0), scene.target_mask)
        assert result.has_3d, result.reason
    finally:
        depth_input.close()
        executor.shutdown()
        camera.destroy_node()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
