"""Reading episodes from bags laid out as `ros2 bag record` writes them (MCAP and sqlite3)."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from finers_ros.data.annotations import DatasetError
from finers_training.bags import BagError, bag_paths, default_typestore, read_episodes

SEC = 1_000_000_000
T0 = 1_750_000_000 * SEC
W, H = 64, 48


def message(store, typename, **given):
    """Build a rosbags message of ``typename``: ``given`` fields, zeros/empties for the rest."""
    from rosbags.typesys.base import Nodetype

    values = dict(given)
    for name, (kind, spec) in store.fielddefs[typename][1]:
        if name in values:
            continue
        if kind == Nodetype.NAME:
            values[name] = message(store, spec)
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (inner_kind, inner), count = spec
            base = inner[0] if inner_kind == Nodetype.BASE else None
            values[name] = ([""] * count if base == "string" else
                            np.zeros(count, base) if base else [])
        else:
            values[name] = {"string": "", "bool": False}.get(spec[0], 0)
    return store.types[typename](**values)


class BagMaker:
    """A bag of camera frames, commands and Detections with rosbags' typestore (no ROS)."""

    def __init__(self, path, storage=StoragePlugin.MCAP, zstd=False):
        self.store = default_typestore()
        self.types = self.store.types
        self.writer = Writer(path, version=9, storage_plugin=storage)
        if zstd:  # compressed chunks, as rosbag2's MCAP plugin writes by default
            self.writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self.writer.open()
        self.conns = {}

    def _conn(self, topic, msgtype):
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store)
        return self.conns[topic]

    def _header(self, stamp_ns, frame_id="cam"):
        time = self.types["builtin_interfaces/msg/Time"](sec=stamp_ns // SEC,
                                                         nanosec=stamp_ns % SEC)
        return self.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)

    def write(self, topic, msgtype, log_ns, msg):
        data = self.store.serialize_cdr(msg, msgtype)
        self.writer.write(self._conn(topic, msgtype), log_ns, data)

    def frame(self, log_ns, stamp_ns, value, topic="/camera/image_raw"):
        """Write a bgr8 frame whose pixels are all ``value`` (blue channel ``value + 1``)."""
        pixels = np.full((H, W, 3), value, np.uint8)
        pixels[..., 0] = value + 1
        msg = self.types["sensor_msgs/msg/Image"](
            header=self._header(stamp_ns), height=H, width=W, encoding="bgr8", is_bigendian=0,
            step=W * 3, data=pixels.reshape(-1))
        self.write(topic, "sensor_msgs/msg/Image", log_ns, msg)

    def command(self, log_ns, text):
        self.write("/finers/command", "std_msgs/msg/String", log_ns,
                   self.types["std_msgs/msg/String"](data=text))

    def detection(self, log_ns, stamp_ns, instruction, request_id, error="", mask_bytes=24):
        """Write a Detection whose mask is 4 x 6 at (10, 20) (``mask_bytes`` of it are sent)."""
        types = self.types
        msg = message(
            self.store, "finers_ros/msg/Detection", header=self._header(stamp_ns),
            request_id=request_id, instruction=instruction,
            found=not error, answer="The object is found.", error=error,
            error_stage="gse" if error else "",
            box=np.array([10, 20, 15, 23], np.float32),
            points=[types["geometry_msgs/msg/Point32"](x=12.0, y=21.0, z=0.0)] * 2,
            region=np.zeros(4, np.float32), crop=np.zeros(4, np.int32), score=float("nan"),
            image_width=W, image_height=H,
            mask_roi=types["sensor_msgs/msg/RegionOfInterest"](
                x_offset=10, y_offset=20, height=4, width=6 if mask_bytes else 0,
                do_rectify=False),
            mask=np.ones(mask_bytes, np.uint8),
            timing_names=[], timings_ms=np.zeros(0, np.float32), backend="bringup")
        self.write("/finers/detections", "finers_ros/msg/Detection", log_ns, msg)

    def close(self):
        self.writer.close()


def frame_value(image):
    """Return the ``value`` a BagMaker frame was painted with (the decoded image is RGB)."""
    assert np.all(image[..., 2] == image[0, 0, 2]) and np.all(image[..., 0] == image[0, 0, 0])
    assert image[0, 0, 2] == image[0, 0, 0] + 1  # bgr8 was converted to RGB
    return int(image[0, 0, 0])


