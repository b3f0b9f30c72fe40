"""
``finers-demo --track``: ask for a target once, then follow it on every frame over ROS.

Starts the perception node, plays a moving synthetic 4K camera (a hand-held pan over a
scene, ground truth known), sends ``{"instruction": ..., "track": true}``, and writes what
came back on ``finers/tracks``: an overlay per tracked frame (mask and box on the frame,
the target magnified), ``tracks.json`` (state, box, IoU with the ground truth, tracker ms
per frame) and the node's log.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Optional
from pathlib import Path

import cv2
import numpy as np

SCENARIO = "handheld"
FRAMES = 40
HZ = 5.0


def instruction_for(sequence) -> str:
    """Return "find the <colour> screw" for the sequence's target (its colour is unique)."""
    from ..bringup.colours import classify_rgb

    return f"find the {classify_rgb(sequence.target_rgb)[0]} screw"


def run(out: Path, timeout: float = 120.0, instruction: Optional[str] = None) -> int:
    """Run the tracked demo (``instruction``: default, the target's colour); 0 when tracked."""
    from domain_coordinator import domain_id

    from ..data.moving import moving_sequence
    from .launcher import NodeProcess, clean_shared_memory_or_say, ros_environment

    out.mkdir(parents=True, exist_ok=True)
    sequence = moving_sequence(SCENARIO, seed=0, frames=FRAMES)
    frames = [(sequence.seed_frame, sequence.seed_truth)] + list(sequence)
    instruction = instruction or instruction_for(sequence)
    with domain_id() as domain:
        os.environ.update(ros_environment(domain))
        from .client import PerceptionClient

        node = NodeProcess(domain, log_path=out / "node.log")
        client = PerceptionClient(domain_id=domain)
        try:
            if not client.wait_for_node(60):
                print("finers-demo: the node did not come up; its log:\n" + node.log()[-3000:])
                return 1
            sent = _play(client, frames, instruction, timeout)
            client.wait_until(lambda: len(client.tracks) >= 1, 5)
            client.send(json.dumps({"stop_track": "all"}))
            client.wait_until(lambda: any(m.state == "ended" for m in client.tracks), 10)
            tracks = list(client.tracks)
        finally:
            client.close()
            code = node.stop()
            clean_shared_memory_or_say("finers-demo")
    return _report(out, frames, sent, tracks, instruction, code)


def _play(client, frames, instruction: str, timeout: float) -> dict:
    """Stream the seed frame until the answer, then the moving frames; stamp -> index."""
    sent = {}
    start_ns = time.time_ns()

    def publish(index: int) -> None:
        stamp = start_ns + index * int(1e9 / HZ)
        sent[stamp] = index
        client.publish_frame(client.frame_message(frames[index][0], stamp, "camera"))

    stop = threading.Event()

    def hold_still() -> None:  # the camera waits on frame 0 until the answer came
        while not stop.is_set():
            publish(0)
            stop.wait(1.0 / HZ)

    holder = threading.Thread(target=hold_still, daemon=True)
    holder.start()
    time.sleep(0.5)
    client.send(json.dumps({"instruction": instruction, "track": True, "id": "demo-track"}))
    print(f"finers-demo: sent {instruction!r} with \"track\": true")
    client.wait_until(lambda: client.detections, timeout)
    client.wait_until(lambda: client.tracks, 10)
    stop.set()
    holder.join()
    for index in range(1, len(frames)):
        publish(index)
        time.sleep(1.0 / HZ)
    time.sleep(0.5)
    return sent


def _report(out: Path, frames, sent: dict, tracks, instruction: str, code: int) -> int:
    from ..overlay import draw_track

    rows = []
    for msg in tracks:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        index = sent.get(stamp)
        row = {"frame": index, "state": msg.state, "reason": msg.reason,
               "box": [round(float(v), 1) for v in msg.box],
               "confidence": round(float(msg.confidence), 3),
               "update_ms": round(float(msg.update_ms), 2),
               "frames_tracked": int(msg.frames_tracked)}
        if index is not None and msg.state == "tracking":
            image, truth = frames[index]
            mask = _track_mask(msg)
            gt = truth.full_mask()
            row["iou"] = round(float((mask & gt).sum() / max(1, (mask | gt).sum())), 3)
            overlay = draw_track(image, mask, tuple(msg.box), f"{msg.track_id} {msg.state}")
            cv2.imwrite(str(out / f"track_{index:03d}.png"),
                        cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        rows.append(row)
    (out / "tracks.json").write_text(json.dumps({"instruction": instruction, "tracks": rows},
                                                indent=1))
    tracked = [r for r in rows if "iou" in r and r["frame"]]  # the moving frames
    if not tracked:
        print("finers-demo: no tracked frame came back")
        return 1
    ious = [r["iou"] for r in tracked]
    ms = [r["update_ms"] for r in tracked]
    print(f"finers-demo: tracked {len(tracked)} of {len(frames) - 1} moving frames, mean IoU "
          f"{np.mean(ious):.3f} (min {min(ious):.3f}), tracker {np.median(ms):.1f} ms per "
          f"frame (median); last state {rows[-1]['state']} ({rows[-1]['reason']})")
    print(f"finers-demo: wrote {out}/track_*.png and tracks.json (node exited with {code})")
    # a demo that tracked a few frames well is no success: most moving frames must be tracked
    return 0 if np.mean(ious) > 0.8 and len(tracked) >= 0.8 * (len(frames) - 1) else 1


def _track_mask(msg) -> np.ndarray:
    full = np.zeros((msg.image_height, msg.image_width), bool)
    roi = msg.mask_roi
    if roi.width and roi.height:
        full[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width] = \
            np.frombuffer(bytes(msg.mask), np.uint8).reshape(roi.height, roi.width) > 0
    return full
