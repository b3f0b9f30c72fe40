import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

BIN = Path(sys.executable).parent


def run(*args, **kwargs):
    return subprocess.run(
        [str(BIN / args[0]), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


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
    keys = {"found", "answer", "box", "points", "region", "crop", "timings_ms", "error"}
    assert keys <= set(result)
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
    ("too large to decode", "cannot read image"),  # OpenCV's pixel limit, lowered for the test
    ("1x1", "image too small"),
])
def test_bad_input_one_line_reason(tmp_path, image_4k, case, message):
    path, _ = image_4k
    args = [path, "find the red screw", "--out", tmp_path / "out"]
    env = None
    if case == "too large to decode":
        env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "1000"}
    elif case == "1x1":
        args[0] = tmp_path / "dot.png"
        cv2.imwrite(str(args[0]), np.zeros((1, 1, 3), np.uint8))
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
    done = run("finers-segment", *args, env=env)
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
    done = run("finers-eval", "--annotations", scenes / "annotations.json",
               "--out", tmp_path / "eval", "--protocol", "reference")
    assert done.returncode == 0, done.stderr
    assert "reference protocol" in done.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 7 and metrics["failed"] == 1
    assert metrics["protocol"] == "reference"
    assert {"S", "XS", "XXS", "all"} <= set(metrics["segmentation"])
    assert "gse" in metrics["latency_ms"] and metrics["latency_ms"]["total"]["median"] > 0
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "gIoU" in report and "Region recall" in report


# --- finers-eval scoring, in process: hand-made answers, a run that raises ------------------

def _gse_text(response: str) -> str:
    return ("<think>x</think><answer>{'bbox': [100, 100, 356, 356], "
            f"'response': '{response}'}}</answer>")


LPR_NOT_FOUND = ("<think>x</think><answer>{'bbox': [0, 0, 0, 0], 'points_1': [0, 0], "
                 "'points_2': [0, 0], 'response': 'No object founded'}</answer>")
HAND_MADE = [  # question, Q-type, GT answer, GSE response
    ("which option is the car", "option", "A", "A red car, option B"),  # reference: right
    ("which option is the cap", "option", "B", "(b)"),
    ("what colour is the car", "reasoning", "red", "(red)"),  # reference: wrong
    ("what colour is the cap", "reasoning", "white", "The object is White."),
    ("find the red screw", "referring", "", "The object is found."),
    ("explode on this one", "referring", "", "The object is found."),
]


class ScriptedModel:
    """
    Stands in for the GSE/LPR models: fixed answers per question.

    So that what is tested is the scoring of those answers, not a model.
    """

    name = "scripted"

    def __init__(self, answers):
        self.answers = answers

    def generate(self, image, prompt):
        from finers_ros.prompts import question_from_prompt
        from finers_ros.stages.base import Generation

        return Generation(self.answers.get(question_from_prompt(prompt), LPR_NOT_FOUND), 1, 1, 0.0)

    def close(self):
        pass


def _scripted_pipeline():
    from finers_ros.pipeline import FineRSPipeline
    from finers_ros.segmenters.bringup import BringupSegmenter

    class ExplodingPipeline(FineRSPipeline):
        def run(self, image, instruction, *args, **kwargs):
            if "explode" in instruction:
                raise OverflowError("cannot convert float infinity to integer")
            return super().run(image, instruction, *args, **kwargs)

    gse = ScriptedModel({q: _gse_text(r) for q, _, _, r in HAND_MADE})
    return ExplodingPipeline(gse, ScriptedModel({}), BringupSegmenter())


@pytest.fixture(scope="module")
def hand_made_records(tmp_path_factory):
    from finers_ros.data.annotations import load_annotations

    folder = tmp_path_factory.mktemp("hand_made")
    cv2.imwrite(str(folder / "frame.png"), np.zeros((1080, 1920, 3), np.uint8))
    # GT polygon reaching x = 511.7: its pixels end at column 511, inside the 512 crop at x0 = 0.
    polygon = [[300, 300], [511.7, 300], [511.7, 319.9], [300, 319.9]]
    annotations = [{"image_path": "frame.png", "Q": q, "A": a, "Q-type": t, "points": polygon,
                    "area_percent": 0.01, "attribute": "colors",
                    **({"options": ["A. red", "B. white"]} if t == "option" else {})}
                   for q, t, a, _ in HAND_MADE]
    (folder / "annotations.json").write_text(json.dumps({"annotations": annotations}))
    return load_annotations(folder / "annotations.json")


def test_eval_scores_hand_made_answers_under_both_protocols(tmp_path, hand_made_records):
    from finers_ros.cli.evaluate import evaluate

    fixed = evaluate(_scripted_pipeline(), hand_made_records, tmp_path / "fixed", "scripted")
    reference = evaluate(_scripted_pipeline(), hand_made_records, tmp_path / "ref", "scripted",
                         protocol="reference")
    assert fixed["protocol"] == "fixed" and reference["protocol"] == "reference"
    assert json.loads((tmp_path / "ref" / "metrics.json").read_text())["protocol"] == "reference"
    assert (fixed["MVQA"]["accuracy"], fixed["OVQA"]["accuracy"]) == (0.5, 1.0)
    assert (reference["MVQA"]["accuracy"], reference["OVQA"]["accuracy"]) == (1.0, 0.5)
    # The run that raised is one failed sample; the evaluation went on past it.
    assert fixed["samples"] == 6 and fixed["failed"] == 1
    assert "OverflowError" in fixed["failures_listed"][0]["error"]
    # GT pixel box (x <= 511) inside the crop [0, 512): every sample that ran is a region hit;
    # the reference counts recall over the samples whose GSE gave a region only.
    assert fixed["region_recall"] == pytest.approx(5 / 6)
    assert reference["region_recall"] == 1.0
    # Nothing was segmented (LPR: not found): gIoU and cIoU are 0 under both.
    assert fixed["segmentation"]["all"]["cIoU"] == 0 == reference["segmentation"]["all"]["cIoU"]
    assert "reference protocol" in (tmp_path / "ref" / "report.md").read_text()


