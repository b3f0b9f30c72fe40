"""Episode recorder: real rclpy Detections into rosbag2 MCAP bags, read back with rosbags."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rosbags.highlevel import AnyReader
from std_msgs.msg import Header

from finers_ros.commands import parse_command
from finers_ros.result import FineRSResult
from finers_ros.ros.messages import detection_message
from finers_ros.ros.recorder import MB, EpisodeRecorder, RecorderError
from finers_ros.serving import Frame, Outcome, Request

ROOT = Path(__file__).resolve().parents[1]
TOPICS = {"camera_topic": "/camera/image_raw", "command_topic": "/finers/command",
          "detections_topic": "/finers/detections"}


def episode(index: int, size=(64, 48), question_type="referring", options=None):
    """(outcome, Detection) of one answered instruction on a frame filled with ``index``."""
    width, height = size
    image = np.full((height, width, 3), index % 250, np.uint8)
    image[0, 0] = (1, 2, 3)
    mask = np.zeros((height, width), bool)
    mask[10:20, 5 + index % 10:30] = True
    header = Header(stamp=Time(sec=1_700_000_000 + index, nanosec=index * 1000), frame_id="cam")
    request = Request(f"find the red screw {index}", question_type, options,
                      request_id=f"cmd-{index}")
    result = FineRSResult(instruction=request.instruction, found=True,
                          answer="The object is found.", box=(5.0, 10.0, 29.0, 19.0),
                          points=[(10.0, 15.0), (20.0, 15.0)], mask=mask, score=0.9,
                          backend="bringup")
    frame = Frame(lambda: image, header, index, time.monotonic())
    outcome = Outcome(request, result, frame, image)
    return outcome, detection_message(outcome, header)


def read_bag(path: Path) -> dict:
    """Read topic -> [(log ns, message)] and the connections, with rosbags' own typestore."""
    with AnyReader([path]) as reader:
        messages = {}
        for conn, log_ns, raw in reader.messages():
            message = reader.deserialize(raw, conn.msgtype)
            messages.setdefault(conn.topic, []).append((log_ns, message))
        return {"messages": messages, "connections": {c.topic: c for c in reader.connections}}


def test_episodes_are_written_to_an_mcap_bag_with_their_types(tmp_path):
    recorder = EpisodeRecorder(tmp_path / "rec", **TOPICS)
    outcomes = [episode(1),
                episode(2, question_type="option", options=["A. red", "B. blue"])]
    assert all(recorder.record(*pair) for pair in outcomes)
    recorder.close()
    assert recorder.stats()["episodes"] == 2 and recorder.dropped == 0
    (bag,) = recorder.bags
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap"))
    data = read_bag(bag)
    conns = data["connections"]
    assert {t: c.msgtype for t, c in conns.items()} == {
        "/camera/image_raw": "sensor_msgs/msg/Image", "/finers/command": "std_msgs/msg/String",
        "/finers/detections": "finers_ros/msg/Detection"}
    # the hash rosidl gave the colcon-built interface: `ros2 bag play` checks it
    built = json.loads((ROOT / "install/share/finers_ros/msg/Detection.json").read_text())
    assert conns["/finers/detections"].digest == built["type_hashes"][0]["hash_string"]
    assert "MSG: sensor_msgs/RegionOfInterest" in conns["/finers/detections"].msgdef.data
    frames = data["messages"]["/camera/image_raw"]
    commands = data["messages"]["/finers/command"]
    detections = data["messages"]["/finers/detections"]
    assert len(frames) == len(commands) == len(detections) == 2
    for index, (outcome, _) in enumerate(outcomes):
        frame, command, det = frames[index][1], commands[index][1], detections[index][1]
        assert (frame.encoding, frame.width, frame.height) == ("rgb8", 64, 48)
        assert np.array_equal(frame.data.reshape(48, 64, 3), outcome.image)
        assert frame.header.stamp == det.header.stamp and frame.header.frame_id == "cam"
        parsed = parse_command(command.data)
        request = outcome.request
        assert parsed == {"instruction": request.instruction, "options": request.options,
                          "question_type": request.question_type,
                          "request_id": request.request_id, "track": request.track}
        assert det.found and det.request_id == request.request_id
        assert det.mask_roi.width == outcome.result.mask.any(0).sum()
    # receive order: command before frame before detection, as `ros2 bag record` logs them
    for index in range(2):
        assert max(commands[index][0], frames[index][0]) <= detections[index][0]


