"""
A camera recorded through image_transport: its raw topic and its ``/compressed`` twin.

Recording ``/camera/image_raw`` on a robot often records ``/camera/image_raw/compressed``
too; that pair is one camera, read without naming a topic. Two different cameras still
need a name.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from finers_training.bags import BagError, read_episodes
from test_bags import BagMaker, frame_value, H, T0, W


def compressed_frame(bag: BagMaker, topic: str, log_ns: int, value: int) -> None:
    """Write a PNG CompressedImage painted like ``BagMaker.frame`` (blue ``value + 1``)."""
    pixels = np.full((H, W, 3), value, np.uint8)
    pixels[..., 0] = value + 1
    ok, png = cv2.imencode(".png", pixels)
    assert ok
    msg = bag.types["sensor_msgs/msg/CompressedImage"](
        header=bag._header(log_ns), format="bgr8; png compressed bgr8", data=png.reshape(-1))
    bag.write(topic, "sensor_msgs/msg/CompressedImage", log_ns, msg)


def test_a_raw_topic_and_its_compressed_twin_are_one_camera(tmp_path):
    bag = BagMaker(tmp_path / "pair")
    bag.command(T0, "find it")
    compressed_frame(bag, "/camera/image_raw/compressed", T0 + 1, 5)
    bag.frame(T0 + 2, T0 + 2, 3, topic="/camera/image_raw")
    bag.close()
    (episode,) = read_episodes([tmp_path / "pair"])
    assert episode.problem == "" and frame_value(episode.image) == 5  # the next frame


def test_a_compressed_topic_of_another_camera_needs_a_name(tmp_path):
    bag = BagMaker(tmp_path / "two")
    bag.frame(T0, T0, 3, topic="/left/image_raw")
    compressed_frame(bag, "/right/image_raw/compressed", T0 + 1, 5)
    bag.command(T0 + 2, "find it")
    bag.close()
    with pytest.raises(BagError, match="several .* topics .*name one \\(camera_topic\\)"):
        list(read_episodes([tmp_path / "two"]))
