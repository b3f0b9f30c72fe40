"""
Episode recorder cost with 3840x2160 frames: what the node's worker pays, what the writer does.

Prints the figures and writes them to ``OUT/recorder.json``:
``python benchmarks/bench_recorder.py --out benchmarks/results [--episodes 12]``
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from test_recorder import TOPICS, episode  # noqa: E402  (same episodes as the tests)

from finers_ros.ros.recorder import MB, EpisodeRecorder  # noqa: E402
from finers_training.bags import read_episodes  # noqa: E402


def chunk_count(mcap: Path) -> int:
    """MCAP chunks in a finished file, from its summary (what a cut can lose is one chunk)."""
    from mcap.reader import make_reader

    with mcap.open("rb") as stream:
        return len(make_reader(stream).get_summary().chunk_indexes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--episodes", type=int, default=12)
    args = parser.parse_args(argv)
    pairs = [episode(i, size=(3840, 2160)) for i in range(args.episodes)]
    with tempfile.TemporaryDirectory() as folder:
        recorder = EpisodeRecorder(folder, queue_limit=args.episodes, **TOPICS)
        calls = []
        started = time.perf_counter()
        for pair in pairs:
            tick = time.perf_counter()
            recorder.record(*pair)
            calls.append((time.perf_counter() - tick) * 1e3)
        recorder.close(timeout=600)
        written_s = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(folder).rglob("*.mcap"))
        chunks = sum(chunk_count(f) for f in Path(folder).rglob("*.mcap"))
        tick = time.perf_counter()
        read = sum(1 for e in read_episodes([folder]) if e.image is not None)
        read_s = time.perf_counter() - tick
    figures = {
        "frame": "3840x2160 rgb8", "episodes": args.episodes, "written": recorder.episodes,
        "dropped": recorder.dropped,
        "record_call_ms_median": round(statistics.median(calls), 3),
        "record_call_ms_max": round(max(calls), 3),
        "writer_ms_per_episode": round(written_s * 1e3 / args.episodes, 1),
        "bag_mb_per_episode": round(size / MB / args.episodes, 2),
        "chunks_per_episode": round(chunks / args.episodes, 2),
        "write_mb_per_s": round(size / MB / written_s, 1),
        "read_ms_per_episode": round(read_s * 1e3 / max(read, 1), 1),
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recorder.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if recorder.episodes == args.episodes and np.isfinite(written_s) else 1


if __name__ == "__main__":
    raise SystemExit(main())