def test_bags_rotate_by_size_and_each_is_complete(tmp_path):
    recorder = EpisodeRecorder(tmp_path, max_bag_bytes=1 * MB, queue_limit=16, **TOPICS)
    for index in range(5):  # 640x320 rgb8 frames: 614 kB each, so one episode per 1 MiB bag
        assert recorder.record(*episode(index, size=(640, 320)))
    recorder.close()
    assert len(recorder.bags) == 5 and recorder.episodes == 5
    for bag in recorder.bags:
        data = read_bag(bag)
        assert [len(data["messages"][t]) for t in TOPICS.values()] == [1, 1, 1]
        assert sum(f.stat().st_size for f in bag.glob("*.mcap")) < 1.1 * MB


def test_instructions_answered_on_the_same_frame_store_it_once(tmp_path):
    """
    Store a frame answered by several instructions once.

    Concurrent clients often get the same frame: a 4K frame is 25 MB, written once per bag,
    and every episode still reads back with it.
    """
    from finers_training.bags import read_episodes

    recorder = EpisodeRecorder(tmp_path, queue_limit=16, **TOPICS)
    first, first_detection = episode(1, size=(640, 320))
    second, second_detection = episode(1, size=(640, 320))
    second.request.instruction = second_detection.instruction = "find the blue bolt"
    second.request.request_id = second_detection.request_id = "cmd-other"
    assert recorder.record(first, first_detection) and recorder.record(second, second_detection)
    assert recorder.record(*episode(2, size=(640, 320)))
    recorder.close()
    (bag,) = recorder.bags
    data = read_bag(bag)
    assert [len(data["messages"][t]) for t in TOPICS.values()] == [2, 3, 3]
    episodes = {e.request_id: e for e in read_episodes([bag])}
    assert set(episodes) == {"cmd-1", "cmd-other", "cmd-2"}
    assert not any(e.problem for e in episodes.values())
    assert episodes["cmd-other"].instruction == "find the blue bolt"
    assert np.array_equal(episodes["cmd-other"].image, first.image)

    # once the bag rotated, the next bag gets the frame again: each bag reads on its own
    recorder = EpisodeRecorder(tmp_path / "rotated", max_bag_bytes=1 * MB, **TOPICS)
    answered = [episode(1, size=(640, 320)), episode(2, size=(640, 320)),
                (second, second_detection)]
    for outcome in answered:
        assert recorder.record(*outcome)
    recorder.close()
    assert len(recorder.bags) == 3  # 614 kB frames: one per 1 MiB bag
    (last,) = read_episodes([recorder.bags[-1]])
    assert last.request_id == "cmd-other" and np.array_equal(last.image, first.image)


def test_recording_stops_with_one_warning_when_the_disk_is_short(tmp_path):
    warnings = []
    recorder = EpisodeRecorder(tmp_path, min_free_bytes=1 << 60, warn=warnings.append, **TOPICS)
    recorder.record(*episode(1))
    deadline = time.monotonic() + 10
    while not recorder.stopped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "MiB free" in recorder.stopped
    assert recorder.record(*episode(2)) is False
    recorder.close()
    assert recorder.episodes == 0 and recorder.dropped == 2
    assert len(warnings) == 1 and warnings[0].startswith("episode recording stopped: only")


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    warnings = []
    recorder = EpisodeRecorder(tmp_path, queue_limit=1, warn=warnings.append, **TOPICS)
    release, busy = threading.Event(), threading.Event()
    write = recorder._write

    def slow_write(item):  # a disk that stalls
        busy.set()
        release.wait(10)
        write(item)

    recorder._write = slow_write
    assert recorder.record(*episode(1))
    assert busy.wait(10)
    assert recorder.record(*episode(2))  # waits in the queue
    started = time.monotonic()
    assert recorder.record(*episode(3)) is False
    assert time.monotonic() - started < 2.0  # a blocking put would wait for the stalled disk
    assert recorder.dropped == 1 and "queue full" in warnings[0]
    release.set()
    recorder.close()
    assert recorder.episodes == 2
    detections = read_bag(recorder.bags[0])["messages"]["/finers/detections"]
    assert [d.request_id for _, d in detections] == ["cmd-1", "cmd-2"]


