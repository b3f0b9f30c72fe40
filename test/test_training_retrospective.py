"""
The retrospective target: what the best-region search writes, and the online reward's counts.

The search runs the real tiny random LPR (its answers never parse, so every window scores 0
and the centred one is kept) on records with a missing image, one sample per batch, into a
new folder; the online reward pins the frozen LPR's answers to check each rollout's crop,
prompt and count on a frame that is not the GSE frame's size.
"""
import json
import os

import cv2
import numpy as np
import pytest

from finers_ros import geometry as geo
from finers_ros.data.synthetic import SceneConfig, write_dataset
from finers_ros.prompts import lpr_prompt
from finers_training.config import TrainConfig
from finers_training.retrospective import (
    OnlineRetrospectiveReward,
    lpr_native_box,
    read_partial,
    search,
)


def test_a_partial_file_keeps_every_whole_entry_around_a_cut_one(tmp_path):
    partial = tmp_path / "out.json.partial.jsonl"
    partial.write_text('{"index": 0, "best_region": [1, 2, 3, 4]}\n'
                       '{"index": 1, "best_reg\n'
                       '{"index": 2, "best_region": null, "error": "gone"}\n'
                       'not json\n'
                       '{"no_index": 3}\n')
    assert sorted(read_partial(partial)) == [0, 2]
    assert read_partial(tmp_path / "missing.jsonl") == {}


WINDOW = geo.CropWindow(300, 120, 256, 128)


@pytest.mark.parametrize(
    "text, box, status",
    [
        ("<answer>{'bbox': [30, 10, 150, 60], 'points_1': [40, 20], 'points_2': [50, 30]}"
         "</answer>", (310.0, 130.0, 350.0, 180.0), "ok"),
        ("<answer>{'bbox': [0, 0, 0, 0], 'points_1': [0, 0], 'points_2': [0, 0]}</answer>",
         None, "not_found"),
        ("<answer>no json</answer>", None, "unparsable"),
        ("<answer>{'bbox': [690, 300, 900, 500], 'points_1': [1, 1], 'points_2': [1, 1]}"
         "</answer>", (530.0, 247.0, 555.0, 247.0), "ok"),  # clipped to the window
    ],
)
def test_an_lpr_answer_maps_back_to_native_pixels_with_its_status(text, box, status):
    # LPR frame 768x128 for a 256x128 window: x / 3, y as is
    assert lpr_native_box(text, WINDOW, (768, 128)) == (box, status)


def test_search_needs_the_lpr_checkpoint(tmp_path):
    with pytest.raises(ValueError) as caught:
        search(TrainConfig(stage="gse"), tmp_path / "out.json", progress=False)
    assert str(caught.value) == "search needs search_checkpoint (the trained LPR directory)"


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory):
    """Two synthetic 1280x720 scenes whose images live apart from their annotations."""
    folder = tmp_path_factory.mktemp("retro")
    scenes = SceneConfig(width=1280, height=720)
    annotations = write_dataset(folder / "set", 2, seed=4, config=scenes)
    data = json.loads(annotations.read_text())
    for item in data["annotations"]:
        item["image_path"] = os.path.basename(item["image_path"])
    data["annotations"].append(dict(data["annotations"][0], image_path="missing.png"))
    moved = folder / "labels" / "annotations.json"
    moved.parent.mkdir()
    moved.write_text(json.dumps(data))
    return moved, annotations.parent / "images"


