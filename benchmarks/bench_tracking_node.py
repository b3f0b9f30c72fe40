"""
What tracking costs the node: CPU share and memory while it follows targets on a 4K stream.

The node runs as its own process (as on a robot); this script plays a moving 4K rgb8 camera
at 10 Hz (a pan over a synthetic scene, back and forth so it never jumps), asks for one
target with ``"track": true`` (then eight), and measures over a fixed window: the node's
CPU time (all threads, intake included) as a share of one core, the Track messages per
frame sent and per frame the tracker processed (frames that arrive while it is busy are
dropped and counted), and the node's RSS at the start, peak and end of the window (the
one-track window lasts 1,000 frames). Also the idle node
(streaming, nothing asked) for reference. Writes ``tracking_node.json`` and merges a
``tracking_node`` section into ``latest.json``.

    .venv/bin/python benchmarks/bench_tracking_node.py --out benchmarks/results [--seconds 30]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
HZ = 10.0
FRAMES = 30
RSS_FRAMES = 1000  # the one-track window covers at least this many frames (memory growth)


class Camera:
    """Publishes the pre-rendered frames back and forth at ``HZ`` (stamps always increase)."""

    def __init__(self, client, frames):
        self.client, self.frames = client, frames
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        period = 1.0 / HZ
        next_at = time.monotonic()
        while not self._stop.is_set():
            cycle = self.sent % (2 * len(self.frames) - 2)
            index = cycle if cycle < len(self.frames) else 2 * len(self.frames) - 2 - cycle
            self.client.publish_frame(self.client.frame_message(self.frames[index]))
            self.sent += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def window(node_process, client, camera, seconds: float, min_frames: int = 0) -> dict:
    """
    Measure the node: CPU share of one core, RSS, tracks per frame.

    Over ``seconds``, and on until the camera sent ``min_frames`` (at most 4x as long: a
    loaded machine sends fewer than 10 a second).
    """
    process = psutil.Process(node_process.process.pid)
    cpu0, rss0 = sum(process.cpu_times()[:2]), process.memory_info().rss
    sent0, tracks0 = camera.sent, len(client.tracks)
    processed0, dropped0 = tracker_counts(client)
    start = time.monotonic()
    rss_peak = rss0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= 4 * max(seconds, min_frames / HZ) or (
                elapsed >= seconds and camera.sent - sent0 >= min_frames):
            break
        time.sleep(0.5 if elapsed >= seconds else min(1.0, seconds - elapsed))
        rss_peak = max(rss_peak, process.memory_info().rss)
    wall = time.monotonic() - start
    cpu1, rss1 = sum(process.cpu_times()[:2]), process.memory_info().rss
    time.sleep(1.5)  # the next status message (1 s period) counts the window's last frames
    processed1, dropped1 = tracker_counts(client)
    frames = camera.sent - sent0
    messages = len(client.tracks) - tracks0
    return {"seconds": round(wall, 1), "frames_sent": frames,
            "cpu_share_of_one_core": round((cpu1 - cpu0) / wall, 3),
            "track_messages": messages,
            "tracker_frames_processed": processed1 - processed0,
            "tracker_frames_dropped": dropped1 - dropped0,
            "rss_mb_start": round(rss0 / 2 ** 20, 1), "rss_mb_end": round(rss1 / 2 ** 20, 1),
            "rss_mb_peak": round(rss_peak / 2 ** 20, 1),
            "rss_growth_mb": round((rss1 - rss0) / 2 ** 20, 1)}


def tracker_counts(client) -> tuple:
    """Return (frames processed, frames dropped) of the node's tracker, from its status."""
    status = client.status
    if status is None:
        return 0, 0
    return int(status.track_frames_processed), int(status.track_frames_dropped)


def main(argv=None) -> int:
    """Run the idle, one-track and eight-track windows; print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    from domain_coordinator import domain_id

    from finers_ros.bringup.colours import classify_rgb
    from finers_ros.data.moving import moving_sequence
    from finers_ros.ros.launcher import NodeProcess, clean_shared_memory_or_say, ros_environment

    sequence = moving_sequence("pan", seed=0, frames=FRAMES - 1)
    frames = [sequence.seed_frame] + [frame for frame, _ in sequence]
    instruction = f"find the {classify_rgb(sequence.target_rgb)[0]} screw"
    report = {"stream": f"3840x2160 rgb8 at {HZ:g} Hz", "window_s": args.seconds,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]}
    with domain_id() as domain:
        os.environ.update(ros_environment(domain))
        from finers_ros.ros.client import PerceptionClient

        node = NodeProcess(domain, parameters={"publish_overlay": False, "publish_mask": False})
        client = PerceptionClient(domain_id=domain)
        camera = Camera(client, frames)
        try:
            assert client.wait_for_node(60), node.log()[-2000:]
            camera.start()
            time.sleep(5.0)
            report["idle"] = window(node, client, camera, args.seconds)
            for count in (1, 8):
                client.send(json.dumps({"stop_track": "all"}))
                time.sleep(1.0)
                for n in range(count):
                    client.send(json.dumps({"instruction": instruction, "track": True,
                                            "id": f"bench-{count}-{n}"}))
                client.wait_until(lambda: len({m.track_id for m in client.tracks
                                               if m.state == "tracking"
                                               and m.request_id.startswith(
                                                   f"bench-{count}-")}) == count, 60)
                time.sleep(3.0)  # warm-up
                # one track: long enough to see the memory of RSS_FRAMES tracked frames
                result = window(node, client, camera, args.seconds,
                                RSS_FRAMES if count == 1 else 0)
                result["track_messages_per_frame"] = round(
                    result["track_messages"] / max(1, result["frames_sent"]), 2)
                # frames that arrived while the worker was busy are dropped (counted); every
                # processed frame gives one message per track
                result["track_messages_per_processed_frame"] = round(
                    result["track_messages"] / max(1, result["tracker_frames_processed"]), 2)
                states = [m.state for m in client.tracks[-count * 10:]]
                result["tracking_share_last"] = round(states.count("tracking") / len(states), 2)
                report[f"tracks_{count}"] = result
        finally:
            camera.stop()
            client.close()
            node.stop()
            clean_shared_memory_or_say("bench_tracking_node")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracking_node.json").write_text(json.dumps(report, indent=1))
    latest = args.out / "latest.json"
    try:
        current = json.loads(latest.read_text())
    except (OSError, ValueError):
        current = {}
    current = current if isinstance(current, dict) else {}
    current["tracking_node"] = report
    latest.write_text(json.dumps(current, indent=2) + "\n")
    for key in ("idle", "tracks_1", "tracks_8"):
        print(f"{key:9s} {report[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
