"""
The perception node in its own process, talking to this test over real topics.

Isolated ROS domain, loopback-only discovery, the shipped shared-memory Fast DDS profile.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from finers_ros.geometry import box_iou, polygon_box
from finers_ros.ros.launcher import NodeProcess
from ros_services import Services

HERE = Path(__file__).resolve().parent
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def flaky_node(domain):
    node = NodeProcess(domain, parameters={"pipeline_factory": "faulty_pipelines:flaky",
                                           "request_timeout_s": 3.0,
                                           "frame_wait_s": 3.0, "no_frames_warning_s": 2.0},
                       env={"PYTHONPATH": str(HERE)})
    yield node
    code = node.stop()
    assert code == 0, node.log()[-2000:]


@pytest.fixture(scope="module")
def client(domain, flaky_node):
    from finers_ros.ros.client import PerceptionClient

    client = PerceptionClient(domain_id=domain)
    assert client.wait_for_node(TIMEOUT), flaky_node.log()[-2000:]
    yield client
    client.close()


@pytest.fixture(scope="module")
def frame_msg(client, scene_4k):
    image, record = scene_4k
    msg = client.frame_message(image, stamp_ns=1_700_000_000_123_456_789,
                               frame_id="camera_optical_frame")
    return msg, record


def ask(client, text, timeout=TIMEOUT):
    before = len(client.detections)
    client.send(text)
    detection = client.next_detection(before, timeout)
    assert detection is not None, f"no outcome for {text[:40]!r}"
    return detection


def test_instruction_before_any_frame_is_an_error(client):
    detection = ask(client, "find the red screw")
    assert detection.error_stage == "frame" and "no camera frame" in detection.error


def test_detection_on_streamed_4k_frame(client, frame_msg, scene_4k):
    msg, record = frame_msg
    client.stream(msg, hz=3.0, restamp=False)
    try:
        detection = ask(client, record["Q"])
    finally:
        client.stop_stream()
    assert detection.error == "" and detection.found, detection.error
    stamp = (detection.header.stamp.sec, detection.header.stamp.nanosec)
    assert stamp == (1_700_000_000, 123_456_789)
    assert detection.header.frame_id == "camera_optical_frame"
    assert (detection.image_width, detection.image_height) == (3840, 2160)
    assert box_iou(tuple(detection.box), polygon_box(record["points"])) > 0.7
    assert len(detection.points) == 2 and "gse" in detection.timing_names
    from finers_ros.ros.messages import detection_mask

    assert detection_mask(detection).sum() > 0
    stamp = (detection.header.stamp.sec, detection.header.stamp.nanosec)

    def same(m):
        return (m.header.stamp.sec, m.header.stamp.nanosec) == stamp

    assert client.wait_until(lambda: any(same(m) for m in client.masks), 30)
    mask = [m for m in client.masks if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp][-1]
    assert (mask.width, mask.height, mask.encoding) == (3840, 2160, "mono8")
    pixels = np.frombuffer(bytes(mask.data), np.uint8).reshape(2160, 3840)
    assert np.array_equal(pixels > 0, detection_mask(detection))
    assert client.wait_until(
        lambda: any(m.header.stamp.sec == stamp[0] for m in client.overlays), 30)


def bad_frame(client, scene_4k, **changes):
    msg = client.frame_message(scene_4k[0][:480, :640].copy())
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


@pytest.mark.parametrize("changes, message", [
    ({"step": 100}, "step 100"),
    ({"height": 4000}, "data has"),
    ({"encoding": "nv21"}, "unsupported encoding"),
])
def test_malformed_frames_give_error_outcomes(client, scene_4k, changes, message):
    msg = bad_frame(client, scene_4k, **changes)
    before = len(client.detections)
    client.send("find the red screw")
    time.sleep(0.3)
    for _ in range(5):
        client.publish_frame(msg)
        time.sleep(0.1)
    detection = client.next_detection(before, TIMEOUT)
    assert detection is not None
    assert detection.error_stage == "frame" and message in detection.error


@pytest.mark.parametrize("text, message", [("", "empty instruction"), ("x" * 100_000, "too long")])
def test_empty_and_huge_instructions(client, text, message):
    detection = ask(client, text)
    assert detection.error_stage == "input" and message in detection.error


def test_raising_and_hanging_pipeline_then_keeps_serving(client, frame_msg):
    msg, record = frame_msg
    client.stream(msg, hz=3.0)
    try:
        crashed = ask(client, "explode the red screw")
        assert crashed.error_stage == "pipeline" and "simulated model crash" in crashed.error
        hung = ask(client, "hang on the red screw")
        assert hung.error_stage == "timeout"
        good = ask(client, json.dumps({"instruction": record["Q"], "id": "job-42"}))
    finally:
        client.stop_stream()
    assert good.found and good.request_id == "job-42" and good.error == ""


def test_burst_of_instructions_each_get_exactly_one_outcome(client, frame_msg):
    msg, record = frame_msg
    client.stream(msg, hz=3.0)
    try:
        before = len(client.detections)
        ids = [f"burst-{i}" for i in range(25)]
        for request_id in ids:
            client.send(json.dumps({"instruction": record["Q"], "id": request_id}))
        assert client.wait_until(lambda: len(client.detections) >= before + len(ids), TIMEOUT)
        time.sleep(1.0)
    finally:
        client.stop_stream()
    answered = [d.request_id for d in client.detections[before:]]
    assert sorted(answered) == sorted(ids)  # one outcome each, none twice
    outcomes = {d.error_stage for d in client.detections[before:]}
    # served, or refused because the queue (8) was full
    assert outcomes <= {"", "queue"} and "" in outcomes


def test_status_reports_health(client):
    assert client.wait_until(
        lambda: client.status is not None and client.status.requests_failed >= 2, 10)
    status = client.status
    assert status.model_loaded and status.state == "active" and "bringup" in status.backend
    assert status.frames_received > 0 and status.frames_rejected >= 1 and status.last_error
    assert status.abandoned_runs <= 1  # the hung run stops at its next stage boundary


def test_action_result_feedback_and_cancel(client, frame_msg, domain):
    from finers_ros.action import Segment

    msg, record = frame_msg
    action = client.action_client(TIMEOUT)
    stages = []
    client.stream(msg, hz=3.0)
    try:
        goal = action.send_goal_async(Segment.Goal(instruction=record["Q"]),
                                      feedback_callback=lambda fb: stages.append(
                                          fb.feedback.stage))
        handle = _wait_future(goal)
        assert handle.accepted
        result = _wait_future(handle.get_result_async()).result
        assert result.detection.found and result.detection.error == ""
        assert {"queued", "gse", "lpr", "segment"} <= set(stages)

        hang = Segment.Goal(instruction="hang around the red screw")
        goal = _wait_future(action.send_goal_async(hang))
        time.sleep(1.0)
        _wait_future(goal.cancel_goal_async())
        wrapped = _wait_future(goal.get_result_async())
        from action_msgs.msg import GoalStatus

        assert wrapped.status == GoalStatus.STATUS_CANCELED
        assert wrapped.result.detection.error_stage == "cancelled"
    finally:
        client.stop_stream()
        action.destroy()


def test_failed_goal_is_aborted_with_the_error_in_its_result(client, frame_msg):
    from action_msgs.msg import GoalStatus

    from finers_ros.action import Segment

    msg, _ = frame_msg
    action = client.action_client(TIMEOUT)
    client.stream(msg, hz=3.0)
    try:
        handle = _wait_future(action.send_goal_async(Segment.Goal(instruction="explode it")))
        wrapped = _wait_future(handle.get_result_async())
    finally:
        client.stop_stream()
        action.destroy()
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.detection.error_stage == "pipeline"
    assert "simulated model crash" in wrapped.result.detection.error


def _wait_future(future, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, "future timed out"
        time.sleep(0.02)
    return future.result()


class Lifecycle:
    """Lifecycle services of the module's node, called from the test's client node."""

    def __init__(self, node, name="/finers_perception"):
        self.services = Services(node)
        self.name = name

    def change(self, transition_id):
        """(success, seconds the transition took)."""
        started = time.monotonic()
        success = self.services.change_state(self.name, transition_id)
        return success, time.monotonic() - started

    def state(self):
        """Return the lifecycle state label."""
        return self.services.state(self.name)

    def close(self):
        """Destroy the service clients."""
        self.services.close()


@pytest.fixture(scope="module")
def lifecycle(client):
    services = Lifecycle(client.node)
    yield services
    services.close()


def set_parameter(node, name, value, target="/finers_perception") -> bool:
    """``ros2 param set`` from the test's client node; True when the node took it."""
    services = Services(node)
    try:
        return services.set_parameter(target, name, value)[0]
    finally:
        services.close()


