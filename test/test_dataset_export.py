"""
Every episode of a bag reaches the person who labels it, and their labels come back whole.

Bags are written with rosbags as ``ros2 bag record`` lays them out (test_bags): a recording
of the camera and command topics only, and one where the node answered some instructions,
found nothing for one and was never asked to answer another.
"""
from __future__ import annotations

import json

import numpy as np

from finers_ros.data.annotations import gt_mask, load_annotations, read_rgb
from finers_training.dataset_cli import main
from test_bags import H, SEC, T0, W, BagMaker, frame_value, message, shaped_detection

SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]


def camera_and_commands_only(path):
    """Record the camera and command topics as `ros2 bag record` does: no Detection at all."""
    bag = BagMaker(path)
    for index in range(6):
        bag.frame(T0 + index * SEC, T0 + index * SEC, 10 * index)
    bag.command(T0 + SEC + 1, "find the red screw")
    bag.command(T0 + 3 * SEC, json.dumps({"instruction": "what colour is the disc",
                                          "question_type": "option",
                                          "options": ["A. red", "B. blue"], "id": "q2"}))
    bag.close()


def not_found(bag, log_ns, stamp_ns, instruction, request_id):
    """Write the Detection of an instruction the node answered with "not found"."""
    msg = message(bag.store, "finers_ros/msg/Detection", header=bag._header(stamp_ns),
                  request_id=request_id, instruction=instruction, found=False,
                  answer="no object found", score=float("nan"), image_width=W,
                  image_height=H, backend="bringup")
    bag.write("/finers/detections", "finers_ros/msg/Detection", log_ns, msg)


def mixed_session(path):
    """Frames 0-3: a found target (pre-annotated), a not-found answer, an unanswered command."""
    disc = np.zeros((H, W), bool)
    disc[20:30, 15:25] = True
    bag = BagMaker(path)
    for index in range(4):
        bag.frame(T0 + index * SEC, T0 + index * SEC, 10 * index)
    bag.command(T0 + 1, "find the disc")
    shaped_detection(bag, T0 + 2, T0, "find the disc", "cmd-1", disc)
    bag.command(T0 + SEC + 1, "find the unicorn")
    not_found(bag, T0 + SEC + 2, T0 + SEC, "find the unicorn", "cmd-2")
    bag.command(T0 + 2 * SEC + 1, "find the tiny bolt")  # never answered
    bag.close()
    return disc


def test_a_bag_without_detections_exports_every_instruction_with_its_frame(tmp_path, capsys):
    camera_and_commands_only(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    episodes = json.loads((out / "episodes.json").read_text())["episodes"]
    assert [(e["Q"], e["status"]) for e in episodes] == [
        ("find the red screw", "to label"), ("what colour is the disc", "to label")]
    # each instruction with the first frame at or after it: 1 s + 1 ns -> frame 2, 3 s -> 3
    assert [frame_value(read_rgb(out / e["image_path"])) for e in episodes] == [20, 30]
    assert episodes[1]["Q-type"] == "option" and episodes[1]["options"] == ["A. red", "B. blue"]
    assert episodes[0]["reason"] == "no Detection" and episodes[1]["source"]["bag"].endswith("bag")

    coco = json.loads((out / "coco.json").read_text())
    assert coco["annotations"] == [] and len(coco["images"]) == 2
    assert [[q["question"] for q in i["finers_episodes"]] for i in coco["images"]] == [
        ["find the red screw"], ["what colour is the disc"]]
    assert json.loads((out / "annotations.json").read_text()) == {"annotations": []}
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary == (f"exported 2 episode(s) on 2 frame(s) to {out}: 0 pre-annotated, "
                       "2 to label (2 no Detection)")


def test_not_found_and_unanswered_episodes_are_exported_for_labelling(tmp_path, capsys):
    disc = mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    (record,) = load_annotations(out / "annotations.json")
    assert record.question == "find the disc" and np.array_equal(
        gt_mask(record.polygon, (W, H)), disc)
    episodes = json.loads((out / "episodes.json").read_text())["episodes"]
    assert [(e["Q"], e["status"], e.get("reason")) for e in episodes] == [
        ("find the disc", "pre-annotated", None),
        ("find the unicorn", "to label", "the node found nothing"),
        ("find the tiny bolt", "to label", "no Detection")]
    assert episodes[1]["A"] == "no object found" and episodes[1]["node_found"] is False
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"exported 3 episode(s) on 3 frame(s) to {out}: 1 pre-annotated, 2 to label "
        "(1 the node found nothing, 1 no Detection)")


