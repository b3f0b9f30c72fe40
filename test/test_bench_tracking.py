"""The tracking benchmark writes its figures and merges its section into the shared results."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_tracking  # noqa: E402


def test_bench_merges_its_section_and_keeps_the_others(tmp_path):
    (tmp_path / "latest.json").write_text(json.dumps({"round_trip_ms": 194.0, "machine": {}}))
    (tmp_path / "latest.md").write_text("| figure | value |\n|---|---|\n| round trip | 194 |\n")
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_tracking.py"), "--out",
               str(tmp_path), "--size", "960x540", "--frames", "8", "--scenarios", "jump,exit"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["round_trip_ms"] == 194.0 and "machine" in latest
    tracking = latest["tracking"]
    assert list(tracking["scenarios"]) == ["jump", "exit"]
    assert tracking["setup"]["size"] == [960, 540] and tracking["setup"]["backend"] == "template"
    jump = tracking["scenarios"]["jump"]
    assert jump["frames"] == 8 and 0.0 <= jump["J"] <= 1.0 and jump["cpu_ms_median"] > 0
    assert json.loads((tmp_path / "tracking.json").read_text())["scenarios"] == tracking[
        "scenarios"]
    markdown = (tmp_path / "latest.md").read_text()
    assert markdown.startswith("| figure | value |") and "| round trip | 194 |" in markdown
    assert "| jump |" in markdown and "| exit |" in markdown
    assert markdown.count(bench_tracking.MARK_BEGIN) == 1
    assert (tmp_path / "tracking.md").read_text() in markdown


def test_markdown_section_is_replaced_not_repeated(tmp_path):
    path = tmp_path / "latest.md"
    path.write_text("before\n")
    bench_tracking.merge_markdown(path, "| old |\n")
    bench_tracking.merge_markdown(path, "| new |\n")
    text = path.read_text()
    assert text.startswith("before\n") and "| new |" in text and "| old |" not in text
    assert text.count(bench_tracking.MARK_END) == 1


def test_json_merge_survives_a_missing_or_broken_file(tmp_path):
    path = tmp_path / "latest.json"
    bench_tracking.merge_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"tracking": {"a": 1}}
    path.write_text("{not json")
    bench_tracking.merge_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"tracking": {"b": 2}}


def test_targets_by_scenario():
    met = {"J": 0.93, "wrong_target_frames": 0, "loss_missed": 0, "loss_frames_worst": 2,
           "reacquire_missed": 0, "reacquire_frames_worst": 5, "cpu_ms_median": 10.0,
           "cpu_ms_p99": 20.0}
    assert bench_tracking.unmet("occlusion", met) == []
    assert bench_tracking.unmet("pan", met) == ["J"]  # pan, zoom and fast need 0.95
    missed = {**met, "wrong_target_frames": 1, "loss_frames_worst": 3, "reacquire_missed": 1,
              "cpu_ms_p99": 20.5}
    assert bench_tracking.unmet("twin", missed) == ["wrong_target_frames", "loss", "reacquire",
                                                    "cpu"]
