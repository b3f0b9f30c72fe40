#!/usr/bin/env python3
"""
What an idle node costs under a 4K 10 Hz camera, and what taking frames on demand adds.

The node runs in its own process (bring-up backend); a camera process streams the demo's
3840x2160 rgb8 scene at 10 Hz (best effort, the shared-memory profile on both sides). For
``frame_intake: on_demand`` (the default) and ``every_frame`` (every frame copied into the
node, the behaviour before on-demand intake):

- idle CPU: the node's CPU time (all threads, middleware included) over a window with the
  camera streaming and nothing asked, as a share of one core, and per frame the camera sent;
  also the node with no camera at all, and with ``image_transport: compressed`` (the same
  scene as a 4K JPEG at 10 Hz), for reference;
- latency: instruction -> Detection minus the pipeline's own time (``total``), for requests
  sent after the node has been idle for a while (``idle_gap_s``), with ``frame_policy``
  latest (answered on the newest frame the middleware holds: on demand it is taken then)
  and after_request (waits for the next frame in both modes); and what on-demand intake
  puts on a ``latest`` request's path, measured directly: taking one held 4K frame from
  the middleware into Python (wall and CPU time of ``take_message``, this process, the
  node's malloc settings).

Prints the figures and writes ``<out>/idle.json``.

    .venv/bin/python benchmarks/bench_idle.py --out benchmarks/results [--seconds 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

HZ = 10.0
MODES = ("on_demand", "every_frame")
TARGET_IDLE_PCT = 5.0  # of one core, idle and not tracking


def _cpu_s(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@contextmanager
def jpeg_camera(client, hz: float = HZ):
    """Publish the demo scene as a 4K JPEG CompressedImage at ``hz`` from a thread."""
    import cv2
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    from finers_ros.ros.demo import red_scene

    image = red_scene()[0]
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    publisher = client.node.create_publisher(CompressedImage, "/camera/image_raw/compressed",
                                             qos_profile_sensor_data)
    msg = CompressedImage(format="jpeg", data=jpeg.tobytes())
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            msg.header.stamp = client.node.get_clock().now().to_msg()
            publisher.publish(msg)
            stop.wait(1.0 / hz)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield len(msg.data)
    finally:
        stop.set()
        thread.join(5)


def idle_cpu(domain: int, mode: str, seconds: float, camera: bool = True,
             transport: str = "raw") -> dict:
    """Node CPU while a 4K camera streams (or none does) and nothing is asked."""
    from bench_node import camera_process, running_node

    parameters = {"frame_intake": mode, "image_transport": transport}
    with running_node(domain, parameters=parameters, camera=transport == "raw") as \
            (node, client):
        process = psutil.Process(node.process.pid)
        streaming = None
        if camera:
            streaming = camera_process(domain, HZ) if transport == "raw" else \
                jpeg_camera(client)
        try:
            if streaming is not None:
                streaming.__enter__()
                client.wait_until(lambda: client.status is not None
                                  and client.status.frames_received > 0, 30)
            time.sleep(3.0)  # past the start: first buffers, discovery
            status = client.status
            frames0, taken0, decoded0 = (status.frames_received, status.frames_taken,
                                         status.frames_decoded)
            cpu0, wall0 = _cpu_s(process), time.monotonic()
            time.sleep(seconds)
            cpu, wall = _cpu_s(process) - cpu0, time.monotonic() - wall0
            time.sleep(1.0)  # a status with the window's counts
            status = client.status
        finally:
            if streaming is not None:
                streaming.__exit__(None, None, None)
    frames = status.frames_received - frames0
    return {"frame_intake": mode, "image_transport": transport, "camera": camera,
            "seconds": round(wall, 1),
            "cpu_pct_of_one_core": round(100.0 * cpu / wall, 2),
            "frames_sent": int(frames),
            "cpu_ms_per_frame_sent": round(1000.0 * cpu / frames, 2) if frames else None,
            "frames_taken": int(status.frames_taken - taken0),
            "frames_decoded": int(status.frames_decoded - decoded0)}


def held_take_ms(domain: int, repeats: int = 15) -> dict:
    """Wall and CPU ms of taking one held 4K frame, as ``demand`` does for ``latest``."""
    import os

    import rclpy
    from bench_node import camera_process
    from rclpy.context import Context
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from finers_ros.ros.launcher import ros_environment
    from finers_ros.ros.memory import tune_malloc

    tune_malloc()
    saved = dict(os.environ)
    os.environ.update(ros_environment(domain))
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    walls, cpus = [], []
    try:
        node = rclpy.create_node("held_take", context=context)
        qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        subscription = node.create_subscription(Image, "/camera/image_raw", lambda m: None,
                                                qos)  # never spun: frames wait, as when idle
        with camera_process(domain, HZ):
            deadline = time.monotonic() + 60
            while len(walls) < repeats + 2 and time.monotonic() < deadline:
                time.sleep(0.35)
                cpu, wall = time.process_time(), time.perf_counter()
                with subscription.handle:
                    taken = subscription.handle.take_message(Image, False)
                if taken is not None:
                    walls.append((time.perf_counter() - wall) * 1000.0)
                    cpus.append((time.process_time() - cpu) * 1000.0)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        os.environ.clear()
        os.environ.update(saved)
    walls, cpus = walls[2:], cpus[2:]  # the first takes map fresh buffers
    return {"takes": len(walls), "wall_ms_median": round(statistics.median(walls), 1),
            "cpu_ms_median": round(statistics.median(cpus), 1)}


def latencies(domain: int, mode: str, policy: str, requests: int, idle_gap_s: float) -> dict:
    """Instruction -> Detection minus the pipeline, each request after ``idle_gap_s`` idle."""
    from bench_node import camera_process, running_node

    from finers_ros.ros.demo import INSTRUCTION

    minus, round_trip = [], []
    with running_node(domain, parameters={"frame_intake": mode, "frame_policy": policy}) \
            as (_, client), camera_process(domain, HZ):
        client.wait_until(lambda: client.status is not None
                          and client.status.frames_received > 0, 30)
        for index in range(requests):
            time.sleep(idle_gap_s)  # the node is idle again (the intake closes within 0.5 s)
            before = len(client.detections)
            sent = time.monotonic()
            client.send(json.dumps({"instruction": INSTRUCTION, "id": f"idle-{index}"}))
            detection = client.next_detection(before, 120)
            elapsed = (time.monotonic() - sent) * 1000.0
            if detection is None:
                raise RuntimeError("no Detection within 120 s")
            if detection.error:
                raise RuntimeError(f"request failed: {detection.error}")
            timings = dict(zip(detection.timing_names, detection.timings_ms))
            round_trip.append(elapsed)
            minus.append(elapsed - timings.get("total", 0.0))
    return {"frame_intake": mode, "frame_policy": policy, "requests": requests,
            "round_trip_ms_median": round(statistics.median(round_trip), 1),
            "minus_pipeline_ms_median": round(statistics.median(minus), 1),
            "minus_pipeline_ms": [round(v, 1) for v in minus]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--seconds", type=float, default=20.0, help="each CPU window")
    parser.add_argument("--requests", type=int, default=6, help="per mode and policy")
    parser.add_argument("--idle-gap-s", type=float, default=2.0)
    args = parser.parse_args()
    from domain_coordinator import domain_id

    from bench_speed import machine

    report = {"machine": machine(), "camera": f"3840x2160 rgb8 at {HZ:g} Hz",
              "target_idle_pct_of_one_core": TARGET_IDLE_PCT}
    started = time.monotonic()
    with domain_id() as domain:
        report["idle_no_camera"] = idle_cpu(domain, "on_demand", args.seconds / 2, camera=False)
        print(f"no camera: {report['idle_no_camera']}", flush=True)
        report["idle"] = {}
        for mode in MODES:
            report["idle"][mode] = idle_cpu(domain, mode, args.seconds)
            print(f"idle, {mode}: {report['idle'][mode]}", flush=True)
        report["idle"]["on_demand_compressed"] = idle_cpu(domain, "on_demand", args.seconds,
                                                          transport="compressed")
        print(f"idle, on_demand, compressed: {report['idle']['on_demand_compressed']}",
              flush=True)
        report["held_take"] = held_take_ms(domain)
        print(f"taking one held 4K frame: {report['held_take']}", flush=True)
        report["latency"] = {}
        for policy in ("latest", "after_request"):
            for mode in MODES:
                key = f"{policy}/{mode}"
                report["latency"][key] = latencies(domain, mode, policy, args.requests,
                                                   args.idle_gap_s)
                print(f"latency, {key}: {report['latency'][key]}", flush=True)
    on_demand = report["idle"]["on_demand"]["cpu_pct_of_one_core"]
    report["idle_pct_on_demand"] = on_demand
    report["idle_pct_every_frame"] = report["idle"]["every_frame"]["cpu_pct_of_one_core"]
    report["idle_target_met"] = on_demand <= TARGET_IDLE_PCT
    for policy in ("latest", "after_request"):
        cost = (report["latency"][f"{policy}/on_demand"]["minus_pipeline_ms_median"]
                - report["latency"][f"{policy}/every_frame"]["minus_pipeline_ms_median"])
        report[f"on_demand_latency_cost_ms_{policy}"] = round(cost, 1)
    report["bench_minutes"] = round((time.monotonic() - started) / 60, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "idle.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"idle node, 4K at {HZ:g} Hz: on_demand {on_demand:.1f} % of one core "
          f"(target <= {TARGET_IDLE_PCT:g} %), every_frame "
          f"{report['idle_pct_every_frame']:.1f} %; on-demand latency cost: latest "
          f"{report['on_demand_latency_cost_ms_latest']:+.1f} ms, after_request "
          f"{report['on_demand_latency_cost_ms_after_request']:+.1f} ms end to end, one "
          f"held frame taken on a latest request's path "
          f"{report['held_take']['wall_ms_median']:.1f} ms; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
