#!/usr/bin/env python3
"""ROS 2 benchmark: instruction -> Detection round trip over real topics with a 4K camera
stream, and 4K frame delivery with the shipped shared-memory Fast DDS profile versus the
default transports, measured side by side in one run. Writes ``<out>/bench_ros.json``.

    python benchmarks/bench_ros.py --out benchmarks/results [--requests 20]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np


def frame_delivery(domain: int, image: np.ndarray, shared_memory: bool, seconds: float, hz: float) -> dict:
    """Frames the node counts (status.frames_received) out of those published."""
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.launcher import NodeProcess, ros_environment

    env = ros_environment(domain, shared_memory)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    node = NodeProcess(domain, shared_memory=shared_memory)
    client = PerceptionClient(domain_id=domain, name=f"bench_{int(shared_memory)}")
    try:
        assert client.wait_for_node(60), node.log()[-2000:]
        msg = client.frame_message(image)
        client.wait_until(lambda: client.status is not None, 10)
        before = client.status.frames_received
        published = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            client.publish_frame(msg)
            published += 1
            time.sleep(1.0 / hz)
        time.sleep(2.0)
        client.wait_until(lambda: client.status.frames_received > before, 3)
        received = client.status.frames_received - before
    finally:
        client.close()
        node.stop()
        os.environ.clear()
        os.environ.update(saved)
    return {"published": published, "received": int(received), "delivered": round(received / max(1, published), 3)}


def round_trips(domain: int, image: np.ndarray, instruction: str, requests: int, policy: str) -> dict:
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.launcher import NodeProcess, ros_environment

    saved = dict(os.environ)
    os.environ.update(ros_environment(domain))
    node = NodeProcess(domain, parameters={"frame_policy": policy})
    client = PerceptionClient(domain_id=domain, name="bench_rt")
    samples, stages = [], {}
    try:
        assert client.wait_for_node(60), node.log()[-2000:]
        client.stream(client.frame_message(image), hz=10.0)
        time.sleep(1.0)
        for _ in range(requests):
            before = len(client.detections)
            sent = time.monotonic()
            client.send(instruction)
            detection = client.next_detection(before, 60)
            samples.append((time.monotonic() - sent) * 1000)
            for name, value in zip(detection.timing_names, detection.timings_ms):
                stages.setdefault(name, []).append(value)
            assert detection.found, detection.error
    finally:
        client.close()
        node.stop()
        os.environ.clear()
        os.environ.update(saved)
    return {"frame_policy": policy, "requests": requests, "round_trip_ms_median": round(statistics.median(samples), 1),
            "stage_ms_median": {k: round(statistics.median(v), 1) for k, v in stages.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hz", type=float, default=15.0, help="camera rate for the delivery test")
    args = parser.parse_args()
    from domain_coordinator import domain_id

    from finers_ros.ros.demo import INSTRUCTION, red_scene
    from finers_ros.ros.launcher import clean_shared_memory

    image, _ = red_scene()
    report = {"frame": f"3840x2160 rgb8, best effort, depth 1, {args.hz:g} Hz for {args.seconds:g} s"}
    with domain_id() as domain:
        report["delivery_shared_memory"] = frame_delivery(domain, image, True, args.seconds, args.hz)
        report["delivery_default_transports"] = frame_delivery(domain, image, False, args.seconds, args.hz)
        report["round_trip_latest"] = round_trips(domain, image, INSTRUCTION, args.requests, "latest")
        report["round_trip_after_request"] = round_trips(domain, image, INSTRUCTION, args.requests, "after_request")
    clean_shared_memory()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_ros.json").write_text(json.dumps(report, indent=2))
    shm, default = report["delivery_shared_memory"], report["delivery_default_transports"]
    print(f"4K frames delivered to the node: shared-memory profile {shm['received']}/{shm['published']}, "
          f"default transports {default['received']}/{default['published']}")
    for key in ("round_trip_latest", "round_trip_after_request"):
        r = report[key]
        print(f"instruction -> Detection over ROS, frame_policy={r['frame_policy']}: median {r['round_trip_ms_median']} ms "
              f"over {r['requests']} (stages: " + ", ".join(f"{k} {v}" for k, v in r["stage_ms_median"].items()) + ")")
    print(f"wrote {args.out / 'bench_ros.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