def small_frame(client, scene_4k):
    return client.frame_message(scene_4k[0][1000:1480, 1600:2240].copy())


def test_twenty_goals_and_topic_instructions_while_frames_stream(client, scene_4k, flaky_node):
    """Goals never hold executor threads: frames keep arriving, each request ends once."""
    from action_msgs.msg import GoalStatus

    from finers_ros.action import Segment

    action = client.action_client(TIMEOUT)  # its services keep 100 requests, as the node's
    client.stream(small_frame(client, scene_4k), hz=10.0)
    try:
        assert client.wait_until(
            lambda: client.status is not None and client.status.frames_received > 0, 10)
        before = len(client.detections)
        # 30 requests for 16 places (+1 in flight), whichever order the node sees them in:
        # some goals are accepted and some rejected
        assert set_parameter(client.node, "queue_limit", 16)
        ids = [f"topic-{i}" for i in range(10)]
        for request_id in ids[:4]:
            client.send(json.dumps({"instruction": "find the red screw", "id": request_id}))
        goals = [action.send_goal_async(Segment.Goal(instruction=f"find the red screw {i}"))
                 for i in range(20)]
        for request_id in ids[4:]:
            client.send(json.dumps({"instruction": "find the red screw", "id": request_id}))
        handles = [_wait_future(goal) for goal in goals]
        frames_then = client.status.frames_received
        # frames are counted while the goals are queued and running (status every second)
        assert client.wait_until(lambda: client.status.frames_received >= frames_then + 5, 10)
        results = [_wait_future(h.get_result_async()) for h in handles if h.accepted]
        assert client.wait_until(lambda: len(client.detections) >= before + len(ids), TIMEOUT)
        time.sleep(1.0)
    finally:
        client.stop_stream()
        action.destroy()
        assert set_parameter(client.node, "queue_limit", 8)
    assert results, "no goal accepted: " + flaky_node.log()[-3000:]
    assert len(results) < len(handles), "a full queue must reject goals"
    for wrapped in results:  # one terminal state each, never "no camera frame"
        detection = wrapped.result.detection
        assert wrapped.status in (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED)
        assert (wrapped.status == GoalStatus.STATUS_ABORTED) == bool(detection.error)
        # a goal accepted just before commands filled the queue is refused by the queue
        assert detection.error_stage in ("", "queue"), detection.error
    topic = [d for d in client.detections[before:] if d.request_id.startswith("topic-")]
    assert sorted(d.request_id for d in topic) == sorted(ids)
    assert {d.error_stage for d in topic} <= {"", "queue"}
    goal_ids = {d.request_id for d in client.detections[before:]} - set(ids)
    assert len(goal_ids) == len(results)  # each accepted goal published exactly one outcome


