"""Building Detection messages (ROS message types, no node)."""
import math

import numpy as np
from std_msgs.msg import Header

from finers_ros.geometry import CropWindow
from finers_ros.result import FineRSResult
from finers_ros.ros.messages import detection_mask, detection_message
from finers_ros.serving import Outcome, Request


def test_detection_carries_compact_mask_and_geometry():
    mask = np.zeros((100, 200), bool)
    mask[10:20, 30:35] = True
    result = FineRSResult(instruction="find it", found=True, answer="The object is found.",
                          box=(30, 10, 34, 19), points=[(32, 12), (33, 17)], region=(0, 0, 99, 99),
                          crop=CropWindow(0, 0, 100, 100), mask=mask,
                          timings_ms={"gse": 1.5, "total": 3.0}, backend="bringup")
    image = np.zeros((100, 200, 3), np.uint8)
    msg = detection_message(Outcome(Request("find it", request_id="r1"), result, None, image),
                            Header(frame_id="cam"))
    roi = msg.mask_roi
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (30, 10, 5, 10)
    assert len(msg.mask) == 50 and np.array_equal(detection_mask(msg), mask)
    assert list(msg.crop) == [0, 0, 100, 100] and msg.points[1].y == 17 and math.isnan(msg.score)
    assert dict(zip(msg.timing_names, msg.timings_ms)) == {"gse": 1.5, "total": 3.0}
    assert (msg.image_width, msg.image_height, msg.request_id) == (200, 100, "r1")


def test_token_counts_are_not_reported_as_milliseconds():
    """Counts (``*_tokens``) share the timing arrays but are never labelled as latency."""
    from builtin_interfaces.msg import Time

    from finers_ros.ros.diagnostics import Counters, diagnostic_array, status_message
    from finers_ros.ros.messages import split_timings

    timings = {"gse": 81.0, "gse_prompt_tokens": 2882.0, "total": 120.5}
    result = FineRSResult(instruction="find it", timings_ms=timings)
    msg = detection_message(Outcome(Request("find it", request_id="r2"), result, None, None),
                            Header(frame_id="cam"))
    latency, counts = split_timings(msg.timing_names, msg.timings_ms)
    assert latency == {"gse": 81.0, "total": 120.5} and counts == {"gse_prompt_tokens": 2882}
    status = status_message("active", None, None, 4, Counters(last_timings=timings), Time())
    values = {kv.key: kv.value for kv in diagnostic_array(status, "node").status[0].values}
    assert values["latency_ms/gse"] == "81.0" and values["tokens/gse_prompt_tokens"] == "2882"
    assert "latency_ms/gse_prompt_tokens" not in values


def test_a_clients_bad_input_is_not_a_health_warning_but_a_stage_failure_is():
    """An empty or too long instruction is the client's error: the node stays OK."""
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from finers_ros.ros.diagnostics import Counters, diagnostic_array, status_message

    def level(last_error):
        status = status_message("active", None, None, 0, Counters(last_error=last_error),
                                Time())
        status.model_loaded = True
        return diagnostic_array(status, "node").status[0]

    input_error = level("[input] empty instruction")
    assert input_error.level == DiagnosticStatus.OK
    assert input_error.message == "ok (last client input error: [input] empty instruction)"
    assert level("[gse] model output unparsable").level == DiagnosticStatus.WARN
    assert level("").level == DiagnosticStatus.OK