def test_an_unusable_directory_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RecorderError, match="cannot record episodes into"):
        EpisodeRecorder(blocker / "rec", **TOPICS)


def test_an_outcome_without_a_frame_is_counted_not_recorded(tmp_path):
    outcome, detection = episode(4)
    outcome.image, outcome.frame = None, None  # e.g. an empty instruction, or no frame in time
    lines = []
    recorder = EpisodeRecorder(tmp_path, info=lines.append, **TOPICS)
    assert recorder.record(outcome, detection) is False
    assert recorder.record(*episode(5))
    recorder.close()
    assert recorder.stats()["without_frame"] == 1 and recorder.dropped == 0
    # the session's account, once, when the node stops
    assert lines == [f"episode recorder: 1 episode(s) in 1 bag(s) under {tmp_path}, "
                     f"0 dropped, 1 without a frame (not recorded)"]
    messages = read_bag(recorder.bags[0])["messages"]
    assert [d.request_id for _, d in messages["/finers/detections"]] == ["cmd-5"]


def test_a_msg_file_that_differs_from_the_built_detection_is_refused(tmp_path, monkeypatch):
    from finers_ros.ros import recorder as recorder_module

    stale = tmp_path / "Detection.msg"
    stale.write_text("std_msgs/Header header\nstring request_id\n")
    monkeypatch.setattr(recorder_module, "detection_msgdef_path", lambda: stale)
    with pytest.raises(RecorderError, match="does not match the built finers_ros/msg/Detection"):
        EpisodeRecorder(tmp_path / "rec", **TOPICS)


def test_an_idle_recorder_finishes_its_bag_so_a_kill_loses_nothing_written(tmp_path):
    from finers_training.bags import read_episodes

    recorder = EpisodeRecorder(tmp_path, idle_finish_s=0.2, **TOPICS)
    recorder.record(*episode(1))
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob("*/metadata.yaml")):
        assert time.monotonic() < deadline, "the idle bag was not finished"
        time.sleep(0.05)
    (first,) = read_episodes([tmp_path])  # readable while the recorder still runs
    assert first.request_id == "cmd-1" and first.problem == ""
    recorder.record(*episode(2))
    recorder.close()
    assert len(recorder.bags) == 2
    assert [e.request_id for e in read_episodes([tmp_path])] == ["cmd-1", "cmd-2"]


def test_the_reference_mcap_reader_decodes_every_message_from_the_embedded_schemas(tmp_path):
    """
    Decode every message with the reference MCAP reader from the embedded schemas.

    The MCAP project's own reader (what rosbag2's MCAP plugin is built on) and its ROS 2
    decoder read the bag with no type installed: the schemas in the file are enough.
    """
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    outcome, detection = episode(3)
    recorder = EpisodeRecorder(tmp_path, **TOPICS)
    recorder.record(outcome, detection)
    recorder.close()
    (path,) = tmp_path.rglob("*.mcap")
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        decoded = {channel.topic: (schema, message) for schema, channel, _, message
                   in reader.iter_decoded_messages()}
    schema, message = decoded["/finers/detections"]
    assert (schema.name, schema.encoding) == ("finers_ros/msg/Detection", "ros2msg")
    assert message.request_id == "cmd-3" and bytes(message.mask) == bytes(detection.mask)
    assert (message.mask_roi.width, message.mask_roi.height) == (
        detection.mask_roi.width, detection.mask_roi.height)
    _, frame = decoded["/camera/image_raw"]
    assert bytes(frame.data) == outcome.image.tobytes()
    assert decoded["/finers/command"][1].data == '{"instruction": "find the red screw 3", ' \
        '"question_type": "referring", "id": "cmd-3"}'


