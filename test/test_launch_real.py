"""
Every launch argument of docs/real_robot.md under the real ``ros2 launch``.

``ros2 launch``, ``launch_ros`` and the ``ros2`` CLI are not on PyPI: these tests run where
``tools/ros2_launch_overlay.py --sources DIR`` built them under build/ros2_launch (from the
ros2/launch, ros2/launch_ros, ros2/ros2cli, ros2/rosidl_runtime_py and ros2/rcl_interfaces
source trees) and are skipped elsewhere; test/test_launch_topics.py checks what the
arguments become without a launch system.

Each launch is a real process tree in one isolated domain: the launcher, the node, and for
``use_rviz`` a stand-in ``rviz2`` executable (rviz2 is not installable here) that records the
command line the launch gave it. The test talks to the node over its real topics and services,
as a RealSense camera driver and a lifecycle manager would.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ros_services import Services

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TIMEOUT = 60.0
_spec = importlib.util.spec_from_file_location("ros2_launch_overlay",
                                               ROOT / "tools" / "ros2_launch_overlay.py")
overlay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(overlay)

pytestmark = pytest.mark.skipif(
    not overlay.built(),
    reason="the real ros2 launch is not built: tools/ros2_launch_overlay.py --sources DIR")

REALSENSE = "/camera/camera"
# The launch arguments each test below passes (the documented set must be covered).
END_TO_END_ARGS = {"namespace", "config", "camera_namespace", "depth_enabled",
                   "pipeline_config", "record_dir", "use_sim_time", "log_level", "use_rviz",
                   "rviz_fixed_frame", "fastdds_profile"}
MANAGED_ARGS = {"lifecycle_managed", "autostart", "camera_topic", "depth_topic",
                "camera_info_topic", "depth_enabled"}
SIGTERM_ARGS = {"lifecycle_managed"}


def launch_environment(log_dir: Path, extra_prefix: Path = None) -> dict:
    """Return the domain environment with the overlay in front, less the SHM profile."""
    env = overlay.ros2_launch_environment(dict(os.environ))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # fastdds_profile:= is what sets it
    env["ROS_LOG_DIR"] = str(log_dir)
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    if extra_prefix is not None:
        env["AMENT_PREFIX_PATH"] = f"{extra_prefix}{os.pathsep}{env['AMENT_PREFIX_PATH']}"
    return env


class Launch:
    """``ros2 launch finers_ros perception.launch.py ARGS`` in its own session."""

    def __init__(self, args: dict, tmp_path: Path, extra_prefix: Path = None):
        self.log_path = tmp_path / "launch.log"
        self._log = open(self.log_path, "w")
        command = [str(overlay.site_dir() / "bin" / "ros2"), "launch", "finers_ros",
                   "perception.launch.py", *(f"{k}:={v}" for k, v in args.items())]
        self.process = subprocess.Popen(
            command, env=launch_environment(tmp_path / "ros_log", extra_prefix),
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=tmp_path)

    def log(self) -> str:
        """Return what the launch and its processes printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> bool:
        """Wait until ``text`` is in the log; False when the launch ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                return text in self.log()
            time.sleep(0.2)
        return False

    def pid_of(self, executable: str) -> int:
        """Return the pid of the launched ``executable`` (launch's "process started" line)."""
        found = re.search(rf"\[{executable}-\d+\]: process started with pid \[(\d+)\]",
                          self.log())
        assert found, self.log()[-2000:]
        return int(found.group(1))

    def stop(self) -> int:
        """SIGINT, as Ctrl-C does; the launch's exit status (the group killed if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


def fake_rviz_prefix(tmp_path: Path) -> tuple:
    """
    Return ``(prefix, record)``: an ament prefix whose ``rviz2`` records its command line.

    Only what the launch passes is under test (config file, fixed frame, remappings,
    namespace); the stand-in runs until it is signalled, as RViz does.
    """
    prefix, record = tmp_path / "rviz_prefix", tmp_path / "rviz_argv.json"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").touch()
    executable = prefix / "lib" / "rviz2" / "rviz2"
    executable.parent.mkdir(parents=True)
    executable.write_text(
        f"#!{sys.executable}\nimport json, signal, sys, time\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv))\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(0))\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "time.sleep(600)\n")
    executable.chmod(0o755)
    return prefix, record


@pytest.fixture(scope="module")
def client(domain):
    from finers_ros.ros.client import PerceptionClient

    client = PerceptionClient(domain_id=domain, namespace="robot", name="realsense_camera",
                              camera_topic=f"{REALSENSE}/color/image_raw")
    yield client
    client.close()


@pytest.fixture(scope="module")
def colour_scene(scene_generator):
    """Return a 1920x1080 scene whose question is a colour-only referring instruction."""
    for index in range(50):
        image, record = scene_generator.scene(index)
        if record["grounding"] == "colour":
            return image, record
    raise AssertionError("no colour scene in the first 50")


def test_realsense_layout_end_to_end(domain, client, colour_scene, tmp_path):
    """
    The documented real-robot command: RealSense topics, depth, recording, RViz, a profile.

    A camera publishes colour, aligned depth and CameraInfo under /camera/camera; the node,
    under the robot's namespace, answers with a 3D point and records the episode.
    """
    import yaml
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from finers_ros.ros.rgbd_camera import RgbdStreamer, rgbd_scene

    params = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    params["/**"]["ros__parameters"]["frame_wait_s"] = 10.0
    config = tmp_path / "robot.yaml"
    config.write_text(yaml.safe_dump(params))
    record_dir = tmp_path / "episodes"
    prefix, rviz_record = fake_rviz_prefix(tmp_path)
    profile = ROOT / "config" / "fastdds_shm.xml"
    args = {"namespace": "/robot", "config": config, "camera_namespace": REALSENSE,
            "depth_enabled": "true", "pipeline_config": ROOT / "config" / "pipeline.yaml",
            "record_dir": record_dir, "use_sim_time": "false", "log_level": "debug",
            "use_rviz": "true", "rviz_fixed_frame": "camera_color_optical_frame",
            "fastdds_profile": profile}
    assert set(args) == END_TO_END_ARGS
    launch = Launch(args, tmp_path, extra_prefix=prefix)
    calls = Services(client.node)
    try:
        assert launch.wait_for("serving:"), launch.log()[-3000:]
        node = "/robot/finers_perception"
        assert (calls.get_parameter(node, "depth_enabled"), calls.get_parameter(node, "autostart"),
                calls.get_parameter(node, "use_sim_time")) == (True, True, False)
        assert calls.get_parameter(node, "record_dir") == str(record_dir)
        assert calls.get_parameter(node, "pipeline_config") == str(ROOT / "config"
                                                                   / "pipeline.yaml")
        assert calls.get_parameter(node, "frame_wait_s") == 10.0  # from config:=
        assert "[DEBUG]" in launch.log()
        environ = Path(f"/proc/{launch.pid_of('perception_node')}/environ").read_bytes()
        assert f"FASTDDS_DEFAULT_PROFILES_FILE={profile}".encode() in environ.split(b"\0")

        image, record = colour_scene
        scene = rgbd_scene(client.frame_message(image, frame_id="camera_color_optical_frame"),
                           record["points"])
        camera = RgbdStreamer(client.node, client.camera, scene)
        camera.depth_publisher = client.node.create_publisher(
            Image, f"{REALSENSE}/aligned_depth_to_color/image_raw", qos_profile_sensor_data)
        camera.info_publisher = client.node.create_publisher(
            CameraInfo, f"{REALSENSE}/color/camera_info", qos_profile_sensor_data)
        assert client.wait_for_node(TIMEOUT), launch.log()[-3000:]
        camera.start(hz=5.0)
        try:
            before = len(client.detections)
            client.send(record["Q"])
            detection = client.next_detection(before, TIMEOUT)
        finally:
            camera.close()
        assert detection is not None and detection.found, launch.log()[-3000:]
        assert detection.has_3d, detection.reason_3d
        point = (detection.point_3d.x, detection.point_3d.y, detection.point_3d.z)
        assert np.linalg.norm(np.subtract(point, scene.centre)) < 0.01, (point, scene.centre)
        deadline = time.monotonic() + TIMEOUT
        while not list(record_dir.rglob("*.mcap")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(record_dir.rglob("*.mcap")), launch.log()[-3000:]

        argv = json.loads(rviz_record.read_text())
        config_at = argv.index("-d") + 1
        assert argv[config_at].endswith("/share/finers_ros/rviz/finers.rviz")
        assert argv[argv.index("-f") + 1] == "camera_color_optical_frame"
        assert "__ns:=/robot" in argv
        assert f"camera/image_raw:={REALSENSE}/color/image_raw" in argv
    finally:
        calls.close()
        code = launch.stop()
    log = launch.log()
    assert code == 0, log[-3000:]
    assert re.search(r"\[perception_node-1\]: process has finished cleanly", log), log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_lifecycle_manager_drives_a_managed_node(domain, client, tmp_path):
    """
    ``lifecycle_managed:=true autostart:=false``: the node waits for a manager's transitions.

    Nothing else configures it (its own autostart is off), so the manager's configure and
    activate both succeed, and depth subscribes on the named topics.
    """
    from lifecycle_msgs.msg import Transition

    args = {"lifecycle_managed": "true", "autostart": "false", "namespace": "/managed",
            "camera_topic": "/cam/rgb/image_rect", "depth_topic": "/cam/depth_registered",
            "camera_info_topic": "/cam/rgb/camera_info", "depth_enabled": "true"}
    assert set(args) - {"namespace"} == MANAGED_ARGS
    launch = Launch(args, tmp_path)
    calls = Services(client.node)
    node = "/managed/finers_perception"
    try:
        assert calls.state(node) == "unconfigured", launch.log()[-3000:]
        time.sleep(2.0)  # a configure from anywhere else would have happened by now
        assert calls.state(node) == "unconfigured", launch.log()[-3000:]
        assert calls.get_parameter(node, "autostart") is False
        assert calls.change_state(node, Transition.TRANSITION_CONFIGURE), launch.log()[-3000:]
        assert calls.change_state(node, Transition.TRANSITION_ACTIVATE), launch.log()[-3000:]
        assert calls.state(node) == "active"
        deadline = time.monotonic() + TIMEOUT
        wanted = {"/cam/rgb/image_rect", "/cam/depth_registered", "/cam/rgb/camera_info"}
        while time.monotonic() < deadline:
            topics = {name for name, _ in client.node.get_subscriber_names_and_types_by_node(
                "finers_perception", "/managed")}
            if wanted <= topics:
                break
            time.sleep(0.2)
        assert wanted <= topics, topics
    finally:
        calls.close()
        code = launch.stop()
    assert code == 0, launch.log()[-3000:]


def test_sigterm_to_the_launch_stops_the_node(domain, tmp_path):
    """
    ``docker stop``: SIGTERM to ``ros2 launch``, which exits without stopping the node.

    Under a subreaper (a container's init), the orphaned node must shut down by itself, in
    order: exit 0, its shared-memory segments removed. The launch drives the managed node to
    active here (``lifecycle_managed:=true``, its own autostart off).
    """
    command = [str(overlay.site_dir() / "bin" / "ros2"), "launch", "finers_ros",
               "perception.launch.py", "lifecycle_managed:=true", "namespace:=/stopped"]
    assert {"lifecycle_managed"} == SIGTERM_ARGS
    log = tmp_path / "launch.log"
    env = launch_environment(tmp_path / "ros_log")
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(ROOT / "config" / "fastdds_shm.xml")
    run = subprocess.run([sys.executable, str(HERE / "orphan_supervisor.py"), str(log),
                          "serving:", "SIGTERM", "20", "--", *command],
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr + log.read_text()
    result = json.loads(run.stdout.strip().splitlines()[-1])
    text = log.read_text(errors="replace")
    assert result["launcher"] != 0, text[-3000:]
    assert list(result["orphans"].values()) == [0], (result, text[-3000:])
    (node_pid,) = result["orphans"]
    node_log = "".join(p.read_text(errors="replace")
                       for p in (tmp_path / "ros_log").rglob(f"*_{node_pid}_*.log"))
    assert "exited (ros2 launch stopped by SIGTERM or killed): shutting down" in node_log, (
        node_log[-2000:])
    mapped = set(result["segments"][node_pid])
    assert mapped, "the node mapped no shared-memory segment"
    # what the killed launcher mapped may stay (its own participant was not deleted; the
    # domain's teardown cleans it); nothing only the node held may
    launcher = set().union(*(set(v) for k, v in result["segments"].items() if k != node_pid))
    left = (mapped - launcher) & set(os.listdir("/dev/shm"))
    assert left <= _segments_in_use(), f"left behind: {sorted(left - _segments_in_use())}"


def test_a_true_false_typo_stops_the_launch_before_anything_starts(domain, tmp_path):
    launch = Launch({"depth_enabled": "ture"}, tmp_path)
    try:
        launch.process.wait(TIMEOUT)
    finally:
        launch.stop()
    log = launch.log()
    assert launch.process.returncode != 0, log
    assert "depth_enabled:=ture: expected true or false" in log, log
    assert "process started" not in log, log


def test_every_documented_argument_is_declared_and_exercised(tmp_path):
    declared = _declared_arguments(tmp_path)
    documented = set(re.findall(r"^\| `(\w+)` \|", (ROOT / "docs" / "real_robot.md").read_text(),
                                re.MULTILINE))
    assert documented == declared
    assert declared <= END_TO_END_ARGS | MANAGED_ARGS | SIGTERM_ARGS


def _declared_arguments(tmp_path: Path) -> set:
    run = subprocess.run([str(overlay.site_dir() / "bin" / "ros2"), "launch", "finers_ros",
                          "perception.launch.py", "--show-args"],
                         env=launch_environment(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return set(re.findall(r"^    '(\w+)':$", run.stdout, re.MULTILINE))


def _segments_in_use() -> set:
    in_use = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        in_use |= {line.split("/dev/shm/", 1)[1].strip() for line in text.splitlines()
                   if "/dev/shm/fastdds_" in line}
    return in_use