def labelled(out, drop_attributes=False, keep=lambda annotation: True):
    """Return the export's COCO after a person drew SQUARE on every frame left to label."""
    coco = json.loads((out / "coco.json").read_text())
    coco["annotations"] = [a for a in coco["annotations"] if keep(a)]
    for image in coco["images"]:
        for episode in image["finers_episodes"]:
            if episode["status"] == "to label":
                coco["annotations"].append({
                    "id": 100 + image["id"], "image_id": image["id"], "category_id": 1,
                    "segmentation": [SQUARE], "attributes": {"question": episode["question"]}})
        del image["finers_episodes"]  # annotation tools drop what they do not know
    if drop_attributes:
        for annotation in coco["annotations"]:
            annotation.pop("attributes", None)
    path = out / "labelled_coco.json"
    path.write_text(json.dumps(coco))
    return path


def test_import_takes_each_frames_question_when_a_tool_dropped_attributes(tmp_path, capsys):
    mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    coco = labelled(out, drop_attributes=True)
    assert main(["import", str(coco), "--out", str(out / "labelled.json")]) == 0
    records = load_annotations(out / "labelled.json")
    assert [r.question for r in records] == [
        "find the disc", "find the unicorn", "find the tiny bolt"]
    # SQUARE's edges 10..30 hold pixel centres 10..29 (test_coco_pixels)
    assert records[2].polygon == [[10, 10], [29, 10], [29, 29], [10, 29]]
    # the episode's origin travels with the label: a split by bag needs it
    assert all(r.extra["source"]["bag"].endswith("bag") for r in records)
    assert "3 (question taken from the exported episode)" in capsys.readouterr().out


def test_a_frame_left_out_of_the_corrected_file_keeps_its_pre_annotation(tmp_path, capsys):
    disc = mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    coco = labelled(out)
    document = json.loads(coco.read_text())  # the person skipped the pre-annotated frame
    document["images"] = [i for i in document["images"] if i["id"] != 1]
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] != 1]
    coco.write_text(json.dumps(document))
    assert main(["import", str(coco), "--out", str(out / "labelled.json")]) == 0
    records = load_annotations(out / "labelled.json")
    assert [r.question for r in records] == [
        "find the unicorn", "find the tiny bolt", "find the disc"]
    assert np.array_equal(gt_mask(records[2].polygon, (W, H)), disc)
    said = capsys.readouterr().out
    assert "1 (pre-annotation kept: its frame is not in the corrected file)" in said
    assert main(["import", str(coco), "--out", str(out / "dropped.json"),
                 "--drop-missing"]) == 0
    assert len(load_annotations(out / "dropped.json")) == 2
    assert "1 (pre-annotation left out: its frame is not in the corrected file)" in (
        capsys.readouterr().out)


def test_a_pre_annotation_deleted_in_the_tool_stays_deleted(tmp_path, capsys):
    mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    coco = labelled(out, keep=lambda annotation: False)  # the node's answer was wrong
    assert main(["import", str(coco), "--out", str(out / "labelled.json")]) == 0
    assert [r.question for r in load_annotations(out / "labelled.json")] == [
        "find the unicorn", "find the tiny bolt"]
    said = capsys.readouterr().out
    assert "1 (pre-annotation deleted: its frame has no annotation for it)" in said


