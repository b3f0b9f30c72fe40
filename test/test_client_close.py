"""
``PerceptionClient`` used as a standalone camera: ``stream()``, then ``close()``, then exit.

Each run is a real process streaming 1280x720 frames at 30 Hz over the shipped shared-memory
profile in an isolated domain (no peer, so every segment it maps is its own). It must exit
with status 0, print nothing from the C++ runtime, and leave none of its segments in /dev/shm.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUNS = 8
PARALLEL = 4
STREAM_S = 1.0

CAMERA = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from finers_ros.ros.client import PerceptionClient

client = PerceptionClient(domain_id=int(sys.argv[1]), name="standalone_camera")
client.stream(client.frame_message(np.zeros((720, 1280, 3), np.uint8)), hz=30.0)
time.sleep(float(sys.argv[2]))
maps = Path("/proc/self/maps").read_text().splitlines()
own = sorted({line.split("/dev/shm/", 1)[1].strip() for line in maps
              if "/dev/shm/fastdds_" in line and "port" not in line.split("/dev/shm/", 1)[1]})
client.close()
print(json.dumps({"segments": own}), flush=True)
"""


def _segments_in_use() -> set:
    """Return the Fast DDS segments some live process maps."""
    in_use = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        in_use |= {line.split("/dev/shm/", 1)[1].strip() for line in text.splitlines()
                   if "/dev/shm/fastdds_" in line}
    return in_use


def test_standalone_camera_exits_cleanly_and_removes_its_segments(domain):
    from finers_ros.ros.launcher import ros_environment

    env = ros_environment(domain)
    failures, left = [], set()
    for first in range(0, RUNS, PARALLEL):
        runs = [subprocess.Popen([sys.executable, "-c", CAMERA, str(domain), str(STREAM_S)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
                for _ in range(PARALLEL)]
        for index, run in enumerate(runs):
            try:
                out, err = run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, 9)
                out, err = run.communicate()
            name = f"run {first + index}"
            if run.returncode != 0 or "terminate called" in err:
                failures.append(f"{name}: exit {run.returncode}: {err.strip()[-400:]}")
                continue
            segments = set(json.loads(out.strip().splitlines()[-1])["segments"])
            if not segments:
                failures.append(f"{name}: mapped no segment (is the SHM profile in use?)")
            left |= segments & set(os.listdir("/dev/shm"))
    assert not failures, "\n".join(failures)
    assert not left - _segments_in_use(), f"left behind: {sorted(left - _segments_in_use())}"
