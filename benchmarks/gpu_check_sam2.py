#!/usr/bin/env python3
"""
Check the sam2 tracker on a GPU: time per frame at 512- and 1024-px crops, memory after N frames.

A 4K frame (3840x2160) with a 46x28-px ellipse that moves about 12 px per frame; the
tracker (hiera-tiny by default) is seeded with its true mask and updated on every frame.
Per crop size: the median and p90 tracker time per frame over ``--timed`` frames after
``--warmup`` frames, and ``torch.cuda.max_memory_allocated`` after ``--frames`` frames
(with the memory bank's entries and bytes, which must stay flat). Without a checkpoint the
weights are random and the object score is pinned high (``forced_object_score``), so every
frame runs the whole path (mask mapped back, memory written); IoU then means nothing.
With ``--checkpoint`` (a SAM2 / SAM2.1 ``.pt``) nothing is forced and the mean IoU against
the moving truth is reported too. Writes one JSON file.

    python benchmarks/gpu_check_sam2.py --out sam2_gpu.json                  # on a GPU
    python benchmarks/gpu_check_sam2.py --out /tmp/s.json --device cpu --frames 3
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from finers_ros.tracking import FrameView, TrackerConfig
from finers_ros.tracking.config import Sam2Config
from finers_ros.tracking.sam2_tracker import load_sam2_model, Sam2Tracker

FRAME = (3840, 2160)  # (W, H)
AXES = (23, 14)  # the target's half-axes, native pixels
FORCED_SCORE = 5.0  # object score logit pinned on random weights


class MovingTarget:
    """A 4K frame with an ellipse on a Lissajous path; redrawn in place (no 4K copy per frame)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 255, (FRAME[1] // 8, FRAME[0] // 8, 3), dtype=np.uint8)
        self.background = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)
        self.pixels = self.background.copy()
        self.box = None  # the drawn target's box, inclusive native pixels

    def centre(self, index: int):
        t = index / 40.0
        return (FRAME[0] / 2 + 900 * np.sin(t), FRAME[1] / 2 + 500 * np.sin(1.7 * t))

    def draw(self, index: int) -> np.ndarray:
        """Move the target to frame ``index``; return its ``h x w`` mask at ``self.box``."""
        if self.box is not None:  # restore the background under the previous target
            x0, y0, x1, y1 = self.box
            self.pixels[y0:y1 + 1, x0:x1 + 1] = self.background[y0:y1 + 1, x0:x1 + 1]
        cx, cy = self.centre(index)
        x0, y0 = int(cx) - AXES[0], int(cy) - AXES[1]
        x1, y1 = int(cx) + AXES[0], int(cy) + AXES[1]
        ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        mask = ((xs - cx) / AXES[0]) ** 2 + ((ys - cy) / AXES[1]) ** 2 <= 1.0
        self.pixels[y0:y1 + 1, x0:x1 + 1][mask] = (220, 30, 30)
        self.box = (x0, y0, x1, y1)
        return mask

    def full(self, local: np.ndarray) -> np.ndarray:
        mask = np.zeros((FRAME[1], FRAME[0]), bool)
        x0, y0, x1, y1 = self.box
        mask[y0:y1 + 1, x0:x1 + 1] = local
        return mask


def iou_in_window(update, truth_box, truth: np.ndarray) -> float:
    """Return the update's mask IoU with the truth, on the window covering both."""
    if update.mask is None:
        return 0.0
    rx, ry, rw, rh = update.mask_roi
    x0, y0 = min(rx, truth_box[0]), min(ry, truth_box[1])
    x1, y1 = max(rx + rw, truth_box[2] + 1), max(ry + rh, truth_box[3] + 1)
    a = np.zeros((y1 - y0, x1 - x0), bool)
    b = np.zeros_like(a)
    a[ry - y0:ry - y0 + rh, rx - x0:rx - x0 + rw] = update.mask
    b[truth_box[1] - y0:truth_box[3] + 1 - y0, truth_box[0] - x0:truth_box[2] + 1 - x0] = truth
    return float((a & b).sum() / max(1, (a | b).sum()))


@contextlib.contextmanager
def pinned_object_score(model, logit):
    """Pin SAM2's object score to ``logit`` (random weights: run the whole path every frame)."""
    if logit is None:
        yield
        return
    head = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    saved = (head.weight.detach().clone(), head.bias.detach().clone())
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(logit)
    try:
        yield
    finally:
        with torch.no_grad():
            head.weight.copy_(saved[0])
            head.bias.copy_(saved[1])


