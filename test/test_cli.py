import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

BIN = Path(sys.executable).parent


def run(*args, **kwargs):
    return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def image_4k(tmp_path_factory, scene_4k):
    image, record = scene_4k
    path = tmp_path_factory.mktemp("cli") / "frame.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path, record


def test_segment_writes_three_files_at_full_resolution(tmp_path, image_4k):
    path, record = image_4k
    done = run("finers-segment", path, record["Q"], "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "bring-up" in done.stdout
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (2160, 3840) and set(np.unique(mask)) == {0, 255}
    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    assert overlay.shape[1] == 1280
    result = json.loads((tmp_path / "result.json").read_text())
    assert {"found", "answer", "box", "points", "region", "crop", "timings_ms", "error"} <= set(result)
    assert result["found"] and result["error"] is None and len(result["points"]) == 2


def test_not_found_exits_zero(tmp_path, image_4k):
    path, _ = image_4k
    done = run("finers-segment", path, "find the unicorn", "--out", tmp_path)
    assert done.returncode == 0 and "not found" in done.stdout
    assert json.loads((tmp_path / "result.json").read_text())["found"] is False


@pytest.mark.parametrize("case, message", [
    ("missing", "image not found"),
    ("unreadable", "cannot read image"),
    ("empty", "empty instruction"),
    ("checkpoint", "checkpoint directory not found"),
])
def test_bad_input_one_line_reason(tmp_path, image_4k, case, message):
    path, _ = image_4k
    args = [path, "find the red screw", "--out", tmp_path / "out"]
    if case == "missing":
        args[0] = tmp_path / "nope.png"
    elif case == "unreadable":
        args[0] = tmp_path / "junk.png"
        args[0].write_bytes(b"not a png")
    elif case == "empty":
        args[1] = "  "
    elif case == "checkpoint":
        config = tmp_path / "c.yaml"
        config.write_text("gse: {backend: qwen2_5_vl, checkpoint: /nonexistent/qwen}\n")
        args += ["--config", config]
    done = run("finers-segment", *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_eval_reports_metrics_on_generated_scenes(tmp_path):
    scenes = tmp_path / "scenes"
    assert run("finers-make-scenes", "--out", scenes, "--count", "6", "--seed", "2",
               "--width", "1920", "--height", "1080").returncode == 0
    # one record points at a missing image: a failed sample, not a crash
    data = json.loads((scenes / "annotations.json").read_text())
    data["annotations"].append(dict(data["annotations"][0], image_path="images/missing.png"))
    (scenes / "annotations.json").write_text(json.dumps(data))
    done = run("finers-eval", "--annotations", scenes / "annotations.json", "--out", tmp_path / "eval")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 7 and metrics["failed"] == 1
    assert {"S", "XS", "XXS", "all"} <= set(metrics["segmentation"])
    assert "gse" in metrics["latency_ms"] and metrics["latency_ms"]["total"]["median"] > 0
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "gIoU" in report and "Region recall" in report
