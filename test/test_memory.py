"""
The node's malloc settings (finers_ros/ros/memory.py) take effect wherever the node starts.

Each case runs in a fresh interpreter: it starts the node the way a user would (the
``finers-perception`` console script's entry point, or ``tools/perception_node``, which
``ros2 launch`` runs), with a missing params file so it exits right after start-up without ROS,
then receives "frames" as rclpy does on an executor thread: a 25 MB message buffer is
written, converted into a new 25 MB frame kept as the latest, and the previous latest freed.
The kernel's minor page faults of that thread (``getrusage``) show whether freed frames went
back to the kernel and were faulted in again, which is the cost the settings remove.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAME_PAGES = 3840 * 2160 * 3 // 4096

PROBE = r"""
import importlib.metadata, json, resource, runpy, sys, threading

how = sys.argv[1]
start = ["--ros-args", "--params-file", "/nonexistent/finers-params.yaml"]
if how == "console_script":
    entry = [e for e in importlib.metadata.entry_points(group="console_scripts")
             if e.name == "finers-perception"][0]
    code = entry.load()(["finers-perception", *start])
elif how == "launch_executable":
    sys.argv = [sys.argv[2], *start]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as stop:
        code = stop.code
else:
    code = None
assert "rclpy" not in sys.modules, "the probe must not start ROS"

SIZE = 3840 * 2160 * 3
faults = []


def receive_frames():
    latest = None
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        message = bytearray(SIZE)  # the taken message's data, written by the middleware
        rgb = bytes(message)  # the converted frame, kept as the latest
        del message
        latest = rgb  # the previous latest frame is freed here
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    return latest


thread = threading.Thread(target=receive_frames)
thread.start()
thread.join()
print(json.dumps({"exit": code, "faults": faults}))
"""


def steady_faults(how: str, tuning: str = "1") -> dict:
    """Page faults per received frame after 3 warm-up frames, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["FINERS_MALLOC_TUNING"] = tuning
    done = subprocess.run([sys.executable, "-c", PROBE, how,
                           str(ROOT / "tools" / "perception_node")],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["steady"] = sum(result["faults"][3:])
    return result


def test_frames_fault_in_again_without_the_settings():
    """The control: glibc's defaults give freed frames back, so the check below can fail."""
    untuned = steady_faults("console_script", tuning="0")
    assert untuned["exit"] == 2
    assert untuned["steady"] >= 2 * FRAME_PAGES, untuned


@pytest.mark.parametrize("how", ["console_script", "launch_executable"])
def test_node_start_keeps_frame_buffers_mapped(how):
    tuned = steady_faults(how)
    assert tuned["exit"] == 2  # the missing params file: refused after tune_malloc ran
    assert tuned["steady"] < FRAME_PAGES // 4, tuned