def check_crop(args, crop_size: int) -> dict:
    cuda = args.device.startswith("cuda")
    config = TrackerConfig(backend="sam2", sam2=Sam2Config(
        checkpoint=args.checkpoint, model_config=args.model_config, device=args.device,
        crop_size=crop_size, memory_frames=args.memory_frames))
    built = time.perf_counter()
    tracker = Sam2Tracker(config)
    build_s = time.perf_counter() - built
    scene = MovingTarget()
    truth = scene.draw(0)
    model_mb = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        model_mb = round(torch.cuda.memory_allocated() / 2 ** 20, 1)
    forced = None if args.checkpoint else FORCED_SCORE
    times, ious, states, entries, bank = [], [], {}, [], []
    with pinned_object_score(tracker.model, forced):
        seeded = time.perf_counter()
        tracker.seed(FrameView(scene.pixels), tuple(map(float, scene.box)), scene.full(truth))
        seed_ms = (time.perf_counter() - seeded) * 1000.0
        for index in range(1, args.frames + 1):
            truth = scene.draw(index)
            start = time.perf_counter()
            update = tracker.update(FrameView(scene.pixels))
            if cuda:
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000.0)
            states[update.state.value] = states.get(update.state.value, 0) + 1
            ious.append(iou_in_window(update, scene.box, truth))
            entries.append(tracker.memory_entries)
            bank.append(tracker.memory_bytes)
    warmup = min(args.warmup, max(0, len(times) - 1))
    timed = times[warmup:warmup + args.timed]
    result = {
        "crop_size": crop_size, "input_side": tracker.side, "build_s": round(build_s, 2),
        "parameters_m": round(sum(p.numel() for p in tracker.model.parameters()) / 1e6, 2),
        "seed_ms": round(seed_ms, 2), "frames": args.frames, "warmup_frames": warmup,
        "timed_frames": len(timed),
        "step_ms_median": round(statistics.median(timed), 2),
        "step_ms_p90": round(float(np.percentile(timed, 90)), 2),
        "step_ms_median_all_after_warmup": round(statistics.median(times[warmup:]), 2),
        "fps_median": round(1000.0 / statistics.median(timed), 1),
        "states": states, "forced_object_score": forced,
        "mean_iou": round(float(np.mean(ious)), 4) if args.checkpoint else None,
        "memory_entries_last": entries[-1], "memory_entries_max": max(entries),
        "memory_bank_mb_last": round(bank[-1] / 2 ** 20, 3),
        "memory_bank_mb_max": round(max(bank) / 2 ** 20, 3),
    }
    if cuda:
        result["model_memory_allocated_mb"] = model_mb
        result["max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        result["memory_allocated_mb_end"] = round(torch.cuda.memory_allocated() / 2 ** 20, 1)
    tracker.close()
    load_sam2_model.cache_clear()  # the next crop size starts from an empty GPU
    if cuda:
        torch.cuda.empty_cache()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--checkpoint", default=None, help="local SAM2 .pt (default: random)")
    parser.add_argument("--model-config", default=Sam2Config.model_config)
    parser.add_argument("--crops", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--frames", type=int, default=1000, help="updates per crop size")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--timed", type=int, default=100)
    parser.add_argument("--memory-frames", type=int, default=Sam2Config.memory_frames)
    args = parser.parse_args()
    if args.frames < 1:
        parser.error("--frames must be >= 1")
    report = {
        "device": (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                   else platform.processor() or "cpu"),
        "torch": torch.__version__, "sam2": metadata.version("sam2"),
        "model_config": args.model_config, "checkpoint": args.checkpoint,
        "autocast": ("bfloat16" if args.device.startswith("cuda")
                     and torch.cuda.is_bf16_supported() else None),
        "frame": list(FRAME), "memory_frames": args.memory_frames, "crops": {},
    }
    for crop in args.crops:
        try:
            report["crops"][str(crop)] = check_crop(args, crop)
        except Exception as exc:
            report["crops"][str(crop)] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
        print(crop, json.dumps(report["crops"][str(crop)]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    failed = [crop for crop, result in report["crops"].items() if "failed" in result]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