def recorded_session(path, storage):
    """
    Record a session with frames, answers, an unanswered and a failed instruction.

    10 Hz frames (stamp = log time - 30 ms, pixels = index); instructions answered on
    frames that are not the newest at answer time, one unanswered, one error, one whose frame
    was not recorded.
    """
    bag = BagMaker(path, storage)
    for index in range(20):
        bag.frame(T0 + index * SEC // 10, T0 + index * SEC // 10 - 30_000_000, index)
    stamp = [T0 + index * SEC // 10 - 30_000_000 for index in range(20)]
    bag.command(T0 + 250_000_000, "find the red screw")
    bag.detection(T0 + 650_000_000, stamp[3], "find the red screw", "cmd-1")
    option = {"instruction": "what colour is the disc", "question_type": "option",
              "options": ["A. red", "B. blue"], "id": "job-7"}
    bag.command(T0 + 660_000_000, json.dumps(option))
    bag.detection(T0 + 1_200_000_000, stamp[7], "what colour is the disc", "job-7")
    bag.command(T0 + 1_310_000_000, "find the blue bolt")  # never answered
    bag.command(T0 + 1_400_000_000, "explode")
    bag.detection(T0 + 1_450_000_000, stamp[14], "explode", "cmd-3", error="model crashed",
                  mask_bytes=0)
    bag.command(T0 + 1_460_000_000, "find the torn mask")
    bag.detection(T0 + 1_470_000_000, stamp[14], "find the torn mask", "cmd-5", mask_bytes=7)
    bag.detection(T0 + 1_500_000_000, T0 + 5, "find the green nut", "cmd-4")  # frame not in bag
    bag.close()


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_instructions_pair_with_the_frames_their_detections_echo(tmp_path, storage):
    recorded_session(tmp_path / "session", storage)
    episodes = list(read_episodes([tmp_path / "session"]))
    assert len(episodes) == 6  # every instruction, usable or not
    usable = {e.instruction: e for e in episodes if not e.problem}
    problems = {e.instruction: e.problem for e in episodes if e.problem}
    assert set(usable) == {"find the red screw", "what colour is the disc", "find the blue bolt"}
    assert problems["explode"] == "the node answered with an error: [gse] model crashed"
    assert problems["find the green nut"].startswith("its frame is not in the bag: none ")
    assert "malformed Detection: mask of 7 bytes" in problems["find the torn mask"]

    red = usable["find the red screw"]
    assert frame_value(red.image) == 3 and red.request_id == "cmd-1"
    assert red.question_type == "referring" and red.detection.found
    expected = np.zeros((H, W), bool)
    expected[20:24, 10:16] = True
    assert np.array_equal(red.detection.mask, expected)
    assert red.detection.box == (10.0, 20.0, 15.0, 23.0) and red.frame_id == "cam"

    disc = usable["what colour is the disc"]
    assert frame_value(disc.image) == 7 and disc.request_id == "job-7"
    assert disc.question_type == "option" and disc.options == ["A. red", "B. blue"]

    # without a Detection: the first frame logged at or after the instruction (1.31 s -> 14)
    bolt = usable["find the blue bolt"]
    assert frame_value(bolt.image) == 14 and bolt.detection is None


def test_a_frame_logged_after_its_detection_still_pairs(tmp_path):
    """
    Pair a frame logged after its detection by stamp.

    `ros2 bag record` may log a 25 MB 4K frame later than the small Detection answered on
    it (the node got the frame first): the stamp decides, not the log order.
    """
    bag = BagMaker(tmp_path / "late")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find the red screw")
    bag.detection(T0 + 60_000_000, T0 + 50_000_000, "find the red screw", "cmd-1")
    bag.frame(T0 + 90_000_000, T0 + 50_000_000, 2)  # its frame, logged 30 ms after it
    bag.close()
    (episode,) = read_episodes([tmp_path / "late"])
    assert episode.problem == "" and frame_value(episode.image) == 2


def test_commands_without_any_detection_topic(tmp_path):
    bag = BagMaker(tmp_path / "plain")
    for index in range(5):
        bag.frame(T0 + index * SEC, T0 + index * SEC, index)
    bag.command(T0 + SEC + 1, "find the red screw")
    bag.command(T0 + 10 * SEC, "too late")
    bag.close()
    episodes = list(read_episodes([tmp_path / "plain"]))
    assert [(e.instruction, e.problem) for e in episodes] == [
        ("too late", "no camera frame after the instruction"), ("find the red screw", "")]
    assert frame_value(episodes[1].image) == 2


def test_several_camera_topics_need_a_name(tmp_path):
    bag = BagMaker(tmp_path / "two")
    bag.frame(T0, T0, 1, topic="/left/image_raw")
    bag.frame(T0 + 1, T0 + 1, 2, topic="/right/image_raw")
    bag.frame(T0 + 2, T0 + 2, 3, topic="/finers/overlay")  # the node's own output: ignored
    bag.command(T0 + 3, "find it")
    bag.frame(T0 + 4, T0 + 4, 4, topic="/right/image_raw")
    bag.close()
    with pytest.raises(BagError, match="/left/image_raw, /right/image_raw"):
        list(read_episodes([tmp_path / "two"]))
    (episode,) = read_episodes([tmp_path / "two"], camera_topic="/right/image_raw")
    assert frame_value(episode.image) == 4


@pytest.mark.parametrize("option", ["camera_topic", "command_topic", "detections_topic"])
def test_a_named_topic_the_bag_lacks_is_one_clear_error(tmp_path, option):
    """A mistyped topic name is not read as 'no detections' or 'no camera'."""
    recorded_session(tmp_path / "session", StoragePlugin.MCAP)
    with pytest.raises(BagError, match=f"no topic '/typo' .*{option}.*has: .*/finers/"):
        list(read_episodes([tmp_path / "session"], **{option: "/typo"}))


def test_bag_paths_expand_folders_of_bags_and_refuse_others(tmp_path):
    for name in ("b", "a"):
        bag = BagMaker(tmp_path / "rec" / name)
        bag.frame(T0, T0, 1)
        bag.close()
    assert [p.name for p in bag_paths([tmp_path / "rec"])] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="neither a rosbag2 bag"):
        bag_paths([tmp_path / "empty"])
    with pytest.raises(BagError, match="no such bag"):
        bag_paths([tmp_path / "missing"])


def test_a_folder_of_sessions_includes_a_sqlite3_bag_without_metadata(tmp_path):
    """`ros2 bag record -s sqlite3` killed before writing metadata.yaml: its .db3 is read."""
    recorded_session(tmp_path / "sessions" / "killed", StoragePlugin.SQLITE3)
    (tmp_path / "sessions" / "killed" / "metadata.yaml").unlink()
    (db3,) = (tmp_path / "sessions" / "killed").glob("*.db3")
    assert bag_paths([tmp_path / "sessions"]) == [db3]
    assert sum(not e.problem for e in read_episodes([tmp_path / "sessions"])) == 3


def test_reading_bags_needs_no_ros():
    code = ("import sys, finers_training.bags\n"
            "assert not any(m.startswith(('rclpy', 'rosidl')) for m in sys.modules), 'ROS loaded'")
    subprocess.run([sys.executable, "-c", code], check=True)


def shaped_detection(bag, log_ns, stamp_ns, instruction, request_id, mask):
    """Build a found Detection carrying ``mask`` (H x W bool) as the node sends it."""
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
    types = bag.types
    msg = message(
        bag.store, "finers_ros/msg/Detection", header=bag._header(stamp_ns),
        request_id=request_id, instruction=instruction, found=True, answer="A",
        box=np.array([x1, y1, x2, y2], np.float32), score=0.8, image_width=W, image_height=H,
        mask_roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=int(x1), y_offset=int(y1), height=int(y2 - y1 + 1), width=int(x2 - x1 + 1),
            do_rectify=False),
        mask=mask[y1:y2 + 1, x1:x2 + 1].astype(np.uint8).reshape(-1), backend="bringup")
    bag.write("/finers/detections", "finers_ros/msg/Detection", log_ns, msg)


