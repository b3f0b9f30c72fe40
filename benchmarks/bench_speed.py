#!/usr/bin/env python3
"""
Benchmark the speed of the node and the model runtimes.

Writes ``<out>/latest.json`` (flat keys, medians over repeated runs; pairs measured side by
side in one process run) and ``<out>/latest.md`` (the table the README quotes, with the
machine).

    python benchmarks/bench_speed.py --out benchmarks/results [--stream-s 300] [--skip sam,...]

Sections: ``intake`` (node CPU per received 4K frame at 10 Hz, with and without the node's
malloc settings, alternating), ``round_trip`` (instruction -> Detection over ROS at 10 Hz 4K,
``frame_policy: latest``), ``frame`` (per-frame work besides the models vs one memcpy),
``transport`` (4K delivery per Fast DDS setup, fresh processes per case), ``sam`` (ViT-B
encoder and decoder, torch vs ONNX Runtime, random weights), ``stream`` (4K at 10 Hz plus an
instruction a second: RSS, loss, result age). The node runs the bring-up backend throughout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SECTIONS = ("frame", "intake", "round_trip", "transport", "stream", "sam")


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {"cpu": model, "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_average_start": [round(v, 1) for v in os.getloadavg()],
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


@contextmanager
def section(report: dict, name: str):
    """Record the section's wall time in ``machine.section_s`` (the 20-minute budget's parts)."""
    started = time.monotonic()
    try:
        yield
    finally:
        spent = round(time.monotonic() - started, 1)
        report["machine"].setdefault("section_s", {})[name] = spent
        print(f"{name}: {spent} s", flush=True)


def run_sections(args, report: dict) -> None:
    from domain_coordinator import domain_id

    from finers_ros.ros.demo import INSTRUCTION, red_scene
    from finers_ros.ros.memory import tune_malloc

    tune_malloc()  # this process converts frames like the node does: same allocator settings
    image, _ = red_scene()
    flat, details = report["figures"], report["details"]
    if "frame" in args.sections:
        from bench_models import bench_frame_overhead

        with section(report, "frame"):
            details["frame"] = bench_frame_overhead(args.frame_repeat)
        flat.update({k: details["frame"][k] for k in
                     ("frame_overhead_ms", "memcpy_4k_ms", "frame_overhead_over_memcpy",
                      "frame_overhead_cpu_over_memcpy")})
        print(f"frame: {details['frame']}", flush=True)
    with domain_id() as domain:
        if "intake" in args.sections:
            from bench_node import intake_cpu

            with section(report, "intake"):
                runs = [intake_cpu(domain, image, tuned, args.intake_s)
                        for _ in range(args.intake_repeat) for tuned in (False, True)]
            details["intake"] = runs
            for tuned, key in ((True, "intake_cpu_ms_per_4k_frame"),
                               (False, "intake_cpu_ms_per_4k_frame_untuned")):
                flat[key] = round(statistics.median(r["cpu_ms_per_frame"] for r in runs
                                                    if r["tuned"] == tuned), 1)
            print(f"intake: {runs}", flush=True)
        if "round_trip" in args.sections:
            from bench_node import round_trips

            with section(report, "round_trip"):
                details["round_trip"] = round_trips(domain, image, INSTRUCTION, args.requests)
            flat["round_trip_ms"] = details["round_trip"]["round_trip_ms"]
            key = "round_trip_minus_pipeline_ms"
            flat[key] = details["round_trip"][key]
            print(f"round trip: {details['round_trip']}", flush=True)
        if "transport" in args.sections:
            from bench_transport import bench_transport

            with section(report, "transport"):
                details["transport"] = bench_transport(domain, args.transport_repeat)
            for name, key in (("default_both", "transport_4k_ms_default"),
                              ("profile_both", "transport_4k_ms_profile")):
                case = details["transport"][name]
                flat[key] = case["latency_ms_median"]  # null: no frame arrived at all
                delivered = f"{case['received']}/{case['published']}"
                flat[key.replace("_ms_", "_delivered_")] = delivered
            for name, case in details["transport"].items():
                print(f"transport {name}: {case['received']}/{case['published']} frames, "
                      f"latency {case['latency_ms_median']} ms", flush=True)
        if "stream" in args.sections:
            from bench_node import stream

            with section(report, "stream"):
                details["stream"] = stream(domain, image, INSTRUCTION, args.stream_s,
                                           args.warmup_s)
            s = details["stream"]
            flat.update(stream_rss_growth_mb=s["rss_growth_mb"],
                        stream_lost_instructions=s["lost_instructions"],
                        stream_rss_peak_mb=s["rss_peak_mb"],
                        stream_result_age_ms=s["result_age_ms_median"],
                        stream_private_peak_mb=s["private_peak_mb"])
            print(f"stream: {s}", flush=True)
    if "sam" in args.sections:
        from bench_models import bench_sam

        with section(report, "sam"), \
                tempfile.TemporaryDirectory(prefix="finers-sam-bench-") as work:
            details["sam"] = sam = bench_sam(Path(work), args.threads, args.encoder_repeat,
                                             args.decoder_repeat, args.crops)
        flat.update(sam_decoder_ms_torch=sam["decoder_ms"]["torch"],
                    sam_decoder_ms_ort=sam["decoder_ms"]["ort"],
                    sam_encoder_ms_torch=sam["encoder_ms"]["torch"],
                    sam_encoder_ms_ort=sam["encoder_ms"]["ort"],
                    sam_encoder_ms_ort_int8=sam["encoder_ms"]["ort_int8"],
                    sam_int8_mask_iou_vs_fp32_min=sam["mask_iou_int8_vs_fp32_min"])
        print(f"sam: {sam}", flush=True)


TARGETS = {  # key -> (target text, passes)
    "intake_cpu_ms_per_4k_frame": ("<= 15", lambda v: v <= 15),
    "round_trip_minus_pipeline_ms": ("<= 40", lambda v: v <= 40),
    "frame_overhead_over_memcpy": ("<= 8", lambda v: v <= 8),
    "stream_rss_peak_mb": ("< 600", lambda v: v < 600),
    "stream_lost_instructions": ("0", lambda v: v == 0),
}
LABELS = {
    "intake_cpu_ms_per_4k_frame": "node CPU per received 4K frame, 10 Hz (ms)",
    "intake_cpu_ms_per_4k_frame_untuned": "same, without the node's malloc settings (ms)",
    "round_trip_ms": "instruction -> Detection over ROS, 4K at 10 Hz, latest (ms)",
    "round_trip_minus_pipeline_ms": "round trip minus the pipeline's own time (ms)",
    "frame_overhead_ms": "per-request work besides the models (ms)",
    "memcpy_4k_ms": "one plain copy of the 4K frame (ms)",
    "frame_overhead_over_memcpy": "per-request work / memcpy",
    "frame_overhead_cpu_over_memcpy": "same, process CPU time (OpenCV's threads included)",
    "transport_4k_ms_default": "4K frame transport, default Fast DDS both sides (ms)",
    "transport_4k_delivered_default": "frames delivered, default Fast DDS both sides",
    "transport_4k_ms_profile": "4K frame transport, shipped profile both sides (ms)",
    "transport_4k_delivered_profile": "frames delivered, shipped profile both sides",
    "sam_decoder_ms_torch": "SAM ViT-B prompt encoder + mask decoder, torch (ms)",
    "sam_decoder_ms_ort": "same, ONNX Runtime (ms)",
    "sam_encoder_ms_torch": "SAM ViT-B image encoder, 512 crop, torch (ms)",
    "sam_encoder_ms_ort": "same, ONNX Runtime fp32 (ms)",
    "sam_encoder_ms_ort_int8": "same, ONNX Runtime dynamic int8 (ms)",
    "sam_int8_mask_iou_vs_fp32_min": "int8 vs fp32 encoder: lowest mask IoU",
    "stream_rss_peak_mb": "5 min stream: node peak RSS (MB)",
    "stream_private_peak_mb": "same, private memory only (no shared segments, libraries) (MB)",
    "stream_rss_growth_mb": "5 min stream: RSS growth after 60 s (MB)",
    "stream_lost_instructions": "5 min stream: instructions without an outcome",
    "stream_result_age_ms": "5 min stream: frame age when its Detection arrives (ms)",
}


def runs_text(key: str, details: dict) -> str:
    """Say what the figure's median is over, from the run's own details."""
    if key.startswith("intake") and "intake" in details:
        runs = details["intake"]
        return f"{len(runs) // 2} runs of {runs[0]['seconds']:.0f} s"
    if key.startswith("round_trip") and "round_trip" in details:
        return f"{details['round_trip']['requests']} requests"
    if key.startswith(("frame_overhead", "memcpy_4k")) and "frame" in details:
        return f"{details['frame']['repeat']} calls"
    if key.startswith("transport") and "transport" in details:
        case = details["transport"]["default_both" if "default" in key else "profile_both"]
        return f"frames of {len(case['runs'])} runs"
    if key.startswith("sam_") and "sam" in details:
        sam = details["sam"]
        if key.startswith("sam_decoder"):
            return f"{sam['decoder_runs']} runs"
        return f"{sam['encoder_runs']} runs" if "iou" not in key else f"{sam['crops']} crops"
    if key.startswith("stream") and "stream" in details:
        return f"1 run of {details['stream']['seconds']:.0f} s"
    return ""


def env_text(env: dict) -> str:
    return ", ".join(f"{k}={Path(v).name}" for k, v in env.items()) or "default"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Measured {m['date_utc']} UTC on {m['cpu']}, {m['cores']} cores, "
             f"{m['memory_gib']} GiB (load average {m['load_average_start'][0]} at start, "
             f"{m['load_average_end'][0]} at end: "
             "a machine shared with other jobs, so absolute times are noisy; ratios measured side "
             "by side in one run hold).", "",
             "| figure | value | measured over | target |", "|---|---|---|---|"]
    figures = report["figures"]
    for key, label in LABELS.items():
        if key not in figures:
            continue
        value = figures[key]
        target, passes = TARGETS.get(key, ("", None))
        if target and value is not None:
            target = f"{target} {'met' if passes(value) else '**not met**'}"
        shown = "none arrived" if value is None else value
        runs = runs_text(key, report["details"])
        lines.append(f"| {label} (`{key}`) | {shown} | {runs} | {target} |")
    if m.get("section_s"):
        parts = ", ".join(f"{name} {spent / 60:.1f}" for name, spent in m["section_s"].items())
        lines += ["", f"This run of bench_speed.py: {m.get('bench_minutes')} min ({parts})."]
    if "sam" in report["details"]:
        sam = report["details"]["sam"]
        enc, dec = sam["encoder_ms"], sam["decoder_ms"]
        lines += ["", f"SAM, {sam['threads']} threads for both runtimes: encoder torch/ORT "
                      f"{enc['torch'] / enc['ort']:.2f}x, "
                      f"torch/ORT int8 {enc['torch'] / enc['ort_int8']:.2f}x; "
                      f"decoder torch/ORT {dec['torch'] / dec['ort']:.2f}x."]
    if "transport" in report["details"]:
        lines += ["", "| 4K rgb8 at 5 Hz, camera -> node | camera env | node env | QoS "
                      "| delivered | latency (ms) |",
                  "|---|---|---|---|---|---|"]
        for name, case in report["details"]["transport"].items():
            latency = case["latency_ms_median"] if case["latency_ms_median"] is not None else "-"
            camera, node = env_text(case["camera_env"]), env_text(case["node_env"])
            lines.append(f"| {name} | {camera} | {node} | {case['qos']} | "
                         f"{case['received']}/{case['published']} | {latency} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--sections", type=lambda s: s.split(","), default=list(SECTIONS))
    parser.add_argument("--stream-s", type=float, default=300.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--intake-s", type=float, default=12.0)
    parser.add_argument("--intake-repeat", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--transport-repeat", type=int, default=2)
    parser.add_argument("--frame-repeat", type=int, default=40)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--crops", type=int, default=2)
    parser.add_argument("--encoder-repeat", type=int, default=1)
    parser.add_argument("--decoder-repeat", type=int, default=5)
    args = parser.parse_args()
    started = time.monotonic()
    report = {"machine": machine(), "figures": {}, "details": {}}
    run_sections(args, report)
    report["machine"]["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    report["machine"]["bench_minutes"] = round((time.monotonic() - started) / 60, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    latest = {**report["figures"], "machine": report["machine"], "details": report["details"]}
    (args.out / "latest.json").write_text(json.dumps(latest, indent=2))
    (args.out / "latest.md").write_text(markdown(report))
    print(markdown(report))
    minutes = report["machine"]["bench_minutes"]
    print(f"wrote {args.out / 'latest.json'} and latest.md in {minutes} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
