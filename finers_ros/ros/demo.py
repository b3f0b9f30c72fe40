"""
``finers-demo``: the whole robot loop on one machine, no camera, no weights.

Starts the perception node (as ``ros2 launch`` would), streams a synthetic 4K scene on the
camera topic as a camera driver would, sends "find the red screw" on the instruction topic,
and saves the mask, overlay and detection that come back over ROS. The camera is an RGB-D
one (aligned depth + CameraInfo, the target raised 3 cm above a plane 1 m away), so the
detection also carries the target's 3D point, checked against the scene's known position.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..result import FineRSResult

INSTRUCTION = "find the red screw"


def red_scene(seed: int = 0):
    """Build a 3840x2160 scene whose target is the only red object (deterministic)."""
    from ..data.synthetic import SceneGenerator

    return SceneGenerator(seed=seed).scene(0, kind="colour", colour="red")


def main(argv=None) -> int:
    """Run the demo: node + client over ROS, one instruction on a streamed 4K scene."""
    parser = argparse.ArgumentParser(
        prog="finers-demo", description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--instruction", default=None,
                        help=f"default: {INSTRUCTION!r}; with --track, the moving target's "
                             "colour (\"find the <colour> screw\")")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--track", action="store_true",
                        help="ask once with \"track\": true, then follow the target on a "
                             "moving camera (writes track_*.png and tracks.json)")
    args = parser.parse_args(argv)
    if args.track:
        from .demo_track import run

        return run(args.out, args.timeout, args.instruction)
    args.instruction = args.instruction or INSTRUCTION

    from domain_coordinator import domain_id

    from ..data.annotations import gt_mask
    from .launcher import NodeProcess, clean_shared_memory_or_say, ros_environment
    from .messages import detection_mask

    args.out.mkdir(parents=True, exist_ok=True)
    image, record = red_scene()
    with domain_id() as domain:
        # this process's participant uses the same profile
        os.environ.update(ros_environment(domain))
        from .client import PerceptionClient
        from .rgbd_camera import RgbdStreamer, rgbd_scene

        print(f"finers-demo: starting finers_perception (ROS domain {domain}, "
              f"shared-memory transport)")
        node = NodeProcess(domain, parameters={"depth_enabled": True},
                           log_path=args.out / "node.log")
        client = PerceptionClient(domain_id=domain)
        camera = None
        try:
            if not client.wait_for_node(60):
                print("finers-demo: the node did not come up; its log:\n" + node.log()[-3000:])
                return 1
            msg = client.frame_message(image, frame_id="camera_optical_frame")
            camera = RgbdStreamer(client.node, client.camera, rgbd_scene(msg, record["points"]))
            camera.start(hz=2.0)
            time.sleep(1.0)
            sent = time.monotonic()
            client.send(args.instruction)
            print(f"finers-demo: streaming a 3840x2160 scene at 2 Hz; sent {args.instruction!r}")
            detection = client.next_detection(0, args.timeout)
            if detection is None:
                print("finers-demo: no detection came back; node log:\n" + node.log()[-3000:])
                return 1
            round_trip = (time.monotonic() - sent) * 1000
            stamp = (detection.header.stamp.sec, detection.header.stamp.nanosec)

            def echoed(store) -> bool:
                return any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp for m in store)

            client.wait_until(lambda: echoed(client.masks) and echoed(client.overlays), 30)
            camera.stop()
            _save(args.out, client, detection, stamp)
        finally:
            if camera is not None:
                camera.stop()
            client.close()
            code = node.stop()
            clean_shared_memory_or_say("finers-demo")
    timings = dict(zip(detection.timing_names, detection.timings_ms))
    gt = gt_mask(record["points"], (image.shape[1], image.shape[0]))
    mask = detection_mask(detection)
    iou = float((mask & gt).sum() / max(1, (mask | gt).sum()))
    print(f"finers-demo: backend {detection.backend or '-'} "
          f"(bring-up: weight-free, no model weights)"
          if "bringup" in detection.backend else f"finers-demo: backend {detection.backend}")
    if detection.error:
        print(f"finers-demo: error [{detection.error_stage}] {detection.error}")
        return 1
    print(f"finers-demo: found={detection.found} answer={detection.answer!r} "
          f"box={[round(v) for v in detection.box]} "
          f"IoU with ground truth {iou:.3f}")
    if detection.has_3d:
        point = (detection.point_3d.x, detection.point_3d.y, detection.point_3d.z)
        error_mm = 1000 * float(np.linalg.norm(np.subtract(point, camera.scene.centre)))
        print(f"finers-demo: 3D point ({point[0]:.3f}, {point[1]:.3f}, {point[2]:.3f}) m in "
              f"{detection.header.frame_id} from {detection.depth_pixels} depth pixels, "
              f"{error_mm:.1f} mm from the scene's target")
    else:
        print(f"finers-demo: no 3D point: {detection.reason_3d}")
    print("finers-demo: latency " + FineRSResult("", timings_ms=timings).timings_text()
          + f"; instruction -> detection over ROS {round_trip:.0f} ms")
    print(f"finers-demo: wrote {args.out}/mask.png, overlay.png, detection.json "
          f"(node exited with {code})")
    return 0 if detection.found and detection.has_3d else 1


def _save(out: Path, client, detection, stamp) -> None:
    from .image_codec import image_to_rgb

    def same(msg):
        return (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp

    for name, store in (("mask", client.masks), ("overlay", client.overlays)):
        chosen = [m for m in store if same(m)]
        if not chosen:
            continue
        msg = chosen[-1]
        if name == "mask":
            pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
            pixels = pixels[:, :msg.width]
            cv2.imwrite(str(out / "mask.png"), pixels)
        else:
            rgb = image_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data)
            cv2.imwrite(str(out / "overlay.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    summary = {
        "stamp": {"sec": stamp[0], "nanosec": stamp[1]}, "frame_id": detection.header.frame_id,
        "instruction": detection.instruction, "found": detection.found, "answer": detection.answer,
        "error": detection.error, "box": [float(v) for v in detection.box],
        "points": [[float(p.x), float(p.y)] for p in detection.points],
        "region": [float(v) for v in detection.region], "crop": [int(v) for v in detection.crop],
        "backend": detection.backend,
        "has_3d": detection.has_3d, "reason_3d": detection.reason_3d,
        "point_3d_m": [detection.point_3d.x, detection.point_3d.y, detection.point_3d.z],
        "depth_pixels": detection.depth_pixels,
        "timings_ms": {k: float(v) for k, v in zip(detection.timing_names, detection.timings_ms)},
    }
    (out / "detection.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