def test_export_then_import_corrected_coco(tmp_path):
    from finers_ros.data.annotations import gt_mask, load_annotations, read_rgb
    from finers_training.dataset_cli import main

    disc = np.zeros((H, W), np.uint8)
    cv2.circle(disc, (20, 25), 9, 1, -1)
    two_parts = np.zeros((H, W), np.uint8)
    two_parts[5:15, 40:60] = 1
    two_parts[30:33, 5:8] = 1
    bag = BagMaker(tmp_path / "bag")
    for index in range(4):
        bag.frame(T0 + index * SEC, T0 + index * SEC, 10 * index)
    option = {"instruction": "what colour is the disc", "question_type": "option",
              "options": ["A. red", "B. blue"], "id": "q1"}
    bag.command(T0 + 1, json.dumps(option))
    shaped_detection(bag, T0 + 2, T0, "what colour is the disc", "q1", disc.astype(bool))
    bag.command(T0 + SEC + 1, "find the blue box")
    shaped_detection(bag, T0 + SEC + 2, T0 + SEC, "find the blue box", "cmd-2",
                     two_parts.astype(bool))
    bag.command(T0 + 2 * SEC + 1, "find the unicorn")
    bag.detection(T0 + 2 * SEC + 2, T0 + 2 * SEC, "find the unicorn", "cmd-3", mask_bytes=0)
    bag.close()

    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    records = load_annotations(out / "annotations.json")
    assert [r.question for r in records] == ["what colour is the disc", "find the blue box"]
    assert records[0].q_type == "option" and records[0].options == ["A. red", "B. blue"]
    assert records[0].answer == "A" and records[0].extra["source"]["request_id"] == "q1"
    assert frame_value(read_rgb(records[0].image_path)) == 0
    assert np.array_equal(gt_mask(records[0].polygon, (W, H)), disc.astype(bool))
    big_part = two_parts.copy()
    big_part[30:33, 5:8] = 0
    assert np.array_equal(gt_mask(records[1].polygon, (W, H)), big_part.astype(bool))
    assert records[0].area_percent == pytest.approx(100 * disc.sum() / (W * H))

    coco = json.loads((out / "coco.json").read_text())
    # the unicorn (found, no mask) is a frame to label: an image without annotation
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 2
    first = coco["annotations"][0]
    assert first["attributes"]["question"] == "what colour is the disc"
    # the disc's pixels 11..29 x 16..34 as COCO pixel edges (test_coco_pixels)
    assert first["bbox"] == [11, 16, 19, 19]

    # a person corrects the disc, deletes the box annotation and adds an RLE mask
    first["segmentation"] = [[30, 30, 40, 30, 40, 40, 30, 40], [0, 0, 1, 0, 1, 1]]
    del coco["annotations"][1]
    coco["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "iscrowd": 1,
                                "segmentation": {"counts": [0, 5], "size": [H, W]},
                                "attributes": {"question": "find the blue box"}})
    corrected = tmp_path / "corrected.json"
    corrected.write_text(json.dumps(coco))
    target = out / "fixed.json"
    assert main(["import", str(corrected), "--out", str(target),
                 "--images", str(out)]) == 0
    (fixed,) = load_annotations(target)
    assert fixed.polygon == [[30, 30], [39, 30], [39, 39], [30, 39]]  # 10 x 10 px
    assert (fixed.question, fixed.q_type, fixed.options) == (
        "what colour is the disc", "option", ["A. red", "B. blue"])
    assert fixed.image_path == records[0].image_path
    assert read_rgb(fixed.image_path).shape == (H, W, 3)
    assert fixed.area_percent == pytest.approx(100 * 100 / (W * H))


