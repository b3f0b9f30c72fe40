#!/usr/bin/env python3
"""
Run one side of a 4K camera link, as its own process.

``camera`` publishes 3840x2160 rgb8
frames stamped with the send time; ``sink`` is a plain rclpy subscriber that reports the
frames it got, their transport latency (receive time minus stamp, one host, one clock) and
its own CPU time per frame. Used by ``bench_speed.py`` so that every transport case runs in
fresh processes with exactly the environment it names. Prints one JSON line.

    python benchmarks/transport_probe.py camera --hz 5 --seconds 6 [--reliable]
    python benchmarks/transport_probe.py sink --seconds 12 [--reliable] [--tune-malloc]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def qos(reliable: bool):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if reliable:
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_sensor_data  # best effort, depth 5: what camera drivers use


def camera(node, args) -> dict:
    import numpy as np
    from sensor_msgs.msg import Image

    publisher = node.create_publisher(Image, "/camera/image_raw", qos(args.reliable))
    deadline = time.monotonic() + args.match_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    matched = publisher.get_subscription_count() > 0
    time.sleep(0.5)  # the match is seen here first; give the other side the same moment
    msg = Image(height=2160, width=3840, encoding="rgb8", step=3840 * 3)
    if args.scene:  # the demo's scene: the bring-up backend finds the red screw in it
        from finers_ros.ros.demo import red_scene

        pixels = red_scene()[0]
    else:
        pixels = np.random.default_rng(0).integers(0, 255, (2160, 3840, 3), dtype=np.uint8)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    msg.header.frame_id = "camera"
    published = 0
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
        published += 1
        time.sleep(max(0.0, start + published / args.hz - time.monotonic()))
    time.sleep(1.0)  # let the last frames drain before the participant goes away
    return {"role": "camera", "matched": matched, "published": published}


def sink(node, args) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    latencies = []

    def on_image(msg) -> None:
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((now - stamp) / 1e6)

    node.create_subscription(Image, "/camera/image_raw", on_image, qos(args.reliable))
    start = time.monotonic()
    cpu_start = time.process_time()
    while time.monotonic() - start < args.seconds:
        rclpy.spin_once(node, timeout_sec=0.1)
    cpu_ms = (time.process_time() - cpu_start) * 1000.0
    return {"role": "sink", "received": len(latencies),
            "latency_ms_median": round(statistics.median(latencies), 2) if latencies else None,
            "cpu_ms_per_frame": round(cpu_ms / len(latencies), 2) if latencies else None,
            "cpu_ms_total": round(cpu_ms, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("role", choices=("camera", "sink"))
    parser.add_argument("--hz", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--match-s", type=float, default=10.0)
    parser.add_argument("--reliable", action="store_true")
    parser.add_argument("--scene", action="store_true", help="camera: the demo scene, not noise")
    parser.add_argument("--tune-malloc", action="store_true", help="the node's mallopt settings")
    args = parser.parse_args()
    if args.tune_malloc:
        from finers_ros.ros.memory import tune_malloc

        tune_malloc()
    import rclpy

    rclpy.init()
    node = rclpy.create_node(f"transport_probe_{args.role}")
    try:
        report = camera(node, args) if args.role == "camera" else sink(node, args)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
