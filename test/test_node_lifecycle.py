"""
The node as a lifecycle manager, `ros2 param` and a process supervisor see it.

Each node runs in its own process (its own namespace in one isolated domain); the test
talks to it over its real services and topics.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from finers_ros.ros.launcher import NodeProcess, clean_shared_memory
from ros_services import Services

HERE = Path(__file__).resolve().parent
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def client(domain):
    from finers_ros.ros.client import PerceptionClient

    client = PerceptionClient(domain_id=domain, name="lifecycle_test")
    yield client
    client.close()


@pytest.fixture
def services(client):
    calls = Services(client.node)
    yield calls
    calls.close()


def test_managed_node_configure_fails_without_model_then_reconfigures(domain, services,
                                                                      tmp_path):
    """FAILURE reaches the manager; cleanup/set/configure picks up a new pipeline config."""
    from lifecycle_msgs.msg import Transition

    missing = tmp_path / "pipeline.yaml"
    missing.write_text(f"gse: {{backend: qwen2_5_vl, checkpoint: {tmp_path / 'no-model'}}}\n")
    name = "/managed/finers_perception"
    with NodeProcess(domain, parameters={"autostart": False, "pipeline_config": str(missing)},
                     ros_args=("-r", "__ns:=/managed")) as node:
        assert not services.change_state(name, Transition.TRANSITION_CONFIGURE), node.log()
        assert services.state(name) == "unconfigured"
        assert "checkpoint directory not found" in node.log()
        # unconfigured: configure-time parameters may change (validated: a file must exist)
        ok, reason = services.set_parameter(name, "pipeline_config", "/no/such.yaml")
        assert not ok and "config file not found" in reason
        assert services.set_parameter(name, "pipeline_config", "")[0]
        assert services.change_state(name, Transition.TRANSITION_CONFIGURE), node.log()
        assert services.state(name) == "inactive"
        # configured: a configure-time parameter is refused with the reason, live ones apply
        ok, reason = services.set_parameter(name, "pipeline_config", str(missing))
        assert not ok and "cleanup first" in reason
        ok, reason = services.set_parameter(name, "frame_wait_s", -1.0)
        assert not ok and "frame_wait_s" in reason
        ok, reason = services.set_parameter(name, "frame_policy", "whenever")
        assert not ok and "frame_policy='whenever'" in reason
        assert services.set_parameter(name, "frame_wait_s", 0.5)[0]
        assert services.get_parameter(name, "frame_wait_s") == 0.5
        ok, reason = services.set_parameter(name, "autostart", True)
        assert not ok and "read-only" in reason
        assert services.change_state(name, Transition.TRANSITION_ACTIVATE)
        from finers_ros.ros.client import PerceptionClient

        managed = PerceptionClient(domain_id=domain, namespace="managed", name="managed_client")
        try:
            assert managed.wait_for_node(TIMEOUT), node.log()
            before = len(managed.detections)
            started = time.monotonic()
            managed.send("find the red screw")
            detection = managed.next_detection(before, TIMEOUT)
            # the live frame_wait_s (0.5 s, not the file's 5 s) bounded the wait
            assert detection.error_stage == "frame" and "0.5 s" in detection.error
            assert time.monotonic() - started < 4.0
            assert managed.wait_until(lambda: managed.status is not None, 10)
            assert managed.status.model_loaded and "bringup" in managed.status.backend
        finally:
            managed.close()
        # the shutdown transition ends the process
        assert services.change_state(name, Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert node.process.wait(15) == 0, node.log()


def test_remote_server_down_at_configure_is_served_once_it_is_back(domain, services, tmp_path):
    """
    A model server outage during warm-up does not disable the node until a reconfigure.

    Configure succeeds (the pipeline is loaded, only its server is away); requests fail with
    the server's error while it is down and are served once it is back.
    """
    from lifecycle_msgs.msg import Transition

    from finers_ros.ros.client import PerceptionClient

    outage = tmp_path / "server-down"
    outage.write_text("")
    name = "/outage/finers_perception"
    with NodeProcess(domain, parameters={"autostart": False, "frame_wait_s": 5.0,
                                         "pipeline_factory": "faulty_pipelines:remote_outage"},
                     ros_args=("-r", "__ns:=/outage"),
                     env={"PYTHONPATH": str(HERE),
                          "FINERS_TEST_OUTAGE_FILE": str(outage)}) as node:
        assert services.change_state(name, Transition.TRANSITION_CONFIGURE), node.log()
        assert services.change_state(name, Transition.TRANSITION_ACTIVATE), node.log()
        assert "warm-up failed" in node.log() and "unreachable" in node.log()
        client = PerceptionClient(domain_id=domain, namespace="outage", name="outage_client")
        try:
            assert client.wait_for_node(TIMEOUT), node.log()
            client.stream(client.frame_message(np.zeros((120, 160, 3), np.uint8)), hz=10.0)
            before = len(client.detections)
            client.send("find the red screw")
            detection = client.next_detection(before, TIMEOUT)
            assert detection is not None, node.log()
            assert "unreachable" in detection.error and "not loaded" not in detection.error
            assert client.wait_until(lambda: client.status is not None, 10)
            assert client.status.model_loaded
            outage.unlink()  # the server is back
            before = len(client.detections)
            client.send("find the red screw")
            detection = client.next_detection(before, TIMEOUT)
            assert detection is not None and detection.error == "", node.log()
        finally:
            client.close()


def test_missing_params_file_is_one_line_and_exit_2(domain, tmp_path):
    missing = tmp_path / "typo.yaml"
    node = NodeProcess(domain, ros_args=("--params-file", str(missing)))
    assert node.process.wait(60) == 2
    log = node.log().strip()
    node.stop()
    assert len(log.splitlines()) == 1 and str(missing) in log and "not found" in log
    broken = tmp_path / "broken.yaml"
    broken.write_text("/**: {ros__parameters: [unclosed\n")
    node = NodeProcess(domain, ros_args=("--params-file", str(broken)))
    assert node.process.wait(60) == 2
    log = node.log().strip()
    node.stop()
    assert len(log.splitlines()) == 1 and str(broken) in log


def _wait_for_log(node, text, timeout=TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log():
            return True
        if not node.alive():
            return False
        time.sleep(0.05)
    return False


def test_sigint_cancels_the_request_in_flight(domain, scene_4k):
    """Ctrl-C does not wait for a running request: it is cancelled and the process exits."""
    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={"pipeline_factory": "faulty_pipelines:flaky"},
                       ros_args=("-r", "__ns:=/inflight"), env={"PYTHONPATH": str(HERE)})
    client = PerceptionClient(domain_id=domain, namespace="inflight", name="inflight_client")
    try:
        assert client.wait_for_node(TIMEOUT), node.log()
        client.stream(client.frame_message(np.zeros((120, 160, 3), np.uint8)), hz=10.0)
        client.send(json.dumps({"instruction": "hang on the red screw", "id": "slow"}))
        assert client.wait_until(lambda: client.status is not None and client.status.busy,
                                 10), node.log()
        started = time.monotonic()
        node.process.send_signal(signal.SIGINT)
        assert node.process.wait(15) == 0, node.log()
        assert time.monotonic() - started < 5.0
    finally:
        client.close()
        node.stop()
    assert "Traceback" not in node.log()


SIGINT_RUNS = 20
PARALLEL = 4


def test_twenty_sigint_restarts_exit_cleanly(domain):
    """
    Start and SIGINT the node 20 times (4 at once); a second SIGINT comes during shutdown.

    Every run must exit with status 0 and without a traceback (``ros2 launch`` without a TTY
    sends SIGINT twice).
    """
    failures = []
    for first in range(0, SIGINT_RUNS, PARALLEL):
        nodes = [NodeProcess(domain, ros_args=("-r", f"__ns:=/restart{first + i}"))
                 for i in range(PARALLEL)]
        for index, node in enumerate(nodes):
            if not _wait_for_log(node, "serving:"):
                failures.append(f"run {first + index} did not come up: {node.log()[-800:]}")
        for index, node in enumerate(nodes):
            node.process.send_signal(signal.SIGINT)
            time.sleep(0.05 * index)  # the second signal at different points of the shutdown
            node.process.send_signal(signal.SIGINT)
        for index, node in enumerate(nodes):
            try:
                code = node.process.wait(30)
            except subprocess.TimeoutExpired:
                code = "hung"
            node.stop()
            log = node.log()
            if code != 0 or "Traceback" in log:
                failures.append(f"run {first + index}: exit {code}: {log[-800:]}")
    assert not failures, "\n".join(failures)


def test_camera_matched_without_frames_is_named_with_the_fix(domain):
    """A camera that starts later and delivers nothing: the warning says so and names the fix."""
    from finers_ros.ros.client import PerceptionClient

    with NodeProcess(domain, parameters={"no_frames_warning_s": 1.0},
                     ros_args=("-r", "__ns:=/silent")) as node:
        assert _wait_for_log(node, "no publisher on /silent/camera/image_raw"), node.log()
        camera = PerceptionClient(domain_id=domain, namespace="silent", name="silent_camera")
        try:  # its camera publisher matches, but it never publishes a frame
            assert camera.wait_for_node(TIMEOUT), node.log()
            assert _wait_for_log(node, "matched on /silent/camera/image_raw but no frame", 10)
        finally:
            camera.close()
    assert "config/fastdds_shm.xml" in node.log() and "camera driver" in node.log()


def _mapped_segments(pid: int) -> set:
    """Return the Fast DDS shared-memory segments process ``pid`` has mapped (own and peers')."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {line.split("/dev/shm/", 1)[1].strip() for line in maps.splitlines()
            if "/dev/shm/fastdds_" in line and "port" not in line.split("/dev/shm/", 1)[1]}