def test_import_finds_frames_an_annotation_tool_renamed_and_counts_missing_ones(tmp_path,
                                                                                capsys):
    """Annotation tools often write ``file_name`` without its folder (``images/``)."""
    from finers_ros.data.annotations import load_annotations, read_rgb
    from finers_training.dataset_cli import main

    disc = np.zeros((H, W), bool)
    disc[10:20, 10:20] = True
    bag = BagMaker(tmp_path / "bag")
    for index in range(2):
        bag.frame(T0 + index * SEC, T0 + index * SEC, 10 * index)
        bag.command(T0 + index * SEC + 1, f"find thing {index}")
        shaped_detection(bag, T0 + index * SEC + 2, T0 + index * SEC, f"find thing {index}",
                         f"cmd-{index}", disc)
    bag.close()
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "bag"), "--out", str(out)]) == 0
    coco = json.loads((out / "coco.json").read_text())
    first, second = coco["images"]
    first["file_name"] = first["file_name"].split("/")[-1]
    second["file_name"] = "gone.png"
    (out / "tool.json").write_text(json.dumps(coco))
    capsys.readouterr()
    assert main(["import", str(out / "tool.json"), "--out", str(out / "fixed.json")]) == 0
    # the second frame's annotation is lost with its file: the node's pre-annotation stays
    record, kept = load_annotations(out / "fixed.json")
    assert frame_value(read_rgb(record.image_path)) == 0
    assert frame_value(read_rgb(kept.image_path)) == 10 and kept.question == "find thing 1"
    said = capsys.readouterr().out
    assert "1 (image file not found)" in said
    assert "1 (pre-annotation kept: its frame is not in the corrected file)" in said


