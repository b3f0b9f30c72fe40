"""Train/val splits by bag or episode: no recording or frame on both sides, stable as it grows."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from finers_ros.data.annotations import DatasetError, load_annotations
from finers_training.dataset_cli import main
from finers_training.split import shared_frames, split_records

SQUARE = [[1, 1], [5, 1], [5, 5]]


def recorded(bags=6, frames=4, questions=2):
    """Make records as an import writes them: several bags, frames, questions per frame."""
    return [{"image_path": f"images/b{b}_f{f}.png", "Q": f"find thing {q}", "A": "",
             "Q-type": "referring", "points": SQUARE, "area_percent": 0.1,
             "source": {"bag": f"/data/rec/bag{b}", "stamp_ns": 1000 * f, "frame_id": "cam"}}
            for b in range(bags) for f in range(frames) for q in range(questions)]


def test_a_split_by_bag_keeps_each_recording_on_one_side():
    records = recorded()
    train, val, groups = split_records(records, 0.3, "bag", Path("/x"))
    assert len(train) + len(val) == len(records) and groups["train"] + groups["val"] == 6
    assert train and val
    bags = [{r["source"]["bag"] for r in side} for side in (train, val)]
    assert not bags[0] & bags[1]
    assert shared_frames(train, Path("/x"), val, Path("/x")) == []


def test_a_split_by_episode_keeps_the_questions_of_a_frame_together():
    records = recorded(bags=2)
    train, val, groups = split_records(records, 0.5, "episode", Path("/x"))
    frames = [{(r["source"]["bag"], r["source"]["stamp_ns"]) for r in side}
              for side in (train, val)]
    assert not frames[0] & frames[1] and groups["train"] + groups["val"] == 8
    assert all(sum(r["image_path"] == image for r in val) == 2
               for image in {r["image_path"] for r in val})


def test_a_split_is_the_same_on_rerun_and_adding_bags_moves_no_old_one():
    first_train, first_val, _ = split_records(recorded(bags=6), 0.3, "bag", Path("/x"), seed=3)
    again = split_records(recorded(bags=6), 0.3, "bag", Path("/x"), seed=3)
    assert (again[0], again[1]) == (first_train, first_val)
    grown_train, grown_val, _ = split_records(recorded(bags=12), 0.3, "bag", Path("/x"), seed=3)
    assert all(r in grown_val for r in first_val) and all(r in grown_train for r in first_train)


def test_each_side_gets_a_group_and_one_group_cannot_be_split():
    train, val, groups = split_records(recorded(bags=2), 0.01, "bag", Path("/x"))
    assert groups == {"train": 1, "val": 1}
    train, val, groups = split_records(recorded(bags=2), 0.99, "bag", Path("/x"))
    assert groups == {"train": 1, "val": 1}
    with pytest.raises(DatasetError, match="1 bag group"):
        split_records(recorded(bags=1), 0.2, "bag", Path("/x"))
    with pytest.raises(DatasetError, match="between 0 and 1"):
        split_records(recorded(), 1.0, "bag", Path("/x"))


def test_records_without_a_source_are_split_by_their_image():
    records = [{"image_path": f"scene_{i // 2}.png", "Q": f"q{i}"} for i in range(8)]
    train, val, groups = split_records(records, 0.5, "bag", Path("/data"))
    assert groups["train"] + groups["val"] == 4
    assert not {r["image_path"] for r in train} & {r["image_path"] for r in val}
    # the same image named from two folders is one frame
    assert shared_frames([{"image_path": "/data/a.png"}], Path("/"),
                         [{"image_path": "a.png"}], Path("/data")) == ["image:/data/a.png"]


def test_the_split_command_writes_train_and_val_that_load(tmp_path, capsys):
    (tmp_path / "export" / "images").mkdir(parents=True)
    records = recorded(bags=4, frames=2, questions=1)
    for record in records:
        cv2.imwrite(str(tmp_path / "export" / record["image_path"]), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "export" / "labelled.json").write_text(json.dumps({"annotations": records}))
    assert main(["split", str(tmp_path / "export" / "labelled.json"), "--by", "bag",
                 "--val-fraction", "0.25", "--out", str(tmp_path / "split")]) == 0
    train = load_annotations(tmp_path / "split" / "train.json")
    val = load_annotations(tmp_path / "split" / "val.json")
    assert len(train) + len(val) == 8 and all(r.image_path.is_file() for r in train + val)
    assert capsys.readouterr().out.startswith("split 8 record(s) by bag: ")
    assert main(["split", str(tmp_path / "missing.json"), "--out", str(tmp_path / "s")]) == 2
