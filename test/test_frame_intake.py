"""
Frames taken on demand: an idle node copies no frame into Python and decodes none.

The node in its own process, a camera publishing over real topics (isolated domain,
loopback discovery, the shipped shared-memory profile); the counters come from its status.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from finers_ros.ros.frame_intake import IDLE_PEEK_S, ArrivalCounter
from finers_ros.ros.launcher import NodeProcess
from ros_services import Services

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def node_and_client(domain):
    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={"frame_policy": "latest", "frame_wait_s": 10.0,
                                           "status_period_s": 0.2})
    client = PerceptionClient(domain_id=domain, name="intake_client")
    try:
        assert client.wait_for_node(TIMEOUT), node.log()[-2000:]
        client.stream(frame(client, 0), hz=10.0)  # the camera streams once it matched
        time.sleep(2.0)
        client.stop_stream()
        yield node, client
    finally:
        client.close()
        assert node.stop() == 0, node.log()[-2000:]


def set_parameter(client, name, value) -> bool:
    services = Services(client.node)
    try:
        return services.set_parameter("/finers_perception", name, value)[0]
    finally:
        services.close()


def frame(client, index: int):
    """Return a 320x240 frame stamped ``index`` s after a fixed time (its stamp names it)."""
    image = np.full((240, 320, 3), index % 200, np.uint8)
    return client.frame_message(image, stamp_ns=1_800_000_000_000_000_000 + index * 10 ** 9)


def fresh_status(client, after: float):
    """Return the first status stamped after ``after`` (time.time())."""
    def newer():
        status = client.status
        return status is not None and status.stamp.sec + status.stamp.nanosec / 1e9 > after
    assert client.wait_until(newer, 10)
    return client.status


def publish(client, indices, hz: float = 10.0) -> None:
    for index in indices:
        client.publish_frame(frame(client, index))
        time.sleep(1.0 / hz)


def test_an_idle_node_takes_few_frames_decodes_none_and_counts_all(node_and_client):
    node, client = node_and_client
    first = fresh_status(client, time.time())
    publish(client, [0])  # a first look at this publisher: later frames count from it
    assert client.wait_until(lambda: client.status.frames_taken > first.frames_taken,
                             IDLE_PEEK_S + 5)
    before = fresh_status(client, time.time())
    seconds = 4.0
    publish(client, range(1, int(seconds * 10) + 1))
    # the next look takes the newest frame and counts those before it
    after = fresh_status(client, time.time() + IDLE_PEEK_S + 0.6)
    assert after.frames_decoded == before.frames_decoded, node.log()[-1500:]
    taken = after.frames_taken - before.frames_taken
    # a look at the newest frame every IDLE_PEEK_S, not 40 copies of it
    assert 1 <= taken <= (seconds + IDLE_PEEK_S) / IDLE_PEEK_S + 2, taken
    # the frames never taken are counted from the publisher's sequence numbers
    assert after.frames_received - before.frames_received >= 35
    assert after.last_frame_stamp.sec >= 1_800_000_000
    # an idle node still saw the camera's first frames: no "matched but no frame" warning
    assert "no frame arrived" not in node.log()


def test_a_command_after_idle_gets_the_newest_frame(node_and_client):
    node, client = node_and_client
    publish(client, range(100, 110))
    newest = frame(client, 109).header.stamp
    time.sleep(2.5)  # idle, camera silent: the newest frame waits in the middleware (or a look)
    before = fresh_status(client, time.time())
    count = len(client.detections)
    client.send(json.dumps({"instruction": "find the red screw", "id": "after-idle"}))
    detection = client.next_detection(count, TIMEOUT)
    assert detection is not None and detection.request_id == "after-idle"
    assert detection.error_stage != "frame", detection.error
    assert (detection.header.stamp.sec, detection.header.stamp.nanosec) == (
        newest.sec, newest.nanosec)
    after = fresh_status(client, time.time())
    assert after.frames_decoded == before.frames_decoded + 1


def test_while_serving_every_frame_is_taken_then_idle_again(node_and_client):
    """After a request (after_request: a frame received after it) the node is idle again."""
    node, client = node_and_client
    assert set_parameter(client, "frame_policy", "after_request")
    try:
        client.stream(frame(client, 0), hz=10.0)  # restamped with the send time
        time.sleep(1.5)
        count = len(client.detections)
        sent_ns = time.time_ns()
        client.send(json.dumps({"instruction": "find the red screw", "id": "streaming"}))
        detection = client.next_detection(count, TIMEOUT)
        assert detection is not None and not detection.error_stage, detection.error
        stamp = detection.header.stamp
        assert stamp.sec * 10 ** 9 + stamp.nanosec >= sent_ns
        time.sleep(1.0)  # the watch closes the intake within 0.5 s
        before = fresh_status(client, time.time())
        time.sleep(4.0)
        after = fresh_status(client, time.time())
    finally:
        client.stop_stream()
        set_parameter(client, "frame_policy", "latest")
    assert after.frames_taken - before.frames_taken <= 4.0 / IDLE_PEEK_S + 1  # not 40
    assert after.frames_decoded == before.frames_decoded


def test_arrivals_count_skipped_frames_of_one_publisher():
    counter = ArrivalCounter()
    one = {"publisher_gid": {"data": b"a"}, "publication_sequence_number": 5}
    assert counter.count(one) == 1  # the first frame seen
    assert counter.count(dict(one, publication_sequence_number=9)) == 4
    assert counter.count(dict(one, publication_sequence_number=9)) == 1  # not grown
    other = {"publisher_gid": {"data": b"b"}, "publication_sequence_number": 100}
    assert counter.count(other) == 1
    assert counter.count(dict(one, publication_sequence_number=10)) == 1
    assert counter.count({}) == 1 and counter.count(None) == 1


@pytest.mark.parametrize("change, message", [
    ({"image_transport": "theora"}, r"image_transport='theora' \(raw \| compressed\)"),
    ({"frame_intake": "sometimes"}, r"frame_intake='sometimes' \(on_demand \| every_frame\)"),
])
def test_an_unknown_transport_or_intake_is_named(change, message):
    from finers_ros.ros.params import NodeSettings, ParameterError, parameter_defaults

    with pytest.raises(ParameterError, match=message):
        NodeSettings(**{**parameter_defaults(), **change}).validate()


def test_the_compressed_topic_follows_the_remapped_raw_topic(domain):
    """As image_transport names it: ``<raw topic>/compressed``, unless remapped itself."""
    import rclpy
    from rclpy.context import Context

    from finers_ros.ros.frame_intake import compressed_topic, transport_topics

    names = {}
    for case, remaps in {"plain": [], "raw": ["-r", "camera/image_raw:=/rs/color/image_raw"],
                         "own": ["-r", "camera/image_raw:=/rs/color/image_raw",
                                 "-r", "camera/image_raw/compressed:=/jpeg"]}.items():
        context = Context()
        rclpy.init(context=context, domain_id=domain, args=["--ros-args", *remaps])
        try:
            node = rclpy.create_node("names", namespace="robot", context=context)
            names[case] = compressed_topic(node)
            kinds = [kind.__name__ for kind, _ in transport_topics(node, "raw", True)]
            assert kinds == ["Image", "CompressedImage"]
            assert [k.__name__ for k, _ in transport_topics(node, "compressed")] == \
                ["CompressedImage"]
            node.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)
    assert names == {"plain": "/robot/camera/image_raw/compressed",
                     "raw": "/rs/color/image_raw/compressed", "own": "/jpeg"}
