"""
Measure 4K frame transport between two fresh processes per case.

Each process has exactly the environment the case names (nothing inherited from the
benchmark: FASTDDS_* and RMW_* are removed first). The camera publishes 3840x2160 rgb8
at 5 Hz for 8 s once it sees the subscriber; the subscriber is a plain rclpy node. Used by
``bench_speed.py``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from finers_ros.ros.paths import fastdds_profile

PROBE = Path(__file__).with_name("transport_probe.py")
STRIPPED = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS", "RMW_IMPLEMENTATION",
            "FASTRTPS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID", "ROS_LOCALHOST_ONLY")


def cases() -> Dict[str, dict]:
    """Map name -> camera env, node (subscriber) env, QoS. Best effort unless it says reliable."""
    profile = {"FASTDDS_DEFAULT_PROFILES_FILE": str(fastdds_profile())}
    large = {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
    return {
        "default_both": {"camera": {}, "node": {}, "reliable": False},
        "large_data_both": {"camera": large, "node": large, "reliable": False},
        "profile_both": {"camera": profile, "node": profile, "reliable": False},
        "profile_camera_only": {"camera": profile, "node": {}, "reliable": False},
        "large_data_camera_only": {"camera": large, "node": {}, "reliable": False},
        "reliable_default_both": {"camera": {}, "node": {}, "reliable": True},
    }


def _env(domain: int, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", **extra)
    return env


def run_case(domain: int, case: dict, hz: float = 5.0, seconds: float = 8.0) -> dict:
    qos = ["--reliable"] if case["reliable"] else []
    sink = subprocess.Popen([sys.executable, str(PROBE), "sink", "--seconds", str(seconds + 7),
                             *qos],
                            env=_env(domain, case["node"]), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.5)
    camera = subprocess.run([sys.executable, str(PROBE), "camera", "--hz", str(hz), "--seconds",
                             str(seconds), *qos], env=_env(domain, case["camera"]),
                            capture_output=True, text=True, timeout=60)
    out, _ = sink.communicate(timeout=60)
    sent = json.loads(camera.stdout.strip().splitlines()[-1])
    got = json.loads(out.strip().splitlines()[-1])
    return {"published": sent["published"], "matched": sent["matched"],
            "received": got["received"], "latency_ms_median": got["latency_ms_median"],
            "sink_cpu_ms_per_frame": got["cpu_ms_per_frame"]}


def bench_transport(domain: int, repeats: int = 2) -> Dict[str, dict]:
    """Each case ``repeats`` times, alternating cases; counts summed, latencies' median."""
    from finers_ros.ros.launcher import clean_shared_memory

    runs: Dict[str, List[dict]] = {name: [] for name in cases()}
    for _ in range(repeats):
        for name, case in cases().items():
            runs[name].append(run_case(domain, case))
            try:
                clean_shared_memory()
            except RuntimeError:
                pass
    report = {}
    for name, results in runs.items():
        latencies = [r["latency_ms_median"] for r in results if r["latency_ms_median"] is not None]
        cpu = [r["sink_cpu_ms_per_frame"] for r in results
               if r["sink_cpu_ms_per_frame"] is not None]
        report[name] = {
            "camera_env": cases()[name]["camera"], "node_env": cases()[name]["node"],
            "qos": "reliable" if cases()[name]["reliable"] else "best_effort",
            "published": sum(r["published"] for r in results),
            "received": sum(r["received"] for r in results),
            "latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
            "sink_cpu_ms_per_frame": round(statistics.median(cpu), 1) if cpu else None,
            "runs": results,
        }
    return report