def test_deactivate_during_a_slow_request_ten_times(client, scene_4k, frame_msg, lifecycle):
    """Deactivate cancels the request in flight at once; activate always has a worker."""
    from lifecycle_msgs.msg import Transition

    from finers_ros.action import Segment

    client.stream(small_frame(client, scene_4k), hz=10.0)
    try:
        for cycle in range(10):
            before = len(client.detections)
            slow, queued = f"slow-{cycle}", f"queued-{cycle}"
            client.send(json.dumps({"instruction": "hang on the red screw", "id": slow}))
            client.send(json.dumps({"instruction": "find the red screw", "id": queued}))
            time.sleep(0.6)  # the slow one is inside the pipeline now
            ok, seconds = lifecycle.change(Transition.TRANSITION_DEACTIVATE)
            assert ok and seconds < 2.5, f"deactivate took {seconds:.1f} s"
            assert client.wait_until(lambda: len(client.detections) >= before + 2, 10)
            outcomes = {d.request_id: d for d in client.detections[before:]}
            assert set(outcomes) == {slow, queued}
            assert outcomes[slow].error_stage == "cancelled"
            assert "node deactivated" in outcomes[slow].error
            assert "node deactivated" in outcomes[queued].error
            if cycle == 0:  # the command topic stays up while inactive and says why
                inactive = ask(client, "find the red screw")
                assert inactive.error_stage == "node" and "not active" in inactive.error
                action = client.action_client(TIMEOUT)
                try:  # and goals are rejected while inactive
                    goal = Segment.Goal(instruction="find the red screw")
                    assert not _wait_future(action.send_goal_async(goal)).accepted
                finally:
                    action.destroy()
            ok, _ = lifecycle.change(Transition.TRANSITION_ACTIVATE)
            assert ok
            assert client.wait_until(lambda: client.camera.get_subscription_count() > 0, 10)
    finally:
        client.stop_stream()
    msg, record = frame_msg
    client.stream(msg, hz=3.0)
    try:
        served = ask(client, record["Q"])
    finally:
        client.stop_stream()
    assert served.error == "" and served.found


