"""
A parameter name the node does not know is said at start-up, with the closest known name.

A misspelt name in a params file (``frame_wiat_s``) would otherwise be ignored without a
word and the default used. The node runs in its own process with a real params file.
"""

import time

from finers_ros.ros.params import SETTING_NAMES, closest_name, unknown_parameter_warning

TIMEOUT = 60.0


def test_closest_known_name():
    assert closest_name("frame_wiat_s", SETTING_NAMES) == "frame_wait_s"
    assert closest_name("depht_enabled", SETTING_NAMES) == "depth_enabled"
    assert closest_name("xyzzy", SETTING_NAMES) == ""
    text = unknown_parameter_warning("frame_wiat_s", SETTING_NAMES)
    assert "'frame_wiat_s'" in text and "did you mean 'frame_wait_s'" in text
    assert "\n" not in text
    assert "did you mean" not in unknown_parameter_warning("xyzzy", SETTING_NAMES)


def test_node_warns_about_a_misspelt_parameter_at_start(domain):
    from finers_ros.ros.launcher import NodeProcess

    node = NodeProcess(domain, parameters={"frame_wiat_s": 9.0, "xyzzy": 1})
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and "serving:" not in node.log() and node.alive():
            time.sleep(0.2)
        log = node.log()
        assert "serving:" in log, log[-2000:]
    finally:
        code = node.stop()
    warnings = [line for line in log.splitlines() if "WARN" in line and "frame_wiat_s" in line]
    assert len(warnings) == 1, log[-3000:]
    assert "did you mean 'frame_wait_s'" in warnings[0] and "ignored" in warnings[0]
    assert any("'xyzzy'" in line and "WARN" in line for line in log.splitlines())
    assert code == 0, log[-2000:]


def test_depth_camera_model_takes_one_of_its_choices():
    import pytest

    from finers_ros.ros.params import NodeSettings, ParameterError, parameter_defaults

    defaults = parameter_defaults()
    for choice in ("auto", "raw", "rectified"):
        NodeSettings(**{**defaults, "depth_camera_model": choice}).validate()
    with pytest.raises(ParameterError, match=r"depth_camera_model='rect' \(auto \| raw"):
        NodeSettings(**{**defaults, "depth_camera_model": "rect"}).validate()
