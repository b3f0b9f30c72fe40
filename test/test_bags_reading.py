"""
What a recorded episode carries, and the exact line for a bag that cannot give one.

The Detection's fields as the node sent them, frames stamped apart from their log time,
compressed camera topics, commands answered in the same nanosecond, and every topic or file
problem as one line that starts with the bag's path (bags written as in test_bags).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Writer

from finers_training.bags import BagError, BagEpisodes, read_episodes
from test_bags import H, SEC, T0, W, BagMaker, frame_value, message, shaped_detection

CAMERA_TYPES = "sensor_msgs/msg/Image/sensor_msgs/msg/CompressedImage"


def episodes_of(bag: BagMaker, path):
    bag.close()
    return list(read_episodes([path]))


def test_the_detection_keeps_every_field_the_node_sent(tmp_path):
    bag = BagMaker(tmp_path / "fields")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find the corner")
    types = bag.types
    mask = np.zeros((3, 4), np.uint8)
    mask[1, 2] = 1
    msg = message(
        bag.store, "finers_ros/msg/Detection", header=bag._header(T0), request_id="cmd-1",
        instruction="find the corner", found=True, answer="It is found.", error="",
        error_stage="", box=np.array([20, 30, 23, 32], np.float32),
        region=np.array([0, 1, 62, 47], np.float32), score=0.625,
        points=[types["geometry_msgs/msg/Point32"](x=21.5, y=31.0, z=0.0),
                types["geometry_msgs/msg/Point32"](x=22.0, y=30.5, z=0.0)],
        image_width=W, image_height=H, backend="qwen+sam",
        mask_roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=20, y_offset=30, height=3, width=4, do_rectify=False),
        mask=mask.reshape(-1))
    bag.write("/finers/detections", "finers_ros/msg/Detection", T0 + 20, msg)
    (episode,) = episodes_of(bag, tmp_path / "fields")
    detection = episode.detection
    assert (detection.found, detection.answer, detection.error, detection.error_stage) == (
        True, "It is found.", "", "")
    assert detection.box == (20.0, 30.0, 23.0, 32.0)
    assert detection.region == (0.0, 1.0, 62.0, 47.0)
    assert detection.points == [(21.5, 31.0), (22.0, 30.5)]
    assert detection.score == 0.625 and detection.backend == "qwen+sam"
    assert detection.mask.dtype == bool and detection.mask.shape == (H, W)
    assert np.argwhere(detection.mask).tolist() == [[31, 22]]


def test_a_detection_without_a_mask_roi_has_no_mask(tmp_path):
    bag = BagMaker(tmp_path / "nomask")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find it")
    roi = bag.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=4, width=0, do_rectify=False)
    msg = message(bag.store, "finers_ros/msg/Detection", header=bag._header(T0),
                  request_id="cmd-1", instruction="find it", found=False,
                  image_width=W, image_height=H, mask_roi=roi)
    bag.write("/finers/detections", "finers_ros/msg/Detection", T0 + 20, msg)
    (episode,) = episodes_of(bag, tmp_path / "nomask")
    assert episode.problem == "" and episode.detection.mask is None


def test_a_mask_past_the_bottom_edge_is_a_malformed_detection(tmp_path):
    bag = BagMaker(tmp_path / "past")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 10, "find it")
    roi = bag.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=2, y_offset=H - 2, height=3, width=2, do_rectify=False)
    msg = message(bag.store, "finers_ros/msg/Detection", header=bag._header(T0),
                  request_id="cmd-1", instruction="find it", found=True, image_width=W,
                  image_height=H, mask_roi=roi, mask=np.ones(6, np.uint8))
    bag.write("/finers/detections", "finers_ros/msg/Detection", T0 + 20, msg)
    (episode,) = episodes_of(bag, tmp_path / "past")
    assert episode.problem == (f"malformed Detection: mask of 6 bytes, mask_roi 2x3 at "
                               f"(2, {H - 2}) in a {W}x{H} frame")


def test_stamps_with_nanoseconds_and_a_missing_frame_in_the_problem_line(tmp_path):
    bag = BagMaker(tmp_path / "ns")
    bag.frame(T0, T0 + 123, 1)
    bag.command(T0 + 10, "find it")
    bag.detection(T0 + 20, T0 + 123, "find it", "cmd-1")
    bag.command(T0 + 30, "find more")
    bag.detection(T0 + 40, T0 + 5_000_000_007, "find more", "cmd-2")
    found, missing = sorted(episodes_of(bag, tmp_path / "ns"), key=lambda e: e.instruction)
    assert found.stamp_ns == T0 + 123 and frame_value(found.image) == 1
    assert missing.problem == ("its frame is not in the bag: none on the camera topic is "
                               "stamped 1750000005.000000007 s ('cam')")


def test_a_command_without_an_answer_gets_the_first_frame_logged_after_it(tmp_path):
    bag = BagMaker(tmp_path / "late")
    # a driver stamps at exposure and the recorder logs 80 ms later
    for index in range(3):
        bag.frame(T0 + index * SEC + 80_000_000, T0 + index * SEC, index)
    option = {"instruction": "which colour", "question_type": "option",
              "options": ["A. red", "B. blue"], "id": "q-1"}
    bag.command(T0 + SEC + 40_000_000, json.dumps(option))  # after frame 1's stamp, before its log
    (episode,) = episodes_of(bag, tmp_path / "late")
    assert frame_value(episode.image) == 1 and episode.stamp_ns == T0 + SEC
    assert episode.options == ["A. red", "B. blue"] and episode.request_id == "q-1"


def test_a_command_and_a_frame_in_the_detections_own_nanosecond_are_its(tmp_path):
    bag = BagMaker(tmp_path / "same")
    bag.frame(T0, T0, 1)
    option = {"instruction": "which colour", "question_type": "option",
              "options": ["A. red"], "id": "q-1"}
    bag.command(T0 + 50, json.dumps(option))
    bag.frame(T0 + 50, T0, 2)  # the same stamp, logged with the command and the answer
    bag.detection(T0 + 50, T0, "which colour", "q-1")
    (episode,) = episodes_of(bag, tmp_path / "same")
    assert episode.question_type == "option" and episode.options == ["A. red"]
    assert frame_value(episode.image) == 2


def test_a_command_with_both_the_id_and_the_text_wins_over_an_older_one_with_the_text(tmp_path):
    bag = BagMaker(tmp_path / "both")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 1, json.dumps({"instruction": "find it", "id": "a",
                                    "question_type": "open"}))
    bag.command(T0 + 2, json.dumps({"instruction": "find it", "id": "b",
                                    "question_type": "option", "options": ["A. x"]}))
    bag.detection(T0 + 10, T0, "find it", "b")
    bag.frame(T0 + 20, T0 + 20, 2)
    answered, other = episodes_of(bag, tmp_path / "both")
    assert answered.request_id == "b" and answered.question_type == "option"
    assert other.request_id == "a" and other.detection is None


def test_the_nodes_own_image_outputs_are_not_taken_for_the_camera(tmp_path):
    bag = BagMaker(tmp_path / "outputs")
    bag.frame(T0, T0, 7, topic="/finers/mask")
    bag.frame(T0, T0, 8, topic="/finers/overlay")
    bag.frame(T0 + 1, T0 + 1, 3)
    bag.command(T0 + 2, "find it")
    bag.frame(T0 + 3, T0 + 3, 4)
    (episode,) = episodes_of(bag, tmp_path / "outputs")
    assert frame_value(episode.image) == 4


def test_a_compressed_camera_topic_is_decoded(tmp_path):
    bag = BagMaker(tmp_path / "jpeg")
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:, : W // 2] = (0, 0, 255)  # BGR red on the left half
    ok, png = cv2.imencode(".png", pixels)
    msg = bag.types["sensor_msgs/msg/CompressedImage"](
        header=bag._header(T0), format="bgr8; png compressed bgr8", data=png.reshape(-1))
    bag.write("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", T0, msg)
    bag.command(T0 - 1, "find the red half")
    (episode,) = episodes_of(bag, tmp_path / "jpeg")
    assert episode.problem == ""
    assert episode.image[0, 0].tolist() == [255, 0, 0]
    assert episode.image[0, -1].tolist() == [0, 0, 0]


def test_a_big_endian_16_bit_camera_is_decoded_in_its_byte_order(tmp_path):
    bag = BagMaker(tmp_path / "be")
    values = np.full((H, W), 0x1234, np.uint16)
    msg = bag.types["sensor_msgs/msg/Image"](
        header=bag._header(T0), height=H, width=W, encoding="mono16", is_bigendian=1,
        step=W * 2, data=np.frombuffer(values.astype(">u2").tobytes(), np.uint8))
    bag.write("/camera/image_raw", "sensor_msgs/msg/Image", T0, msg)
    bag.command(T0 - 1, "find it")
    (episode,) = episodes_of(bag, tmp_path / "be")
    little = BagMaker(tmp_path / "le")
    msg = bag.types["sensor_msgs/msg/Image"](
        header=bag._header(T0), height=H, width=W, encoding="mono16", is_bigendian=0,
        step=W * 2, data=np.frombuffer(values.astype("<u2").tobytes(), np.uint8))
    little.write("/camera/image_raw", "sensor_msgs/msg/Image", T0, msg)
    little.command(T0 - 1, "find it")
    (reference,) = episodes_of(little, tmp_path / "le")
    np.testing.assert_array_equal(episode.image, reference.image)


def test_an_unreadable_frame_is_the_episodes_problem(tmp_path):
    bag = BagMaker(tmp_path / "odd")
    msg = bag.types["sensor_msgs/msg/Image"](
        header=bag._header(T0), height=H, width=W, encoding="yuv_weird", is_bigendian=0,
        step=W * 3, data=np.zeros(W * H * 3, np.uint8))
    bag.write("/camera/image_raw", "sensor_msgs/msg/Image", T0, msg)
    bag.command(T0 - 1, "find it")
    (episode,) = episodes_of(bag, tmp_path / "odd")
    assert episode.image is None
    assert episode.problem.startswith("unreadable frame: unsupported encoding 'yuv_weird'")


@pytest.mark.parametrize(
    "option, line",
    [
        ("camera_topic", f"no topic '/typo' of type {CAMERA_TYPES} (camera_topic); the bag "
                         "has: /camera/image_raw, /finers/command"),
        ("command_topic", "no topic '/typo' of type std_msgs/msg/String (command_topic); the "
                          "bag has: /camera/image_raw, /finers/command"),
        ("detections_topic", "no topic '/typo' of type finers_ros/msg/Detection "
                             "(detections_topic); the bag has: /camera/image_raw, "
                             "/finers/command"),
    ],
)
def test_a_named_topic_the_bag_lacks_is_one_line_with_the_bags_topics(tmp_path, option, line):
    bag = BagMaker(tmp_path / "named")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 1, "find it")
    bag.close()
    with pytest.raises(BagError) as caught:
        list(read_episodes([tmp_path / "named"], **{option: "/typo"}))
    assert str(caught.value) == f"{tmp_path / 'named'}: {line}"


def test_two_cameras_and_no_camera_are_one_line_each(tmp_path):
    bag = BagMaker(tmp_path / "two")
    bag.frame(T0, T0, 1, topic="/left/image_raw")
    bag.frame(T0, T0, 2, topic="/right/image_raw")
    bag.command(T0 + 1, "find it")
    bag.close()
    with pytest.raises(BagError) as caught:
        list(read_episodes([tmp_path / "two"]))
    assert str(caught.value) == (f"{tmp_path / 'two'}: several {CAMERA_TYPES} topics "
                                 "(/left/image_raw, /right/image_raw): name one (camera_topic)")
    bag = BagMaker(tmp_path / "none")
    bag.command(T0 + 1, "find it")
    bag.close()
    with pytest.raises(BagError) as caught:
        list(read_episodes([tmp_path / "none"]))
    assert str(caught.value) == (f"{tmp_path / 'none'}: no camera topic (sensor_msgs Image or "
                                 "CompressedImage)")


def test_a_named_topic_in_an_empty_bag_says_the_bag_has_no_topics(tmp_path):
    writer = Writer(tmp_path / "empty", version=9)
    writer.open()
    writer.close()
    with pytest.raises(BagError) as caught:
        list(read_episodes([tmp_path / "empty"], camera_topic="/cam"))
    assert str(caught.value) == (f"{tmp_path / 'empty'}: no topic '/cam' of type "
                                 f"{CAMERA_TYPES} (camera_topic); the bag has: no topics")


def test_a_finished_bag_whose_file_is_damaged_is_not_called_unfinished(tmp_path):
    bag = BagMaker(tmp_path / "done")
    for index in range(3):
        bag.frame(T0 + index * SEC, T0 + index * SEC, index)
    bag.command(T0 + 1, "find it")
    bag.close()
    (mcap,) = (tmp_path / "done").glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])  # metadata.yaml remains
    with pytest.raises(BagError) as caught:
        list(read_episodes([mcap]))
    assert str(caught.value).startswith(f"{mcap}: cannot read the bag: ")


def test_an_unfinished_recording_with_nothing_complete_names_the_readers_reason(tmp_path):
    bag = BagMaker(tmp_path / "done")
    bag.frame(T0, T0, 1)
    bag.close()
    (mcap,) = (tmp_path / "done").glob("*.mcap")
    killed = tmp_path / "killed.mcap"
    killed.write_bytes(mcap.read_bytes()[:40])  # the magic and a cut header
    with pytest.raises(BagError) as caught:
        list(read_episodes([killed]))
    said = str(caught.value)
    prefix = (f"{killed}: cannot read the bag (an unfinished recording: its writer was killed, "
              "nothing complete in it): ")
    assert said.startswith(prefix) and len(said) > len(prefix) and "None" not in said[len(prefix):]


def test_the_note_counts_the_messages_read_back_and_is_empty_for_a_finished_bag(tmp_path):
    bag = BagMaker(tmp_path / "done")
    letters = np.random.default_rng(0).integers(97, 123, 1 << 20).astype(np.uint8)
    pad = bag.types["std_msgs/msg/String"](data=letters.tobytes().decode())
    for index in range(3):
        start = T0 + index * SEC
        bag.frame(start, start, index)
        bag.command(start + 1, f"find thing {index}")
        bag.write("/pad", "std_msgs/msg/String", start + 3, pad)  # closes the chunk
    bag.close()
    (mcap,) = (tmp_path / "done").glob("*.mcap")
    finished = BagEpisodes(mcap)
    assert len(list(finished)) == 3 and finished.note == ""
    killed = tmp_path / "killed.mcap"
    data = mcap.read_bytes()
    killed.write_bytes(data[: int(len(data) * 0.8)])
    episodes = BagEpisodes(killed)
    read = {e.instruction: e.problem for e in episodes}
    # the frame, command and pad of each of the two complete chunks: 6 messages
    assert read == {"find thing 0": "", "find thing 1": "no camera frame after the instruction"}
    assert episodes.note == (f"{killed}: an unfinished recording (its writer was killed): "
                             "read 6 complete message(s) back")


def test_shaped_detection_helper_is_the_nodes_layout(tmp_path):
    mask = np.zeros((H, W), bool)
    mask[5:9, 10:12] = True
    bag = BagMaker(tmp_path / "shape")
    bag.frame(T0, T0, 1)
    bag.command(T0 + 1, "find it")
    shaped_detection(bag, T0 + 2, T0, "find it", "cmd-1", mask)
    (episode,) = episodes_of(bag, tmp_path / "shape")
    np.testing.assert_array_equal(episode.detection.mask, mask)