def test_shared_memory_cleanup_removes_a_killed_node_s_segments(domain):
    node = NodeProcess(domain, ros_args=("-r", "__ns:=/killed"))
    assert _wait_for_log(node, "serving:"), node.log()
    created = _mapped_segments(node.process.pid)
    assert created, "the node mapped no shared-memory segment (is the SHM profile in use?)"
    os.killpg(node.process.pid, signal.SIGKILL)
    node.process.wait(10)
    node.stop()
    assert created & set(os.listdir("/dev/shm")), "segments vanished before the cleanup"
    report = clean_shared_memory()
    assert "zombie segments cleaned" in report
    # what is left of them is mapped by live processes (peers' segments the node wrote into)
    left = created & set(os.listdir("/dev/shm"))
    assert left < created, report
    assert left <= _segments_in_use(), report


def test_sigint_exit_deletes_the_node_s_own_segments(domain):
    """The node leaves without the interpreter's teardown: it must delete its segments itself."""
    node = NodeProcess(domain, ros_args=("-r", "__ns:=/tidy"))
    assert _wait_for_log(node, "serving:"), node.log()
    created = _mapped_segments(node.process.pid)
    assert created, "the node mapped no shared-memory segment (is the SHM profile in use?)"
    node.process.send_signal(signal.SIGINT)
    assert node.process.wait(30) == 0, node.log()[-2000:]
    node.stop()
    # what is left of them is mapped by live processes (peers' segments the node wrote into)
    left = created & set(os.listdir("/dev/shm"))
    assert left <= _segments_in_use(), f"left behind: {sorted(left - _segments_in_use())}"


def _segments_in_use() -> set:
    in_use = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        in_use |= {line.split("/dev/shm/", 1)[1].strip() for line in text.splitlines()
                   if "/dev/shm/fastdds_" in line}
    return in_use