def test_an_import_without_episodes_json_says_it_was_not_found(tmp_path, capsys):
    mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    coco = labelled(out, drop_attributes=True)
    (out / "episodes.json").rename(tmp_path / "episodes.json")
    assert main(["import", str(coco), "--out", str(out / "labelled.json")]) == 1
    said = capsys.readouterr().out.splitlines()
    assert sum("no question attribute" in line and "skipped annotation" in line
               for line in said) == 3
    assert any("episodes.json not found" in line for line in said)


def test_an_import_of_nothing_leaves_the_existing_file_as_it_was(tmp_path, capsys):
    mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    before = (out / "annotations.json").read_text()
    coco = json.loads((out / "coco.json").read_text())
    coco["annotations"] = [{"image_id": 1, "segmentation": {"counts": [0, 5], "size": [H, W]},
                            "attributes": {"question": "find the disc"}}]  # RLE: unusable
    (out / "rle.json").write_text(json.dumps(coco))
    assert main(["import", str(out / "rle.json"), "--out", str(out / "annotations.json"),
                 "--drop-missing"]) == 1
    assert (out / "annotations.json").read_text() == before
    assert "nothing imported" in capsys.readouterr().out


def test_a_second_export_into_a_folder_being_labelled_is_refused_without_force(tmp_path,
                                                                               capsys):
    mixed_session(tmp_path / "bag")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    coco = labelled(out)  # a person's labels, saved next to the export
    (out / "coco.json").write_text(coco.read_text())  # ... and corrected in place
    stale = out / "images" / "frame_of_an_older_export.png"
    stale.write_bytes(b"png")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 2
    said = capsys.readouterr().err.strip()
    assert len(said.splitlines()) == 1
    assert "coco.json" in said and "episodes.json" in said and "4 frame(s)" in said
    assert "--force" in said
    assert (out / "coco.json").read_text() == coco.read_text() and stale.exists()
    assert main(["export", str(tmp_path / "bag"), "--out", str(out), "--force"]) == 0
    assert not stale.exists() and len(list((out / "images").iterdir())) == 3
    assert len(json.loads((out / "coco.json").read_text())["annotations"]) == 1


def test_a_frame_keeps_its_name_whatever_else_is_exported_with_it(tmp_path, capsys):
    mixed_session(tmp_path / "bag")
    camera_and_commands_only(tmp_path / "other")
    alone, together = tmp_path / "alone", tmp_path / "together"
    assert main(["export", str(tmp_path / "bag"), "--out", str(alone)]) == 0
    assert main(["export", str(tmp_path / "other"), str(tmp_path / "bag"),
                 "--out", str(together)]) == 0
    names = {e["image_path"] for e in json.loads((alone / "episodes.json").read_text())[
        "episodes"]}
    assert names <= {e["image_path"] for e in json.loads(
        (together / "episodes.json").read_text())["episodes"]}
    # the labels made on the first export import against the second
    coco = labelled(alone)
    assert main(["import", str(coco), "--images", str(together),
                 "--out", str(together / "labelled.json")]) == 0
    assert len(load_annotations(together / "labelled.json")) == 3


def test_an_export_that_finds_nothing_says_why(tmp_path, capsys):
    bag = BagMaker(tmp_path / "quiet")  # the camera recorded, nobody asked anything
    bag.frame(T0, T0, 0)
    bag.command(T0 + 1, json.dumps({"stop_track": "all"}))
    bag.close()
    assert main(["export", str(tmp_path / "quiet"), "--out", str(tmp_path / "a")]) == 1
    said = capsys.readouterr().out
    assert "quiet: no episode: 1 frame(s) on /camera/image_raw, 0 instruction(s) on " \
           "/finers/command, 0 Detection(s)" in said

    nested = tmp_path / "robot" / "day1"  # bags two folders down
    nested.mkdir(parents=True)
    camera_and_commands_only(nested / "bag")
    assert main(["export", str(tmp_path / "robot"), "--out", str(tmp_path / "b")]) == 2
    said = capsys.readouterr().err
    assert "no rosbag2 bag" in said and "robot/day1" in said
