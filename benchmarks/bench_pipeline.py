#!/usr/bin/env python3
"""
Benchmark bring-up quality and latency on synthetic 4K scenes, and camera-frame conversion.

SAM runtimes and the node are in ``bench_speed.py``. Prints the figures and writes them to
``<out>/bench.json`` (medians; ratios measured in the same run).

    python benchmarks/bench_pipeline.py --out benchmarks/results [--scenes 50]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def timed(fn, repeat: int, warmup: int = 2) -> list:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def summary(samples: list) -> dict:
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p90_ms": round(float(np.percentile(samples, 90)), 3),
        "n": len(samples),
    }


def bench_bringup_eval(scenes: int, seed: int, work: Path, out: Path) -> dict:
    """finers-make-scenes + finers-eval with the default (bring-up) configuration."""
    data = work / "scenes"
    subprocess.run(
        [str(BIN / "finers-make-scenes"), "--out", str(data), "--count", str(scenes),
         "--seed", str(seed)],
        check=True, capture_output=True,
    )
    subprocess.run(
        [str(BIN / "finers-eval"), "--annotations", str(data / "annotations.json"),
         "--out", str(out)],
        check=True, capture_output=True,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "scenes": scenes, "seed": seed, "resolution": "3840x2160", "metrics": metrics,
        "eval_dir": str(out),
    }


def bench_frame_conversion(repeat: int) -> dict:
    import cv2

    from finers_ros.ros.image_codec import image_to_rgb

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (2160, 3840, 3), dtype=np.uint8)
    frames = {
        "rgb8": rgb.tobytes(), "bgr8": rgb[..., ::-1].tobytes(),
        "bgra8": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA).tobytes(),
        "mono8": rgb[..., 0].tobytes(),
        "yuv422_yuy2": rng.integers(0, 255, (2160, 3840, 2), dtype=np.uint8).tobytes(),
    }
    bpp = {"rgb8": 3, "bgr8": 3, "bgra8": 4, "mono8": 1, "yuv422_yuy2": 2}
    return {
        enc: summary(timed(lambda: image_to_rgb(enc, 3840, 2160, 3840 * bpp[enc], data), repeat))
        for enc, data in frames.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    report = {"machine": {
        "platform": platform.platform(), "processor": platform.processor(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
    }}
    report["frame_conversion_4k"] = bench_frame_conversion(args.repeat)
    with tempfile.TemporaryDirectory(prefix="finers-scenes-") as scenes:  # 4K PNGs: ~10 MB each
        report["bringup_eval"] = bench_bringup_eval(
            args.scenes, args.seed, Path(scenes), args.out / "eval"
        )
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))

    conversion = report["frame_conversion_4k"]
    print("4K frame -> RGB (median ms): "
          + ", ".join(f"{k} {v['median_ms']:.1f}" for k, v in conversion.items()))
    metrics = report["bringup_eval"]["metrics"]
    seg = metrics["segmentation"]
    print(f"bring-up on {args.scenes} synthetic 4K scenes: gIoU {seg['all']['gIoU']:.3f} "
          f"cIoU {seg['all']['cIoU']:.3f} region recall {metrics['region_recall']:.3f}")
    for name, values in metrics["referring_by_grounding"].items():
        print(f"  referring ({name}): gIoU {values['gIoU']:.3f} over {values['count']}")
    for bucket in ("S", "XS", "XXS"):
        values = seg[bucket]
        if values["count"]:
            print(f"  {bucket}: gIoU {values['gIoU']:.3f} cIoU {values['cIoU']:.3f} "
                  f"over {values['count']}")
    print("  latency (median ms): "
          + ", ".join(f"{k} {v['median']}" for k, v in metrics["latency_ms"].items()))
    print(f"wrote {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
