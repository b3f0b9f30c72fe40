"""
The retrospective target agrees with the GSE reward on frames of any size.

The GSE is asked for a 256x256 region of its 1920x1080 frame and its size term pays for
256 +- 15 px sides. ``best_region`` must be such a region for every native frame size, or
answering it exactly scores 0 on the size term and the maximum reward is out of reach (a
512-native window is 511 GSE px wide on a 1080p frame, 128 on an 8K one). Searched here
end to end: annotations -> best-region search -> GSE set -> rewards, at 1080p, 4K and 8K.
"""

import json

import cv2
import numpy as np
import pytest

from finers_ros import geometry as geo
from finers_training import data as D
from finers_training import rewards as R
from finers_training import retrospective
from finers_training.config import TrainConfig


class UnsureLPR:
    """A frozen LPR that never finds the object: every window ties, the centred one wins."""

    max_new_tokens = 4

    def answer(self, images, prompts):
        return ["<think>?</think><answer>{'bbox': [0, 0, 0, 0], 'points_1': [0, 0], "
                "'points_2': [0, 0], 'response': 'No object found'}</answer>"] * len(images)


def _annotations(tmp_path, native, boxes):
    width, height = native
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((height, width, 3), np.uint8))
    records = [
        {
            "image_path": "frame.png",
            "Q": "find the red screw",
            "A": "The object is found.",
            "Q-type": "referring",
            "points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
            "area_percent": 0.01,
        }
        for x1, y1, x2, y2 in boxes
    ]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"annotations": records}))
    return path


def _answer(box):
    return ('<think>the screw</think><answer>{"bbox": %s, "response": "The object is found."}'
            "</answer>" % json.dumps([float(v) for v in box]))


@pytest.mark.parametrize("native", [(1920, 1080), (3840, 2160), (7680, 4320)])
def test_answering_best_region_gets_the_maximum_reward(tmp_path, monkeypatch, native):
    width, height = native
    s = width / 1920
    boxes = [  # a small object mid-frame, one in a corner, one on the right edge
        (900 * s, 500 * s, 930 * s, 520 * s),
        (2 * s, 3 * s, 40 * s, 30 * s),
        (width - 60 * s, height / 2, width - 1, height / 2 + 40 * s),
    ]
    annotations = _annotations(tmp_path, native, boxes)
    monkeypatch.setattr(retrospective, "search_model", lambda config: UnsureLPR())
    config = TrainConfig(stage="gse", annotations=str(annotations), search_checkpoint="lpr")
    out = tmp_path / "searched.json"
    retrospective.search(config, out, progress=False)
    rows_path, counts = D.build_set("gse", out, tmp_path / "gse", D.DataOptions())
    assert counts["samples"] == len(boxes)
    for row in D.read_rows(rows_path):
        region = row["best_region"]
        for reference in (False, True):
            scores = R.score_all("gse", _answer(region), row, reference=reference)
            assert scores == {name: 1.0 for name in R.term_names("gse")}, (region, scores)
        # The LPR answered the node's crop of that region, and it holds the object (up to
        # one GSE pixel on the frame's edge: the crop's side is the region's width, x2 - x1).
        window = geo.crop_for_region(
            geo.gse_to_native_box(region, native, (1920, 1080)), native, 512
        )
        x1, y1, x2, y2 = row["gt_box_native"]
        bx1, by1, bx2, by2 = window.box
        edge = width / 1920
        assert bx1 <= x1 and by1 <= y1 and bx2 >= x2 - edge and by2 >= y2 - edge


def test_candidate_regions_are_the_prompt_size_and_hold_the_object():
    rng = np.random.default_rng(0)
    for native in ((1920, 1080), (3840, 2160), (7680, 4320), (1280, 720), (1440, 1080)):
        box = geo.native_to_gse_box((900.5, 500, 930, 522.5), (1920, 1080), native)
        regions = retrospective.candidate_regions(box, native, (1920, 1080), rng)
        assert len(regions) == 1 + retrospective.RANDOM_WINDOWS
        gt = D.gse_gt_box(box, native, (1920, 1080))
        for x1, y1, x2, y2 in regions:
            assert (x2 - x1, y2 - y1) == (R.GSE_REGION_PX, R.GSE_REGION_PX)
            assert x1 <= gt[0] and y1 <= gt[1] and x2 >= gt[2] and y2 >= gt[3]
            assert 0 <= x1 and 0 <= y1 and x2 <= 1919 and y2 <= 1079
        cx, cy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2  # the first is centred on it
        x1, y1, x2, y2 = regions[0]
        assert abs((x1 + x2) / 2 - cx) <= 1 and abs((y1 + y2) / 2 - cy) <= 1
