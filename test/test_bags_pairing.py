"""
Which frame and which command an episode gets when log times and stamps coincide.

A recording pairs by nanoseconds: a command logged in the same nanosecond as a frame, two
frames carrying the same stamp, a command logged after the answer with the same text, a
Detection echoing an instruction cut at 4096 characters, a mask that reaches the frame's
edge. Bags are written with rosbags as ``ros2 bag record`` lays them out (test_bags).
"""
from __future__ import annotations

import json

import numpy as np

from finers_training.bags import read_episodes
from test_bags import H, SEC, T0, W, BagMaker, frame_value, shaped_detection


def episodes_of(bag: BagMaker, path):
    bag.close()
    return list(read_episodes([path]))


def test_a_command_logged_in_the_same_nanosecond_as_a_frame_gets_that_frame(tmp_path):
    bag = BagMaker(tmp_path / "same")
    for index in range(3):
        bag.frame(T0 + index * SEC, T0 + index * SEC, index)
    bag.command(T0 + SEC, "find the red screw")
    bag.command(T0 + SEC + 1, "find the blue bolt")
    by_text = {e.instruction: e for e in episodes_of(bag, tmp_path / "same")}
    assert frame_value(by_text["find the red screw"].image) == 1
    assert by_text["find the red screw"].stamp_ns == T0 + SEC
    assert frame_value(by_text["find the blue bolt"].image) == 2


def test_of_frames_sharing_the_detections_stamp_the_newest_before_it_is_taken(tmp_path):
    stamp = T0 + 500
    bag = BagMaker(tmp_path / "repeat")
    bag.frame(T0, stamp, 5)  # a driver that republishes a frame keeps its stamp
    bag.frame(T0 + 10, stamp, 6)
    bag.command(T0 + 20, "find the red screw")
    bag.detection(T0 + 30, stamp, "find the red screw", "cmd-1")
    bag.frame(T0 + 40, stamp, 7)  # logged after the answer
    (episode,) = episodes_of(bag, tmp_path / "repeat")
    assert episode.problem == "" and frame_value(episode.image) == 6


def test_of_frames_logged_after_the_detection_the_first_is_taken(tmp_path):
    stamp = T0 + 500
    bag = BagMaker(tmp_path / "late")
    bag.command(T0, "find the red screw")
    bag.detection(T0 + 10, stamp, "find the red screw", "cmd-1")
    bag.frame(T0 + 20, stamp, 3)
    bag.frame(T0 + 30, stamp, 4)
    (episode,) = episodes_of(bag, tmp_path / "late")
    assert frame_value(episode.image) == 3


def test_a_command_logged_after_the_answer_is_its_own_episode(tmp_path):
    bag = BagMaker(tmp_path / "after")
    bag.frame(T0, T0, 1)
    bag.detection(T0 + 10, T0, "find the red screw", "cmd-1")
    option = {"instruction": "find the red screw", "question_type": "option",
              "options": ["A. red", "B. blue"], "id": "cmd-1"}
    bag.command(T0 + 20, json.dumps(option))  # sent again after the answer
    bag.frame(T0 + 30, T0 + 30, 2)
    answered, asked_again = episodes_of(bag, tmp_path / "after")
    assert answered.detection is not None and frame_value(answered.image) == 1
    assert answered.question_type == "referring" and answered.options is None
    assert asked_again.detection is None and frame_value(asked_again.image) == 2
    assert asked_again.question_type == "option" and asked_again.request_id == "cmd-1"


def test_a_detection_echoing_a_long_instruction_cut_at_4096_characters_finds_it(tmp_path):
    instruction = "find the screw " + "left of the red one " * 250  # 5015 characters
    command = {"instruction": instruction, "question_type": "open"}
    bag = BagMaker(tmp_path / "long")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, json.dumps(command))
    bag.detection(T0 + 20, T0, instruction[:4096], "")  # the node echoes at most 4096
    (episode,) = episodes_of(bag, tmp_path / "long")
    assert episode.instruction == instruction and episode.question_type == "open"
    assert episode.detection is not None


def test_a_mask_reaching_the_frames_right_and_bottom_edges_is_read(tmp_path):
    mask = np.zeros((H, W), bool)
    mask[H - 3:, W - 5:] = True
    bag = BagMaker(tmp_path / "edge")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find the corner")
    shaped_detection(bag, T0 + 20, T0, "find the corner", "cmd-1", mask)
    (episode,) = episodes_of(bag, tmp_path / "edge")
    assert episode.problem == ""
    assert np.array_equal(episode.detection.mask, mask)


def test_a_mask_one_pixel_past_the_frame_is_a_malformed_detection(tmp_path):
    from test_bags import message

    bag = BagMaker(tmp_path / "past")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find the corner")
    roi = bag.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=W - 4, y_offset=H - 3, height=3, width=5, do_rectify=False)
    msg = message(bag.store, "finers_ros/msg/Detection", header=bag._header(T0),
                  request_id="cmd-1", instruction="find the corner", found=True,
                  image_width=W, image_height=H, mask_roi=roi, mask=np.ones(15, np.uint8))
    bag.write("/finers/detections", "finers_ros/msg/Detection", T0 + 20, msg)
    (episode,) = episodes_of(bag, tmp_path / "past")
    assert episode.problem == (f"malformed Detection: mask of 15 bytes, mask_roi 5x3 at "
                               f"({W - 4}, {H - 3}) in a {W}x{H} frame")
