"""
Measure SAM runtimes and the per-frame work in process, for ``bench_speed.py``.

SAM encoder and decoder runtimes side by side, and the per-frame work besides the models
against one plain copy of a 4K frame.

SAM figures use the ViT-B architecture with random weights (no checkpoint is downloaded):
runtime speed does not depend on the weights' values. Runtimes alternate call by call on the
same inputs with the same thread count, so machine load hits them alike.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np


def interleaved(fns: Dict[str, Callable], repeat: int, warmup: int = 1,
                clock: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """
    Time each function in ms per call, calls alternating: a, b, c, a, b, c, ...

    ``clock`` is wall time by default; ``time.process_time`` gives the CPU time of the whole
    process (OpenCV's worker threads included), which time slices lost to other jobs on a
    shared machine do not inflate.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = clock()
            fn()
            samples[name].append((clock() - start) * 1000.0)
    return samples


def median(values) -> float:
    return round(statistics.median(values), 2)


def synthetic_crops(count: int, side: int = 512, seed: int = 2026):
    """(crop, box, points) around the target of synthetic 4K scenes, crop pixels."""
    from finers_ros.data.synthetic import SceneGenerator

    generator = SceneGenerator(seed=seed)
    crops = []
    for index in range(count):
        image, record = generator.scene(index)
        x0, y0, x1, y1 = (float(v) for v in record["target"]["box"])
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left = int(min(max(cx - side / 2, 0), image.shape[1] - side))
        top = int(min(max(cy - side / 2, 0), image.shape[0] - side))
        crop = np.ascontiguousarray(image[top:top + side, left:left + side])
        box = (x0 - left, y0 - top, x1 - left, y1 - top)
        points = [(cx - left, cy - top), ((x0 + cx) / 2 - left, cy - top)]
        crops.append((crop, box, points))
    return crops


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def bench_sam(work: Path, threads: int, encoder_repeat: int = 1, decoder_repeat: int = 5,
              crops: int = 2, model_type: str = "vit_b") -> Dict:
    """
    Compare encoders (torch, ONNX Runtime fp32, int8) and decoders (torch, ONNX Runtime).

    Each median is over ``crops * encoder_repeat`` encoder runs and ``crops * decoder_repeat``
    decoder runs per runtime (``*_runs`` in the result). One torch ViT-B encoder run costs about a
    minute on 2 loaded cores, so the defaults keep the whole section near 6 minutes.
    """
    import torch

    from finers_ros.segmenters.sam import SamSegmenter, TorchDecoder
    from finers_ros.segmenters.sam_encoder import OnnxRuntimeEncoder, TorchEncoder
    from finers_ros.segmenters.sam_export import export_decoder, export_encoder, quantize_int8
    from finers_ros.segmenters.sam_model import load_sam
    from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    sam = load_sam(model_type, None)
    started = time.perf_counter()
    encoder_fp32 = export_encoder(sam, work / "encoder.onnx")
    encoder_int8 = quantize_int8(encoder_fp32, work / "encoder.int8.onnx")
    decoder_onnx = export_decoder(sam, work / "decoder.onnx")
    export_s = time.perf_counter() - started
    encoders = {"torch": TorchEncoder(sam),
                "ort": OnnxRuntimeEncoder(sam, encoder_fp32, threads=threads),
                "ort_int8": OnnxRuntimeEncoder(sam, encoder_int8, threads=threads)}
    torch_seg = SamSegmenter(sam, TorchDecoder(sam))
    ort_seg = SamSegmenter(sam, OnnxRuntimeDecoder(decoder_onnx, threads=threads))
    samples = {name: [] for name in encoders}
    decoder_samples = {"torch": [], "ort": []}
    iou_int8, iou_ort, iou_decoder = [], [], []
    for crop, box, points in synthetic_crops(crops):
        embeddings = {}
        for _ in range(encoder_repeat):  # alternate the runtimes on this crop
            for name, encoder in encoders.items():
                start = time.perf_counter()
                embeddings[name] = encoder.embed(crop)
                samples[name].append((time.perf_counter() - start) * 1000.0)
        hw = crop.shape[:2]
        masks = {name: ort_seg.decode(e, hw, box, points).mask for name, e in embeddings.items()}
        iou_int8.append(mask_iou(masks["ort"], masks["ort_int8"]))
        iou_ort.append(mask_iou(masks["torch"], masks["ort"]))
        embedding = embeddings["torch"]
        iou_decoder.append(mask_iou(torch_seg.decode(embedding, hw, box, points).mask,
                                    ort_seg.decode(embedding, hw, box, points).mask))
        decoded = interleaved({"torch": lambda: torch_seg.decode(embedding, hw, box, points),
                               "ort": lambda: ort_seg.decode(embedding, hw, box, points)},
                              decoder_repeat, warmup=1)
        for name, values in decoded.items():
            decoder_samples[name].extend(values)
    return {
        "model_type": model_type, "threads": threads, "crops": crops,
        "export_s": round(export_s, 1),
        "encoder_runs": crops * encoder_repeat, "decoder_runs": crops * decoder_repeat,
        "encoder_ms": {name: median(values) for name, values in samples.items()},
        "encoder_samples_ms": {name: [round(v, 1) for v in values]
                               for name, values in samples.items()},
        "decoder_ms": {name: median(values) for name, values in decoder_samples.items()},
        "mask_iou_int8_vs_fp32_min": round(min(iou_int8), 4),
        "mask_iou_int8_vs_fp32_mean": round(float(np.mean(iou_int8)), 4),
        "mask_iou_ort_vs_torch_encoder_min": round(min(iou_ort), 4),
        "mask_iou_ort_vs_torch_decoder_min": round(min(iou_decoder), 4),
        "onnx_mb": {"encoder_fp32": round(encoder_fp32.stat().st_size / 1e6, 1),
                    "encoder_int8": round(encoder_int8.stat().st_size / 1e6, 1)},
    }


def bench_frame_overhead(repeat: int = 30) -> Dict:
    """
    Per-frame work besides the models, against one plain copy of the same 4K frame.

    The work: rgb8 message bytes -> RGB array, GSE resize to 1920x1080, LPR crop + resize to
    512x512, mask paste into the full frame, the mono8 mask message and the overlay message
    (drawn at 1280 wide) -- what one request costs the node outside GSE, LPR and SAM.
    """
    from finers_ros.data.synthetic import SceneGenerator
    from finers_ros.geometry import crop_for_region, paste_mask, resize_image
    from finers_ros.overlay import draw_overlay
    from finers_ros.result import FineRSResult
    from finers_ros.ros.image_codec import image_to_rgb, mono8_fields, rgb_fields

    image, record = SceneGenerator(seed=2026).scene(0)
    data = image.tobytes()  # as a received message's data
    target = copy = np.empty_like(image)
    box = tuple(float(v) for v in record["target"]["box"])
    native = (image.shape[1], image.shape[0])
    crop = crop_for_region(box, native, 512)
    crop_mask = np.zeros((crop.height, crop.width), bool)
    crop_mask[100:200, 120:260] = True
    result = FineRSResult(instruction=record["Q"], found=True, answer="found", box=box,
                          points=[(box[0] + 2, box[1] + 2)], region=box, crop=crop)

    def per_frame():
        rgb = image_to_rgb("rgb8", 3840, 2160, 3840 * 3, data)
        resize_image(rgb, (1920, 1080))
        resize_image(crop.cut(rgb), (512, 512))
        result.mask = paste_mask(crop_mask, crop, native)
        mono8_fields(result.mask)
        rgb_fields(draw_overlay(rgb, result, 1280, "bench"))

    pair = {"memcpy": lambda: np.copyto(copy, image), "frame": per_frame}
    samples = interleaved(pair, repeat)
    cpu = interleaved(pair, repeat, clock=time.process_time)
    del target
    memcpy_ms, frame_ms = median(samples["memcpy"]), median(samples["frame"])
    memcpy_cpu_ms, frame_cpu_ms = median(cpu["memcpy"]), median(cpu["frame"])
    return {"memcpy_4k_ms": memcpy_ms, "frame_overhead_ms": frame_ms,
            "frame_overhead_over_memcpy": round(frame_ms / memcpy_ms, 2),
            "memcpy_4k_cpu_ms": memcpy_cpu_ms, "frame_overhead_cpu_ms": frame_cpu_ms,
            "frame_overhead_cpu_over_memcpy": round(frame_cpu_ms / memcpy_cpu_ms, 2),
            "repeat": repeat}
