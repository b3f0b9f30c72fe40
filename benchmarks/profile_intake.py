#!/usr/bin/env python3
"""
Profile where the node's CPU goes while it receives 4K frames.

``perf record`` on the node process (bring-up backend, 3840x2160 rgb8 at 10 Hz, no
instruction) and ``perf report`` by shared object and symbol. Writes
``<out>/intake_profile_<tuned|untuned>.txt``.

    python benchmarks/profile_intake.py --out benchmarks/results [--seconds 10] [--untuned]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def profile(domain: int, image, tuned: bool, seconds: float, out: Path,
            keep_data: bool = False) -> Path:
    from bench_node import running_node

    env = {} if tuned else {"FINERS_MALLOC_TUNING": "0"}
    data = out / f"intake_{'tuned' if tuned else 'untuned'}.perf.data"
    report = out / f"intake_profile_{'tuned' if tuned else 'untuned'}.txt"
    with running_node(domain, env=env) as (node, client):
        client.stream(client.frame_message(image), hz=10.0)
        time.sleep(2.0)
        subprocess.run(["perf", "record", "-F", "499", "-g", "-o", str(data),
                        "-p", str(node.process.pid), "--", "sleep", str(seconds)],
                       check=True, capture_output=True)
        client.stop_stream()
    text = ""
    for sort in ("dso", "dso,sym"):  # by library first, then the hottest functions
        text += subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort,
                                "--stdio", "-g", "none", "--percent-limit", "1"],
                               check=True, capture_output=True, text=True).stdout
    report.write_text(text)
    if not keep_data:
        data.unlink()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--untuned", action="store_true", help="FINERS_MALLOC_TUNING=0")
    args = parser.parse_args()
    from domain_coordinator import domain_id

    from finers_ros.ros.demo import red_scene

    args.out.mkdir(parents=True, exist_ok=True)
    image, _ = red_scene()
    with domain_id() as domain:
        print(f"wrote {profile(domain, image, not args.untuned, args.seconds, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