def test_import_of_a_hand_edited_coco_counts_malformed_entries_instead_of_crashing(tmp_path):
    from finers_ros.data.annotations import load_annotations
    from finers_training.dataset_cli import import_coco

    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((H, W, 3), np.uint8))
    square = [10, 10, 20, 10, 20, 20, 10, 20]

    def annotation(**given):
        return {"image_id": 1, "segmentation": [square],
                "attributes": {"question": "find it"}, **given}

    document = {"images": [{"id": 1, "file_name": "f.png", "width": W, "height": H}, "x",
                           {"id": 2, "file_name": "f.png", "width": "wide", "height": H}],
                "annotations": [
                    annotation(), 5, annotation(attributes=[1]), annotation(image_id=2),
                    annotation(segmentation=[["a", "b", "c", "d", "e", "f"]]),
                    annotation(segmentation=[[float("nan")] * 6]),
                    annotation(segmentation=[[5, 5, 5, 5, 5, 5]]),
                    annotation(segmentation=[[-5, 10, 1e12, 10, 1e12, 1e12]])]}
    (tmp_path / "coco.json").write_text(json.dumps(document))
    counts = import_coco(tmp_path / "coco.json", tmp_path / "out.json", say=lambda line: None)
    records = load_annotations(tmp_path / "out.json")
    assert counts["records"] == len(records) == 2
    corners = np.asarray(records[1].polygon)  # clipped to the frame
    assert corners.min() >= 0 and (corners.max(axis=0) <= [W - 1, H - 1]).all()
    assert corners[:, 0].max() == W - 1
    assert counts["malformed entry"] == 3  # 5, "x", the image of width "wide"
    assert counts["no question attribute"] == 1 and counts["unknown image"] == 1
    assert counts["no polygon segmentation"] == 3  # strings, NaN, a polygon of no area
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": {"a": 1}, "annotations": []}))
    with pytest.raises(DatasetError, match="'images' is not a list"):
        import_coco(bad, tmp_path / "x.json", say=lambda line: None)


def test_export_counts_what_it_skips(tmp_path, capsys):
    from finers_training.dataset_cli import main

    recorded_session(tmp_path / "session", StoragePlugin.MCAP)
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "session"), "--out", str(out)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    head, skipped = summary[-1].split("; skipped ")
    assert head == (f"exported 3 episode(s) on 3 frame(s) to {out}: 2 pre-annotated, "
                    "1 to label (1 no Detection)")
    assert sorted(skipped.split(", ")) == [
        "1 (its frame is not in the bag)", "1 (malformed Detection)",
        "1 (the node answered with an error)"]
    assert sum(line.startswith("skipped session ") for line in summary) == 3
    assert sum(line.startswith("to label session ") for line in summary) == 1