def test_search_writes_every_sample_one_per_batch_and_skips_what_it_cannot_read(
        two_scenes, tiny_qwen_dir, tmp_path):
    annotations, images = two_scenes
    config = TrainConfig(stage="gse", annotations=str(annotations), images_dir=str(images),
                         search_checkpoint=str(tiny_qwen_dir), search_max_new_tokens=2,
                         search_batch_size=1, device="cpu")
    out = tmp_path / "new" / "folder" / "annotations.json"
    counts = search(config, out, progress=False)
    assert counts["samples"] == 3 and counts["windows"] == 10 and counts["skipped"] == 1
    assert counts["resumed"] == 0
    assert counts["unparsable"] + counts["not_found"] == 10
    partial = out.with_name(out.name + ".partial.jsonl")
    entries = {e["index"]: e for e in map(json.loads, partial.read_text().splitlines())}
    assert set(entries) == {0, 1, 2}
    assert entries[2]["best_region"] is None and entries[2]["error"].startswith("cannot read")
    for index in (0, 1):
        assert entries[index]["ious"] == [0.0] * 5 and len(entries[index]["statuses"]) == 5
        assert set(entries[index]["statuses"]) <= {"unparsable", "not_found"}
    written = json.loads(out.read_text())["annotations"]
    assert [("best_region" in item) for item in written] == [True, True, False]
    assert written[0]["best_region"] == entries[0]["best_region"]
    folders = (images.resolve(), annotations.parent)
    for item in written:  # image paths resolve next to the new JSON
        assert (out.parent / item["image_path"]).resolve().parent in folders


def frame_file(tmp_path, width=1280, height=720):
    image = np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), image)
    return str(path)


GSE = "<answer>{'bbox': [960, 540, 1216, 796], 'response': 'The object is found.'}</answer>"
LPR = ("<answer>{'bbox': [100, 100, 149, 139], 'points_1': [120, 120], 'points_2': [121, 121],"
       " 'response': 'The object is found.'}</answer>")


class PinnedLPR:
    """The frozen LPR's answers pinned (first found, then not found); it keeps its inputs."""

    def __init__(self, answers):
        self.answers, self.images, self.prompts = list(answers), [], []

    def answer(self, images, prompts):
        self.images += images
        self.prompts += prompts
        return self.answers[: len(images)]


# a 1280x720 frame: the GSE region [960, 540, 1216, 796] is [640, 360, 810.7, 530.7] native
WINDOW_1280 = geo.crop_for_region(
    geo.gse_to_native_box((960, 540, 1216, 796), (1280, 720), (1920, 1080)), (1280, 720), 512)
LPR_NATIVE = (WINDOW_1280.x0 + 100, WINDOW_1280.y0 + 100, WINDOW_1280.x0 + 149,
              WINDOW_1280.y0 + 139)
GT_NATIVE = [v + 10.0 for v in LPR_NATIVE]


def test_the_online_reward_crops_each_usable_rollout_and_counts_the_rest(tmp_path):
    reward = OnlineRetrospectiveReward(TrainConfig(stage="gse"))
    reward._model = PinnedLPR([LPR, "<answer>nothing</answer>"])
    metrics = {}
    columns = {
        "source_image": [frame_file(tmp_path)] * 4,
        "gt_box_native": [GT_NATIVE] * 4,
        "q_type": ["option"] * 4,
        "question": ["which colour is it"] * 4,
        "options_json": [json.dumps(["A. red", "B. blue"])] * 4,
    }
    scores = reward(prompts=None, completions=["garbage", GSE, "<answer>{}</answer>", GSE],
                    log_metric=metrics.__setitem__, **columns)
    assert scores == [0.0, pytest.approx(geo.box_iou(LPR_NATIVE, GT_NATIVE)), 0.0, 0.0]
    assert scores[1] > 0.4
    assert reward.counts == {"rollouts": 4, "gse_unusable": 2, "lpr_unusable": 1}
    assert metrics == {"online_retro/gse_region_usable": 0.5,
                       "online_retro/lpr_box_usable": 0.25}
    assert reward._model.prompts == [lpr_prompt("which colour is it", "option",
                                                ["A. red", "B. blue"])] * 2
    assert all(image.shape == (512, 512, 3) for image in reward._model.images)


def test_the_online_reward_reads_a_missing_options_column_as_none(tmp_path):
    reward = OnlineRetrospectiveReward(TrainConfig(stage="gse"))
    reward._model = PinnedLPR([LPR, LPR])
    columns = {"source_image": [frame_file(tmp_path)] * 2,
               "gt_box_native": [GT_NATIVE] * 2,
               "q_type": ["referring"] * 2, "question": ["find the screw"] * 2,
               "options_json": [None, ""]}
    scores = reward(prompts=None, completions=[GSE, GSE], **columns)
    assert scores[0] == scores[1] > 0
    assert reward._model.prompts == [lpr_prompt("find the screw")] * 2


