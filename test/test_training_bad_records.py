"""
Annotation records a data set cannot use as they are: polygons off the image.

A GT box outside the crop the model sees is a target no answer can reach; it must not enter
a training set silently. Partly outside: clipped to the image (as the GT mask is); wholly
outside: skipped and counted.
"""

import json

import cv2
import numpy as np
import pytest

from finers_training.data import DataOptions, build_set


def _annotations(tmp_path, points):
    cv2.imwrite(str(tmp_path / "frame.png"), np.full((480, 640, 3), 80, np.uint8))
    record = {"image_path": "frame.png", "Q": "find the red screw", "A": "",
              "Q-type": "referring", "points": points, "area_percent": 0.01}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"annotations": [record]}))
    return path


@pytest.mark.parametrize("stage", ["lpr", "gse"])
@pytest.mark.parametrize(
    "points",
    [[[5000, 5000], [5010, 5000], [5010, 5010]], [[-50, -50], [-10, -50], [-10, -10]]],
)
def test_polygon_off_the_image_is_skipped(tmp_path, stage, points):
    options = DataOptions(crop_size=128, lpr_size=(128, 128), gse_size=(320, 240))
    rows, counts = build_set(stage, _annotations(tmp_path, points), tmp_path / "set", options)
    assert counts == {"samples": 0, "skipped": 1}


@pytest.mark.parametrize("stage, frame", [("lpr", (128, 128)), ("gse", (320, 240))])
def test_polygon_partly_off_the_image_is_clipped_to_it(tmp_path, stage, frame):
    points = [[600, 440], [700, 440], [700, 520]]
    options = DataOptions(crop_size=128, lpr_size=(128, 128), gse_size=(320, 240))
    rows, counts = build_set(stage, _annotations(tmp_path, points), tmp_path / "set", options)
    assert counts["samples"] == 1
    x1, y1, x2, y2 = json.loads(rows.read_text())["gt_box"]
    # inside the frame (the core scales the native edge pixel W - 1 to (W - 1) x gse_w / W)
    assert 0 <= x1 <= x2 <= frame[0] and 0 <= y1 <= y2 <= frame[1]
    assert x2 > frame[0] - 2 and y2 > frame[1] - 2  # clipped at the edge, not dropped


def test_search_progress_cut_mid_line_is_resumed_not_fatal(tmp_path):
    """
    Resume a search whose progress file was cut mid-line.

    A search killed while appending to <out>.partial.jsonl leaves a cut last line: the rerun
    redoes that sample instead of failing on the file.
    """
    from finers_training.retrospective import read_partial

    partial = tmp_path / "out.json.partial.jsonl"
    assert read_partial(partial) == {}
    done = {"index": 0, "best_region": [1.0, 2.0, 3.0, 4.0]}
    partial.write_text(json.dumps(done) + "\n" + '{"index": 1, "best_reg')
    assert read_partial(partial) == {0: done}