def test_the_same_question_on_the_same_frame_is_one_record(tmp_path, capsys):
    """Several clients asking the same thing of one frame: one training sample, counted."""
    from finers_ros.data.annotations import load_annotations
    from finers_training.dataset_cli import main

    disc = np.zeros((H, W), bool)
    disc[10:20, 10:20] = True
    bag = BagMaker(tmp_path / "bag")
    bag.frame(T0, T0, 1)
    for number, text in enumerate(["find it", "find it", "find the other", "find it"]):
        bag.command(T0 + 1 + number, json.dumps({"instruction": text, "id": f"c{number}"}))
        shaped_detection(bag, T0 + 10 + number, T0, text, f"c{number}", disc)
    bag.close()
    assert main(["export", str(tmp_path / "bag"), "--out", str(tmp_path / "out")]) == 0
    records = load_annotations(tmp_path / "out" / "annotations.json")
    assert [r.question for r in records] == ["find it", "find the other"]
    assert capsys.readouterr().out.splitlines()[-1].endswith(
        "skipped 2 (the same question on the same frame was exported already)")


def test_export_tells_not_found_from_found_without_a_mask(tmp_path, capsys):
    from finers_training.dataset_cli import main

    bag = BagMaker(tmp_path / "bag")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 1, "find the unicorn")
    bag.detection(T0 + 2, T0, "find the unicorn", "cmd-1", error="", mask_bytes=0)
    bag.close()
    assert main(["export", str(tmp_path / "bag"), "--out", str(tmp_path / "out")]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.endswith("0 pre-annotated, 1 to label "
                            "(1 found, but the Detection carries no mask)")


def test_an_unwritable_output_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from finers_training import dataset_cli

    recorded_session(tmp_path / "session", StoragePlugin.MCAP)
    (tmp_path / "file").write_text("")
    assert dataset_cli.main(["export", str(tmp_path / "session"), "--out",
                             str(tmp_path / "file")]) == 2
    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((H, W, 3), np.uint8))
    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "f.png", "width": W, "height": H}],
        "annotations": [{"image_id": 1, "segmentation": [[10, 10, 20, 10, 20, 20]],
                         "attributes": {"question": "find it"}}]}))
    assert dataset_cli.main(["import", str(tmp_path / "c.json"), "--out",
                             str(tmp_path / "file" / "out.json")]) == 2
    # a disk that fills up mid-export: OpenCV reports a failed write only by returning False
    monkeypatch.setattr(dataset_cli.cv2, "imwrite", lambda *args: False)
    assert dataset_cli.main(["export", str(tmp_path / "session"), "--out",
                             str(tmp_path / "out")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("finers-dataset: ") for e in errors)
    assert "cannot write" in errors[2] and ".png" in errors[2]


def test_export_of_nothing_usable_and_import_of_a_non_coco_file(tmp_path, capsys):
    from finers_training.dataset_cli import main

    bag = BagMaker(tmp_path / "bag")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find it")
    bag.close()
    assert main(["export", str(tmp_path / "bag"), "--out", str(tmp_path / "out")]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["import", str(bad), "--out", str(tmp_path / "x.json")]) == 2
    assert "not a COCO document" in capsys.readouterr().err


def test_export_passes_over_an_unfinished_recording(tmp_path, capsys):
    from finers_training.dataset_cli import main

    recorded_session(tmp_path / "rec" / "good", StoragePlugin.MCAP)
    (mcap,) = (tmp_path / "rec" / "good").glob("*.mcap")
    killed = tmp_path / "rec" / "killed"
    killed.mkdir()
    (killed / "killed.mcap").write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    assert main(["export", str(tmp_path / "rec"), "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("killed.mcap: cannot read the bag (an unfinished recording" in line
               for line in lines)
    assert lines[-1].startswith("exported 3 episode(s)") and "1 (unreadable bag)" in lines[-1]


@pytest.mark.parametrize("compressed", [False, True])
def test_an_unfinished_recording_gives_back_its_complete_episodes(tmp_path, capsys,
                                                                  compressed):
    """
    Give back the complete episodes of an unfinished recording.

    A killed writer leaves an MCAP file without summary or footer; the chunks it had
    written (rosbags closes one after each message past 1 MiB, as every 4K frame is) are
    read back instead of the whole recording being lost.
    """
    from finers_training.dataset_cli import main

    bag = BagMaker(tmp_path / "done", zstd=compressed)
    letters = np.random.default_rng(0).integers(97, 123, 1 << 20).astype(np.uint8)
    pad = bag.types["std_msgs/msg/String"](data=letters.tobytes().decode())  # zstd: ~60 %
    for index in range(3):
        start = T0 + index * SEC
        bag.frame(start, start, index)
        bag.command(start + 1, json.dumps({"instruction": f"find thing {index}",
                                           "id": f"job-{index}"}))
        bag.detection(start + 2, start, f"find thing {index}", f"job-{index}")
        bag.write("/pad", "std_msgs/msg/String", start + 3, pad)  # closes the chunk
    bag.close()
    (mcap,) = (tmp_path / "done").glob("*.mcap")
    killed = tmp_path / "rec" / "killed"
    killed.mkdir(parents=True)
    data = mcap.read_bytes()
    (killed / "killed.mcap").write_bytes(data[: int(len(data) * 0.8)])  # cut in chunk 3

    episodes = list(read_episodes([killed]))
    assert [(e.request_id, e.problem) for e in episodes] == [("job-0", ""), ("job-1", "")]
    assert [frame_value(e.image) for e in episodes] == [0, 1]
    assert main(["export", str(tmp_path / "rec"), "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("killed.mcap: an unfinished recording (its writer was killed): read" in line
               for line in lines)
    assert lines[-1].startswith("exported 2 episode(s)")


def test_a_reused_request_id_pairs_by_the_instruction_the_detection_echoes(tmp_path):
    """Two clients sending the same id: each Detection keeps its own instruction text."""
    bag = BagMaker(tmp_path / "dup")
    for index in range(3):
        bag.frame(T0 + index * SEC, T0 + index * SEC, index)
    bag.command(T0 + 1, json.dumps({"instruction": "find a", "id": "x"}))
    bag.command(T0 + 2, json.dumps({"instruction": "find b", "id": "x"}))
    bag.detection(T0 + SEC + 5, T0 + SEC, "find b", "x")
    bag.detection(T0 + 2 * SEC + 5, T0 + 2 * SEC, "find a", "x")
    bag.close()
    episodes = {e.instruction: frame_value(e.image) for e in read_episodes([tmp_path / "dup"])}
    assert episodes == {"find b": 1, "find a": 2}


def test_a_file_that_is_not_mcap_is_not_called_an_unfinished_recording(tmp_path, capsys):
    from finers_training.dataset_cli import main

    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "notes.mcap").write_text("hello world" * 100)
    assert main(["export", str(tmp_path / "rec"), "--out", str(tmp_path / "out")]) == 1
    (line, summary) = capsys.readouterr().out.splitlines()
    assert line.startswith("skipped bag ") and "notes.mcap: cannot read the bag: " in line
    assert "unfinished" not in line and "1 (unreadable bag)" in summary


def test_other_string_topics_are_not_instructions(tmp_path):
    bag = BagMaker(tmp_path / "chatter")
    bag.write("/chatter", "std_msgs/msg/String", T0, bag.types["std_msgs/msg/String"](
        data="hello"))
    bag.frame(T0 + 1, T0 + 1, 1)
    bag.close()
    with pytest.raises(BagError, match="neither a finers/command nor a Detection topic"):
        list(read_episodes([tmp_path / "chatter"]))
    (episode,) = read_episodes([tmp_path / "chatter"], command_topic="/chatter")
    assert episode.instruction == "hello" and frame_value(episode.image) == 1


def test_a_message_that_does_not_deserialize_is_a_bag_error(tmp_path):
    bag = BagMaker(tmp_path / "corrupt")
    bag.frame(T0, T0, 1)
    conn = bag._conn("/finers/command", "std_msgs/msg/String")
    bag.writer.write(conn, T0 + 1, b"\x00\x01\x00\x00\xff\xff\xff\x7f")  # string length 2 GB
    bag.close()
    with pytest.raises(BagError, match="corrupt: Invalid string length"):
        list(read_episodes([tmp_path / "corrupt"]))


def test_a_bag_without_the_topic_asked_for_is_counted_as_such_not_as_unreadable(
        tmp_path, capsys):
    from finers_training.dataset_cli import main

    recorded_session(tmp_path / "rec" / "a", StoragePlugin.MCAP)
    assert main(["export", str(tmp_path / "rec"), "--out", str(tmp_path / "out"),
                 "--camera-topic", "/camera/typo"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any("no topic '/camera/typo'" in line for line in out), out
    assert "1 (bag without the wanted topics)" in out[-1], out[-1]
    assert "unreadable" not in out[-1], out[-1]
