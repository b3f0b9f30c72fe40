"""
What the launch file's camera and true/false arguments become (no launch system needed).

test/test_launch_real.py runs the same arguments under the real ``ros2 launch``.
"""
import pytest

from finers_ros.ros.launch_checks import launch_flag, read_flags
from finers_ros.ros.launch_topics import (CAMERA, CAMERA_INFO, COMPRESSED, DEPTH,
                                          camera_topics, remappings)


def test_the_node_s_own_names_are_the_ones_it_subscribes():
    from finers_ros.ros import depth_input, node

    assert (CAMERA, COMPRESSED) == (node.CAMERA_TOPIC, node.COMPRESSED_TOPIC)
    assert (DEPTH, CAMERA_INFO) == (depth_input.DEPTH_TOPIC, depth_input.CAMERA_INFO_TOPIC)


def test_no_camera_argument_keeps_the_node_s_names():
    topics = camera_topics()
    assert topics == {CAMERA: CAMERA, COMPRESSED: COMPRESSED, DEPTH: DEPTH,
                      CAMERA_INFO: CAMERA_INFO}
    assert remappings(topics) == []


@pytest.mark.parametrize("namespace", ["/camera/camera", "/camera/camera/", " /camera/camera "])
def test_camera_namespace_derives_the_realsense_layout(namespace):
    assert remappings(camera_topics(namespace)) == [
        (CAMERA, "/camera/camera/color/image_raw"),
        (COMPRESSED, "/camera/camera/color/image_raw/compressed"),
        (DEPTH, "/camera/camera/aligned_depth_to_color/image_raw"),
        (CAMERA_INFO, "/camera/camera/color/camera_info"),
    ]


def test_a_relative_camera_namespace_stays_relative():
    topics = camera_topics("front")
    assert topics[CAMERA] == "front/color/image_raw"
    assert topics[DEPTH] == "front/aligned_depth_to_color/image_raw"


def test_each_named_topic_wins_over_the_derived_one():
    topics = camera_topics("/camera/camera", camera_topic="/camera/camera/color/image_rect",
                           depth_topic="/registered/depth", camera_info_topic="")
    assert topics == {
        CAMERA: "/camera/camera/color/image_rect",
        COMPRESSED: "/camera/camera/color/image_rect/compressed",
        DEPTH: "/registered/depth",
        CAMERA_INFO: "/camera/camera/color/camera_info",
    }
    alone = camera_topics(depth_topic="depth/image", camera_info_topic="rgb/camera_info")
    assert remappings(alone) == [(DEPTH, "depth/image"), (CAMERA_INFO, "rgb/camera_info")]


def test_true_false_arguments():
    for word in ("true", "True", "1", "yes", "on", " TRUE "):
        assert launch_flag("x", word) is True
    for word in ("false", "0", "no", "off", "False"):
        assert launch_flag("x", word) is False
    assert launch_flag("x", "") is None and launch_flag("x", "  ") is None
    with pytest.raises(ValueError, match=r"^depth_enabled:=ture: expected true or false$"):
        launch_flag("depth_enabled", "ture")
    flags, problems = read_flags({"use_rviz": "false", "depth_enabled": "ture", "a": ""})
    assert flags == {"use_rviz": False, "a": None}
    assert problems == ["depth_enabled:=ture: expected true or false"]