def test_lifecycle_deactivate_and_activate(client, frame_msg, lifecycle):
    from lifecycle_msgs.msg import Transition

    assert lifecycle.state() == "active"
    assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)[0]
    assert lifecycle.state() == "inactive"
    assert client.wait_until(
        lambda: client.status is not None and client.status.state == "inactive", 10)
    assert lifecycle.change(Transition.TRANSITION_ACTIVATE)[0]
    assert client.wait_for_node(TIMEOUT)
    msg, record = frame_msg
    client.stream(msg, hz=3.0)
    try:
        assert ask(client, record["Q"]).found
    finally:
        client.stop_stream()


def test_missing_weights_keep_node_serving_errors(domain, tmp_path):
    from finers_ros.ros.client import PerceptionClient

    config = tmp_path / "pipeline.yaml"
    config.write_text(f"gse: {{backend: qwen2_5_vl, checkpoint: {tmp_path / 'no-such-model'}}}\n")
    # its own namespace: the flaky node of this module still runs in the same domain
    with NodeProcess(domain, parameters={"pipeline_config": str(config)},
                     ros_args=("-r", "__ns:=/weights")) as node:
        client = PerceptionClient(domain_id=domain, namespace="weights", name="weights_client")
        try:
            assert client.wait_for_node(TIMEOUT), node.log()[-2000:]
            detection = ask(client, "find the red screw")
            assert detection.error_stage == "model"
            assert "checkpoint directory not found" in detection.error
            assert client.wait_until(
                lambda: client.status is not None and not client.status.model_loaded, 10)
            assert "model not loaded" in client.status.last_error
            from finers_ros.action import Segment

            action = client.action_client(TIMEOUT)
            goal = Segment.Goal(instruction="find the red screw")
            handle = _wait_future(action.send_goal_async(goal))
            result = _wait_future(handle.get_result_async()).result
            assert result.detection.error_stage == "model"  # the goal ends too, with the reason
            action.destroy()
            assert node.alive()
        finally:
            client.close()
        assert "model not loaded" in node.log()


def test_invalid_parameters_fail_loudly(domain):
    node = NodeProcess(domain, parameters={"frame_policy": "whenever", "queue_limit": 0})
    assert node.process.wait(60) == 2
    log = node.log()
    assert "frame_policy='whenever'" in log and "queue_limit out of range" in log
    assert len(log.strip().splitlines()) == 1
    node.stop()