def test_the_cameras_own_message_depth_and_camera_info_are_written_as_received(tmp_path):
    """Keep a CompressedImage on its topic, depth and CameraInfo before it, on the given clock."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from finers_ros.ros.recorder import bag_qos

    outcome, detection = episode(7)
    jpeg = CompressedImage(header=detection.header, format="jpeg", data=b"\xff\xd8not-really")
    depth = Image(header=detection.header, height=2, width=2, encoding="16UC1", step=4,
                  data=bytes(range(8)))
    info = CameraInfo(header=detection.header, width=64, height=48,
                      k=[500.0, 0.0, 32.0, 0.0, 500.0, 24.0, 0.0, 0.0, 1.0])
    outcome.frame.source = ("/cam/image_raw/compressed", jpeg)
    offered = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)
    asked = []

    def qos_of(topic):
        asked.append(topic)
        return [bag_qos(offered)]

    sim_ns = 42 * 10 ** 9  # a simulation clock, far from the wall clock
    recorder = EpisodeRecorder(tmp_path, now_ns=lambda: sim_ns, qos_of=qos_of, **TOPICS)
    assert recorder.record(outcome, detection, [("/cam/camera_info", info),
                                                ("/cam/depth/image_raw", depth)])
    recorder.close()
    data = read_bag(recorder.bags[0])
    conns, messages = data["connections"], data["messages"]
    assert conns["/cam/image_raw/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
    assert "/camera/image_raw" not in conns  # nothing re-encoded as rgb8
    ((frame_ns, frame),) = messages["/cam/image_raw/compressed"]
    assert frame.format == "jpeg" and bytes(frame.data) == bytes(jpeg.data)
    ((depth_ns, stored_depth),) = messages["/cam/depth/image_raw"]
    ((info_ns, stored_info),) = messages["/cam/camera_info"]
    assert bytes(stored_depth.data) == bytes(depth.data) and stored_depth.encoding == "16UC1"
    assert list(stored_info.k) == list(info.k)
    assert info_ns < depth_ns < frame_ns  # CameraInfo, depth, colour: a driver's order
    ((detection_ns, _),) = messages["/finers/detections"]
    assert frame_ns <= detection_ns == sim_ns  # the node's clock, not time.time_ns()
    assert all(0 < t <= sim_ns for entries in messages.values() for t, _ in entries)
    assert sorted(set(asked)) == sorted(conns)  # every topic's offered QoS, once per bag
    (qos,) = conns["/cam/image_raw/compressed"].ext.offered_qos_profiles
    assert (qos.reliability.name, qos.durability.name, qos.depth) == (
        "BEST_EFFORT", "VOLATILE", 5)
    assert serialize_message(jpeg)  # the message itself is left as it was


def test_offered_qos_durations_as_rosbag2_writes_them():
    from rclpy.duration import Duration
    from rclpy.qos import QoSProfile

    from finers_ros.ros.recorder import INFINITE_S, bag_qos

    profile = QoSProfile(depth=1, deadline=Duration(seconds=1, nanoseconds=500),
                         lifespan=Duration(seconds=3 * 10 ** 9))  # past 2^31 s
    qos = bag_qos(profile)
    assert (qos.deadline.sec, qos.deadline.nsec) == (1, 500)
    assert (qos.lifespan.sec, qos.lifespan.nsec) == (INFINITE_S, 0xFFFFFFFF)
    assert (qos.liveliness_lease_duration.sec, qos.liveliness_lease_duration.nsec) == (0, 0)
