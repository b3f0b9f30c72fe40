#!/usr/bin/env python3
"""
3D target position: accuracy on hard synthetic RGB-D scenes and cost per request.

Scenes: a plane tilted 30 degrees with a raised 20-pixel disc at 1 m (640x480, fx 600),
1 mm noise, 15 % holes, glints beyond range, a 2-pixel band of flying pixels on both sides of
the disc's edge, and a segmenter mask one pixel too wide. Reports the error of the point
against the disc's known centre (median, max over seeds) for the method's defaults, without
erosion, without outlier rejection, and for a plain mean; the angle between the oriented
box's z axis and the disc's normal (median, max); then the time to decode a 16UC1 frame and
locate a 4K mask's target. Prints the figures and writes ``<out>/depth3d.json``.

    python benchmarks/bench_depth3d.py --out benchmarks/results [--seeds 20]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from finers_ros.data.synthetic_depth import camera_for, corrupt, depth_to_16uc1, disc_scene
from finers_ros.data.synthetic_depth import raised_mask_scene
from finers_ros.depth3d import CameraModel, DepthOptions, locate_target
from finers_ros.ros.image_codec import depth_to_metres

CAMERA = CameraModel(600.0, 600.0, 319.5, 239.5, 640, 480)
TILT = (0.0, -math.sin(math.radians(30)), -math.cos(math.radians(30)))
CENTRE = (0.03, -0.02, 1.0)
RADIUS = 10 / 600.0


def errors_mm(seeds: int, options: DepthOptions, depth_camera: CameraModel = CAMERA) -> list:
    out = []
    for seed in range(seeds):
        colour = disc_scene(CAMERA, CENTRE, RADIUS, TILT, 0.03)
        scene = disc_scene(depth_camera, CENTRE, RADIUS, TILT, 0.03)
        depth = corrupt(
            scene, np.random.default_rng(seed), edge_px=2 if depth_camera is CAMERA else 1
        )
        mask = cv2.dilate(colour.target_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        result = locate_target(mask, depth, CAMERA, options)
        out.append(1000 * float(np.linalg.norm(np.subtract(result.point, CENTRE))))
    return out


def mean_error_mm(seeds: int) -> list:
    out = []
    for seed in range(seeds):
        scene = disc_scene(CAMERA, CENTRE, RADIUS, TILT, 0.03)
        depth = corrupt(scene, np.random.default_rng(seed))
        mask = cv2.dilate(scene.target_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        vs, us = np.nonzero(mask)
        z = depth[vs, us].astype(np.float64)
        ok = np.isfinite(z) & (z > 0) & (z < 10)
        x = (us[ok] - CAMERA.cx) / CAMERA.fx * z[ok]
        y = (vs[ok] - CAMERA.cy) / CAMERA.fy * z[ok]
        point = (x.mean(), y.mean(), z[ok].mean())
        out.append(1000 * float(np.linalg.norm(np.subtract(point, CENTRE))))
    return out


def normal_errors_deg(seeds: int) -> list:
    """Angle between the oriented box's z axis and the tilted disc's normal, per seed."""
    out = []
    for seed in range(seeds):
        scene = disc_scene(CAMERA, CENTRE, RADIUS, TILT, 0.03)
        depth = corrupt(scene, np.random.default_rng(seed))
        mask = cv2.dilate(scene.target_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        result = locate_target(mask, depth, CAMERA)
        x, y, z, w = result.obb_orientation
        # third column of the quaternion's rotation matrix: the box's z axis
        axis = (2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y))
        cosine = min(1.0, float(np.dot(axis, TILT)))
        out.append(math.degrees(math.acos(cosine)))
    return out


def stats(values: list) -> dict:
    return {"median_mm": round(statistics.median(values), 2), "max_mm": round(max(values), 2)}


def timing(repeat: int = 30) -> dict:
    colour = camera_for(3840, 2160)
    mask = np.zeros((2160, 3840), np.uint8)
    cv2.circle(mask, (2000, 1000), 20, 1, -1)
    mask = mask.astype(bool)
    out = {}
    for width, height in ((1920, 1080), (3840, 2160)):
        scene = raised_mask_scene(colour.scaled_to(width, height), mask, 1.0, 0.03)
        data = depth_to_16uc1(corrupt(scene, np.random.default_rng(0))).tobytes()
        total, locate = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            depth = depth_to_metres("16UC1", width, height, width * 2, data)
            middle = time.perf_counter()
            locate_target(mask, depth, colour)
            end = time.perf_counter()
            total.append(1000 * (end - start))
            locate.append(1000 * (end - middle))
        out[f"{width}x{height}"] = {
            "decode_and_locate_ms": round(statistics.median(total), 2),
            "locate_ms": round(statistics.median(locate), 2),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    figures = {
        "seeds": args.seeds,
        "defaults": stats(errors_mm(args.seeds, DepthOptions())),
        "no_erosion": stats(errors_mm(args.seeds, DepthOptions(erosion_px=0))),
        "no_outlier_rejection": stats(errors_mm(args.seeds, DepthOptions(mad_k=1e9))),
        "plain_mean": stats(mean_error_mm(args.seeds)),
        "depth_at_half_resolution": stats(
            errors_mm(args.seeds, DepthOptions(), CAMERA.scaled_to(320, 240))
        ),
        "oriented_box_normal_deg": {
            key.replace("_mm", "_deg"): value
            for key, value in stats(normal_errors_deg(args.seeds)).items()
        },
        "timing_4k_mask": timing(),
    }
    print(json.dumps(figures, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "depth3d.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