class BringupLPR:
    """
    The weight-free bring-up backend as the search's trained LPR.

    It finds the scenes' coloured targets in each crop, so the search has real boxes to score
    (no trained checkpoint here).
    """

    def __init__(self):
        from finers_ros.stages.bringup import BringupModel

        self.model, self.batches, self.prompts, self.shapes = BringupModel(), [], [], set()

    def answer(self, images, prompts):
        self.batches.append(len(images))
        self.prompts += prompts
        self.shapes |= {image.shape for image in images}
        return [self.model.generate(image, prompt).text for image, prompt in zip(images, prompts)]


@pytest.fixture(scope="module")
def referring_scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("referring")
    return write_dataset(folder, 3, seed=5, config=SceneConfig(width=1600, height=900))


def test_search_keeps_the_region_whose_crop_the_lpr_localises_best(referring_scenes, tmp_path,
                                                                   monkeypatch, capsys):
    from finers_training import retrospective
    from finers_training.data import gse_gt_box, gt_box

    lpr = BringupLPR()
    monkeypatch.setattr(retrospective, "search_model", lambda config: lpr)
    config = TrainConfig(stage="gse", annotations=str(referring_scenes), search_checkpoint="lpr",
                         search_batch_size=2, data_seed=2, crop_size=720, device="cpu")
    out = tmp_path / "out" / "annotations.json"
    counts = search(config, out, progress=False)
    assert counts == {"samples": 3, "windows": 15, "unparsable": 0, "not_found": 0,
                      "skipped": 0, "resumed": 0}
    assert lpr.batches == [10, 5] and lpr.shapes == {(512, 512, 3)}
    entries = read_partial(out.with_name(out.name + ".partial.jsonl"))
    written = json.loads(out.read_text())["annotations"]
    source = json.loads(referring_scenes.read_text())["annotations"]
    records = retrospective.load_annotations(out)
    chosen = []
    for index, (record, item) in enumerate(zip(records, written)):
        entry = entries[index]
        assert entry["statuses"] == ["ok"] * 5
        # the target found (IoU over 0.5), or another object of its colour in that crop (0)
        assert all(iou == round(iou, 4) and (iou > 0.5 or iou == 0.0) for iou in entry["ious"])
        native = (1600, 900)
        target = gt_box(record, native)
        regions = retrospective.candidate_regions(
            target, native, (1920, 1080), np.random.default_rng([2, index]))
        best = int(np.argmax(entry["ious"]))  # the first of equal ones: the centred region
        chosen.append(best)
        assert entry["best_region"] == [round(v, 2) for v in regions[best]]
        assert item["best_region"] == entry["best_region"]
        x0, y0, x1, y1 = gse_gt_box(target, native, (1920, 1080))
        bx0, by0, bx1, by1 = item["best_region"]
        assert bx0 <= x0 and by0 <= y0 and x1 <= bx1 and y1 <= by1  # the target is in it
        assert lpr.prompts[5 * index] == lpr_prompt(record.question, record.q_type,
                                                    record.options)
        assert {k: v for k, v in item.items() if k not in ("best_region", "image_path")} == {
            k: v for k, v in source[index].items() if k != "image_path"}
    assert any(chosen) and not all(chosen)  # a random placement won, and the centred one did
    assert capsys.readouterr().err == ""  # progress=False: no bar

    # killed while writing the last entry: that sample is searched again, the rest resumed
    partial = out.with_name(out.name + ".partial.jsonl")
    whole = partial.read_text()
    partial.write_text(whole[:whole.rindex('{"index"') + 30])
    out.unlink()
    again = search(config, out, progress=True)
    assert again["resumed"] == 2 and again["windows"] == 5
    assert json.loads(out.read_text())["annotations"] == written
    assert read_partial(partial) == entries  # the cut line ended, the redone entry whole
    bar = capsys.readouterr().err
    assert "best-region search" in bar and "3/3" in bar and "sample" in bar
