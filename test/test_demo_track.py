"""``finers-demo --track``: the tracked demo end to end, as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_track_follows_the_target_with_the_given_instruction(tmp_path):
    from finers_ros.data.moving import moving_sequence
    from finers_ros.ros.demo_track import FRAMES, instruction_for, SCENARIO

    colour = instruction_for(moving_sequence(SCENARIO, seed=0, frames=1)).split()[2]
    instruction = f"find the {colour} bolt"  # a wording of the user's own
    run = subprocess.run([str(Path(sys.executable).parent / "finers-demo"), "--track",
                          "--out", str(tmp_path), "--instruction", instruction],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads((tmp_path / "tracks.json").read_text())
    assert report["instruction"] == instruction
    tracked = [row for row in report["tracks"] if "iou" in row and row["frame"]]
    assert len(tracked) >= 0.8 * FRAMES and min(row["iou"] for row in tracked) > 0.5
    assert sorted(tmp_path.glob("track_*.png"))
    assert f"sent {instruction!r}" in run.stdout
