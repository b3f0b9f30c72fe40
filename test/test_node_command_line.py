"""
finers-perception's command line and its parameter types, each run as a real node process.

Options before ``--ros-args`` are the program's own (``--help``, ``--exit-with-parent``);
everything after it goes to ROS untouched. A value of the wrong type is refused at start with
rclpy's reason and exit status 2, from ``-p`` and from a params file alike; a whole number
for a float parameter is taken as that float.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from finers_ros.ros.launcher import NodeProcess, ros_environment
from ros_services import Services

PROGRAM = str(Path(sys.executable).parent / "finers-perception")
START_S = 60.0  # a node that should refuse but starts is stopped after serving


def run_program(domain: int, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run finers-perception with ``args``; a node that starts instead runs out ``timeout``."""
    return subprocess.run([PROGRAM, *args], env=ros_environment(domain), capture_output=True,
                          text=True, timeout=timeout)


def start_outcome(node: NodeProcess) -> tuple:
    """Return (exit status, log) of a node that either exits or starts serving (then stopped)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and node.alive() and "serving:" not in node.log():
        time.sleep(0.1)
    log = node.log()
    return node.stop(), log


def type_refusal(name: str, value: str, given: str, expected: str) -> str:
    """Return rclpy's reason for a value of the wrong type, as the node prints it."""
    return (f"{name}: Trying to set parameter '{name}' to '{value}' of type '{given}', "
            f"expecting type '{expected}'")


@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_says_how_to_pass_ros_arguments_and_exits_0(domain, option):
    done = run_program(domain, option)
    assert done.returncode == 0, done.stderr
    for text in ("finers-perception", "--ros-args", "-p name:=value", "--params-file",
                 "--exit-with-parent", "perception.yaml", "docs/ros_interface.md"):
        assert text in done.stdout, (text, done.stdout)
    assert "serving:" not in done.stdout + done.stderr


@pytest.mark.parametrize("args, named", [
    (["--bogus"], "--bogus"),
    (["--bogus", "--ros-args", "-p", "queue_limit:=3"], "--bogus"),
    (["stray", "--ros-args", "-r", "__ns:=/x"], "stray"),
])
def test_an_unknown_option_exits_2_with_one_line_naming_it(domain, args, named):
    done = run_program(domain, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert lines[0].startswith("finers-perception: ")


def test_ros_arguments_reach_ros_and_whole_numbers_fill_float_parameters(domain, tmp_path):
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.params import parameter_defaults

    user_file = tmp_path / "mine.yaml"
    user_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "request_timeout_s": 30, "queue_limit": 3}}}))
    node = NodeProcess(domain, ros_args=(
        "-r", "__node:=cli_node", "-r", "__ns:=/cli", "--params-file", str(user_file),
        "-p", "track_stall_s:=5", "-p", "frame_wait_s:=7.5", "--log-level", "debug"))
    client = PerceptionClient(domain_id=domain, name="cli_client")
    services = Services(client.node)
    try:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and node.alive() and "serving:" not in node.log():
            time.sleep(0.1)
        assert "serving:" in node.log(), node.log()[-3000:]
        values = {name: services.get_parameter("/cli/cli_node", name)
                  for name in ("track_stall_s", "request_timeout_s", "frame_wait_s",
                               "queue_limit", "frame_depth")}
        # `ros2 param set ... frame_wait_s 9` sends an integer: taken as 9.0
        assert services.set_parameter("/cli/cli_node", "frame_wait_s", 9) == (True, "")
        live = services.get_parameter("/cli/cli_node", "frame_wait_s")
        refused, why = services.set_parameter("/cli/cli_node", "frame_wait_s", "abc")
    finally:
        services.close()
        client.close()
        code = node.stop()
    log = node.log()
    assert values == {"track_stall_s": 5.0, "request_timeout_s": 30.0, "frame_wait_s": 7.5,
                      "queue_limit": 3, "frame_depth": parameter_defaults()["frame_depth"]}
    assert isinstance(values["track_stall_s"], float)
    assert isinstance(values["request_timeout_s"], float)
    assert live == 9.0 and isinstance(live, float)
    assert not refused and "type" in why.lower(), why
    assert "[DEBUG]" in log and "[cli.cli_node]" in log, log[-3000:]
    assert code == 0, log[-3000:]


def test_wrong_types_on_the_command_line_are_refused(domain):
    node = NodeProcess(domain, ros_args=(
        "-p", "track_stall_s:=abc", "-p", "frame_wait_s:=1e400", "-p", "queue_limit:=2.5",
        "-p", "frame_depth:=abc", "-p", "publish_mask:=5", "-p", "pipeline_config:=5",
        "-p", "track_ring_mb:=true"))
    code, log = start_outcome(node)
    assert code == 2, log[-3000:]
    lines = [line for line in log.splitlines() if "invalid parameters" in line]
    assert len(lines) == 1, log[-3000:]
    for reason in (type_refusal("track_stall_s", "abc", "STRING", "DOUBLE"),
                   type_refusal("frame_wait_s", "1e400", "STRING", "DOUBLE"),
                   type_refusal("queue_limit", "2.5", "DOUBLE", "INTEGER"),
                   type_refusal("frame_depth", "abc", "STRING", "INTEGER"),
                   type_refusal("publish_mask", "5", "INTEGER", "BOOL"),
                   type_refusal("pipeline_config", "5", "INTEGER", "STRING"),
                   type_refusal("track_ring_mb", "True", "BOOL", "DOUBLE")):
        assert reason in lines[0], (reason, lines[0])


def test_wrong_types_in_a_params_file_are_refused(domain):
    node = NodeProcess(domain, parameters={"track_stall_s": "abc", "overlay_max_width": 640.0,
                                           "publish_overlay": 1})
    code, log = start_outcome(node)
    assert code == 2, log[-3000:]
    lines = [line for line in log.splitlines() if "invalid parameters" in line]
    assert len(lines) == 1, log[-3000:]
    for reason in (type_refusal("track_stall_s", "abc", "STRING", "DOUBLE"),
                   type_refusal("overlay_max_width", "640.0", "DOUBLE", "INTEGER"),
                   type_refusal("publish_overlay", "1", "INTEGER", "BOOL")):
        assert reason in lines[0], (reason, lines[0])


def test_a_whole_number_out_of_a_float_range_is_refused_with_the_range(domain):
    node = NodeProcess(domain, ros_args=("-p", "track_stall_s:=5000",))
    code, log = start_outcome(node)
    assert code == 2, log[-3000:]
    assert "track_stall_s: Parameter track_stall_s out of range" in log, log[-3000:]
    assert "value: 5000.0" in log, log[-3000:]