def test_eval_counts_an_image_opencv_refuses_as_failed_and_goes_on(tmp_path):
    # OpenCV raises (not returns None) past its pixel limit, lowered here to 100x100.
    small, large = np.zeros((64, 64, 3), np.uint8), np.zeros((200, 200, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    cv2.imwrite(str(tmp_path / "large.png"), large)
    record = {"Q": "find the red screw", "A": "", "Q-type": "referring",
              "points": [[10, 10], [20, 10], [20, 20]], "area_percent": 0.01}
    annotations = [dict(record, image_path="large.png"), dict(record, image_path="small.png")]
    (tmp_path / "a.json").write_text(json.dumps({"annotations": annotations}))
    done = run("finers-eval", "--annotations", tmp_path / "a.json", "--out", tmp_path / "eval",
               env={**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "10000"})
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 2 and metrics["failed"] == 1
    assert "cannot read image" in metrics["failures_listed"][0]["error"]


def test_report_keeps_token_counts_out_of_the_latency_table(tmp_path):
    from finers_ros.cli.evaluate import write_report
    from finers_ros.metrics import Sample, summarize

    timings = {"gse": 900.0, "gse_prefill_ms": 600.0, "gse_prompt_tokens": 2882.0, "total": 950}
    metrics = summarize([Sample("referring", 0.01, 1, 2, True, timings_ms=timings)])
    write_report(tmp_path / "report.md", metrics, "scripted", [])
    report = (tmp_path / "report.md").read_text()
    latency = report.split("| stage | median ms | p90 ms |")[1].split("\n\n")[0]
    assert "| gse | 900.0 |" in latency and "tokens" not in latency
    assert "| tokens | median | p90 |\n|---|---|---|\n| gse_prompt_tokens | 2882.0 |" in report


def test_banner_names_the_bringup_parts_only():
    # Qwen2.5-VL checkpoints with the bring-up segmenter is not a "no model weights" run.
    from finers_ros.cli.common import bringup_banner
    from finers_ros.pipeline import FineRSPipeline
    from finers_ros.segmenters.bringup import BringupSegmenter

    qwen = ScriptedModel({})
    qwen.name = "qwen2_5_vl:FineRS-7B"
    banner = bringup_banner(FineRSPipeline(qwen, qwen, BringupSegmenter()))
    assert "no model weights" not in banner
    assert "qwen2_5_vl:FineRS-7B" in banner and "bring-up segmenter" in banner
    assert "no model weights" in bringup_banner(FineRSPipeline.from_config(None))


@pytest.mark.parametrize("config_text", [
    "gse: {backend: bringup\n  lpr: [\n",  # YAML errors span several lines
    "segmenter: {backend: sam, checkpoint: w.pth}\n",  # torch.load's multi-line refusal
])
def test_config_errors_are_one_line(tmp_path, image_4k, config_text):
    (tmp_path / "w.pth").write_text('{"not": "a checkpoint"}')
    config = tmp_path / "c.yaml"
    config.write_text(config_text)
    done = run("finers-segment", image_4k[0], "find it", "--out", tmp_path, "--config", config)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finers-segment: error: "), done.stderr


@pytest.mark.parametrize("args, message", [
    (["--count", "-3"], "--count"), (["--seed", "-1"], "--seed"),
    (["--width", "16", "--height", "16"], "no room for a target"),
    (["--width", "100000"], "--width"),
])
def test_make_scenes_bad_arguments_one_line(tmp_path, args, message):
    done = run("finers-make-scenes", "--out", tmp_path / "s", "--count", "1", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the progress bar, if it started
    assert last.startswith("finers-make-scenes: error: ") and message in last, done.stderr


@pytest.mark.parametrize("tool, extra, message", [
    ("finers-segment", ["--out", "{file}"], "cannot write to"),
    ("finers-segment", ["--out", "{dir}", "--overlay-width", "0"], "--overlay-width"),
    ("finers-eval", ["--out", "{file}"], "cannot write to"),
    ("finers-eval", ["--out", "{dir}", "--limit", "-2"], "--limit"),
    ("finers-eval", ["--out", "{dir}", "--examples", "-1"], "--examples"),
])
def test_bad_output_arguments_one_line(tmp_path, tool, extra, message):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((64, 64, 3), np.uint8))
    record = {"image_path": "frame.png", "Q": "find it", "A": "", "Q-type": "referring",
              "points": [[1, 1], [9, 1], [9, 9]], "area_percent": 0.01}
    (tmp_path / "a.json").write_text(json.dumps({"annotations": [record]}))
    inputs = ([tmp_path / "frame.png", "find the red screw"] if tool == "finers-segment"
              else ["--annotations", tmp_path / "a.json"])
    extra = [e.format(file=a_file, dir=tmp_path / "out") for e in extra]
    done = run(tool, *inputs, *extra)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{tool}: error: ") and message in last, done.stderr
