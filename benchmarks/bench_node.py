"""
Measure the node over real topics (its own process, bring-up backend).

Intake CPU per 4K frame, instruction round trip, and a long stream for memory and loss.

Used by ``bench_speed.py``; each function starts its own node so that nothing carries over.
Frames are 3840x2160 rgb8 published by the benchmark as a camera driver would (best effort,
shared-memory profile on both sides, as the tests and ``finers-demo`` use).
"""
from __future__ import annotations

import json
import statistics
import time
from contextlib import contextmanager
from typing import Dict, Optional

FRAME_BYTES = 3840 * 2160 * 3


@contextmanager
def running_node(domain: int, parameters: Optional[dict] = None, env: Optional[dict] = None,
                 camera: bool = True):
    """
    (NodeProcess, PerceptionClient) for one node started fresh; both closed afterwards.

    ``camera``: also wait until the node's frame subscription matched the client's raw
    camera publisher (not with ``image_transport: compressed``).
    """
    import os

    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.launcher import NodeProcess, ros_environment

    saved = dict(os.environ)
    os.environ.update(ros_environment(domain))  # the client's own participant: same profile
    node = NodeProcess(domain, parameters=parameters, env=env)
    client = None
    try:
        client = PerceptionClient(domain_id=domain, name="bench_node_client")
        if not client.wait_for_node(90, camera=camera):
            raise RuntimeError(f"node did not come up: {node.log()[-1500:]}")
        yield node, client
    finally:
        if client is not None:
            client.close()
        node.stop()
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def camera_process(domain: int, hz: float = 10.0, seconds: float = 3600.0):
    """
    Stream the demo scene from its own process, as a camera driver would.

    Not from the client: a client that also publishes 25 MB frames delays its own Detection
    callbacks.
    """
    import subprocess
    import sys
    from pathlib import Path

    from finers_ros.ros.launcher import ros_environment

    probe = Path(__file__).with_name("transport_probe.py")
    camera = subprocess.Popen([sys.executable, str(probe), "camera", "--scene", "--hz", str(hz),
                               "--seconds", str(seconds)], env=ros_environment(domain),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield camera
    finally:
        camera.terminate()
        camera.wait(10)


def _cpu_s(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def intake_cpu(domain: int, image, tuned: bool, seconds: float = 15.0, hz: float = 10.0) -> Dict:
    """
    Node CPU per received frame: CPU while streaming minus CPU while idle, same duration.

    Every frame taken into the node (``frame_intake: every_frame``), as while it serves or
    tracks; what an idle node with on-demand intake costs is ``bench_idle.py``'s.
    """
    import psutil

    env = {} if tuned else {"FINERS_MALLOC_TUNING": "0"}
    with running_node(domain, parameters={"frame_intake": "every_frame"},
                      env=env) as (node, client):
        process = psutil.Process(node.process.pid)
        time.sleep(1.0)
        idle_start = _cpu_s(process)
        time.sleep(seconds / 3)
        idle_per_s = (_cpu_s(process) - idle_start) / (seconds / 3)
        client.wait_until(lambda: client.status is not None, 10)
        frames_before = client.status.frames_received
        client.stream(client.frame_message(image), hz=hz)
        time.sleep(1.0)  # first frames: page faults of the first buffers, not steady state
        client.wait_until(lambda: client.status.frames_received > frames_before, 5)
        first = client.status.frames_received
        cpu_start, wall_start = _cpu_s(process), time.monotonic()
        time.sleep(seconds)
        cpu = _cpu_s(process) - cpu_start
        wall = time.monotonic() - wall_start
        client.stop_stream()
        time.sleep(1.5)  # one more status message with the final count
        frames = client.status.frames_received - first
        rss_mb = process.memory_info().rss / 1e6
    per_frame = (cpu - idle_per_s * wall) * 1000.0 / max(1, frames)
    return {"tuned": tuned, "frames": int(frames), "seconds": round(wall, 1),
            "cpu_ms_per_frame": round(per_frame, 2),
            "idle_cpu_ms_per_s": round(idle_per_s * 1000, 2),
            "rss_mb": round(rss_mb, 1)}


def round_trips(domain: int, image, instruction: str, requests: int = 20, hz: float = 10.0,
                policy: str = "latest") -> Dict:
    """Instruction -> Detection over ROS while a 4K camera streams, and minus the pipeline."""
    samples, minus, stages = [], [], {}
    with running_node(domain, parameters={"frame_policy": policy}) as (_, client), \
            camera_process(domain, hz):
        client.wait_until(lambda: client.status is not None
                          and client.status.frames_received > 0, 30)
        time.sleep(1.0)
        for index in range(requests):
            before = len(client.detections)
            sent = time.monotonic()
            client.send(json.dumps({"instruction": instruction, "id": f"rt-{index}"}))
            detection = client.next_detection(before, 60)
            elapsed = (time.monotonic() - sent) * 1000.0
            if detection is None:
                raise RuntimeError("no Detection within 60 s")
            timings = dict(zip(detection.timing_names, detection.timings_ms))
            samples.append(elapsed)
            minus.append(elapsed - timings.get("total", 0.0))
            for name, value in timings.items():
                stages.setdefault(name, []).append(value)
            time.sleep(0.25)  # requests one at a time, not back to back with the last frame
    return {"frame_policy": policy, "requests": requests,
            "round_trip_ms": round(statistics.median(samples), 1),
            "round_trip_minus_pipeline_ms": round(statistics.median(minus), 1),
            "stage_ms_median": {k: round(statistics.median(v), 1) for k, v in stages.items()}}


def stream(domain: int, image, instruction: str, seconds: float = 300.0, warmup_s: float = 60.0,
           hz: float = 10.0) -> Dict:
    """4K at ``hz`` and one instruction a second for ``seconds``: RSS, loss, result age."""
    import psutil

    rss, uss, ages, sent = [], [], [], 0
    with running_node(domain, parameters={"frame_policy": "latest"}) as (node, client), \
            camera_process(domain, hz):
        process = psutil.Process(node.process.pid)
        rss_start = process.memory_info().rss / 1e6
        client.wait_until(lambda: client.status is not None
                          and client.status.frames_received > 0, 30)
        start = time.monotonic()
        seen = 0
        while time.monotonic() - start < seconds:
            client.send(json.dumps({"instruction": instruction, "id": f"stream-{sent}"}))
            sent += 1
            rss.append((time.monotonic() - start, process.memory_info().rss / 1e6))
            if sent % 30 == 1:  # private memory (RSS minus shared segments and libraries)
                uss.append(process.memory_full_info().uss / 1e6)
            next_tick = start + sent
            while time.monotonic() < next_tick:
                client.wait_until(lambda: len(client.detections) > seen,
                                  max(0.0, next_tick - time.monotonic()))
                now_ns = time.time_ns()
                for detection in client.detections[seen:]:
                    stamp = detection.header.stamp
                    stamp = stamp.sec * 1_000_000_000 + stamp.nanosec
                    ages.append((now_ns - stamp) / 1e6)
                seen = len(client.detections)
        client.wait_until(lambda: len(client.detections) >= sent, 30)
        answered = {d.request_id for d in client.detections}
        errors = [d.error for d in client.detections if d.error]
    after_warmup = [value for t, value in rss if t >= warmup_s] or [rss[-1][1]]
    return {"seconds": seconds, "instructions": sent,
            "lost_instructions": sum(f"stream-{i}" not in answered for i in range(sent)),
            "errors": len(errors), "first_error": errors[0] if errors else "",
            "rss_start_mb": round(rss_start, 1), "rss_peak_mb": round(max(v for _, v in rss), 1),
            "rss_after_warmup_mb": round(after_warmup[0], 1), "rss_end_mb": round(rss[-1][1], 1),
            "rss_growth_mb": round(rss[-1][1] - after_warmup[0], 1),
            "private_peak_mb": round(max(uss), 1) if uss else None,
            "result_age_ms_median": round(statistics.median(ages), 1) if ages else None}
