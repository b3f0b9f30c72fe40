#!/usr/bin/env python3
"""
Check the core with CUDA on a GPU machine.

The Qwen2.5-VL loader and generation in bf16, SAM on CUDA against the CPU, both decoders
side by side, and the TensorRT guard. Writes ``<out>/gpu_check.json``. Models are tiny or
random (no weights are downloaded).

    python benchmarks/gpu_check.py --out DIR
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def cuda_timed(fn, repeat=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def check_qwen(work: Path) -> dict:
    from finers_ros.config import PipelineConfig, StageConfig
    from finers_ros.pipeline import FineRSPipeline
    from finers_ros.prompts import gse_prompt
    from finers_ros.segmenters.bringup import BringupSegmenter
    from finers_ros.stages.qwen_vl import QwenVLModel
    from finers_ros.testing.tiny_qwen import build_tiny_qwen

    directory = build_tiny_qwen(work / "tiny_qwen")
    stage = StageConfig(
        backend="qwen2_5_vl", checkpoint=str(directory), device="cuda", max_new_tokens=32
    )
    model = QwenVLModel(stage)
    image = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    generation = model.generate(image, gse_prompt("find the red screw"))
    times = [
        model.generate(image, gse_prompt("find the red screw")).seconds * 1000 for _ in range(5)
    ]
    pipeline = FineRSPipeline(
        model, model, BringupSegmenter(), PipelineConfig(gse=stage, lpr=stage)
    )
    frame_4k = np.random.default_rng(1).integers(0, 255, (2160, 3840, 3), dtype=np.uint8)
    result = pipeline.run(frame_4k, "find the red screw")
    return {
        "dtype": str(next(model.model.parameters()).dtype),
        "prompt_tokens": generation.prompt_tokens,
        "generated_tokens": generation.generated_tokens,
        "generate_ms_median": round(statistics.median(times), 1),
        "pipeline_error_stage": result.error_stage,
        "pipeline_error": (result.error or "")[:120],
        "pipeline_timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
    }


def check_sam(model_type: str) -> dict:
    from finers_ros.segmenters.sam import SamSegmenter, TorchDecoder
    from finers_ros.segmenters.sam_export import export_decoder
    from finers_ros.segmenters.sam_model import load_sam
    from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder

    torch.manual_seed(0)
    cpu = load_sam(model_type, None)
    state = {k: v.clone() for k, v in cpu.state_dict().items()}
    gpu = load_sam(model_type, None, device="cuda")
    gpu.load_state_dict(state)
    crop = np.random.default_rng(2).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    box, points = (180, 170, 300, 290), [(230, 220), (250, 240)]
    seg_cpu = SamSegmenter(cpu, TorchDecoder(cpu))
    seg_gpu = SamSegmenter(gpu, TorchDecoder(gpu))
    emb_cpu = seg_cpu.embed(crop)
    emb_gpu = seg_gpu.embed(crop)
    a = seg_cpu.decode(emb_cpu, (512, 512), box, points)
    b = seg_gpu.decode(emb_gpu, (512, 512), box, points)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_decoder(cpu, Path(tmp) / "dec.onnx")
        seg_ort = SamSegmenter(gpu, OnnxRuntimeDecoder(onnx_path, device="cuda"))
        c = seg_ort.decode(emb_gpu, (512, 512), box, points)
        import onnxruntime as ort

        providers = seg_ort.decoder.session.get_providers()
        ort_ms = cuda_timed(lambda: seg_ort.decode(emb_gpu, (512, 512), box, points))

    def iou(x, y):
        return float((x.mask & y.mask).sum() / max(1, (x.mask | y.mask).sum()))

    return {
        "model_type": model_type,
        "mask_iou_cuda_vs_cpu": round(iou(a, b), 4), "mask_iou_ort_vs_cuda": round(iou(b, c), 4),
        "encoder_ms_cuda": cuda_timed(lambda: seg_gpu.embed(crop), repeat=10),
        "decoder_ms_torch_cuda": cuda_timed(
            lambda: seg_gpu.decode(emb_gpu, (512, 512), box, points)
        ),
        "decoder_ms_onnxruntime": ort_ms, "onnxruntime_providers": providers,
        "onnxruntime_available_providers": ort.get_available_providers(),
    }


def check_tensorrt() -> dict:
    from finers_ros.segmenters.sam_tensorrt import TensorRTDecoder

    try:
        TensorRTDecoder("/nonexistent.onnx")
    except RuntimeError as exc:
        return {"available": False, "message": str(exc)[:200]}
    return {"available": True}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sam", default="vit_b")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        checks = (
            ("qwen", lambda: check_qwen(Path(tmp))),
            ("sam", lambda: check_sam(args.sam)),
            ("tensorrt", check_tensorrt),
        )
        for name, check in checks:
            try:
                report[name] = check()
            except Exception as exc:
                report[name] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
            print(name, json.dumps(report[name]), flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
