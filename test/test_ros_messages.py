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
    result = FineRSResult(instruction="find it", found=True, answer="The object is found.", box=(30, 10, 34, 19),
                          points=[(32, 12), (33, 17)], region=(0, 0, 99, 99), crop=CropWindow(0, 0, 100, 100),
                          mask=mask, timings_ms={"gse": 1.5, "total": 3.0}, backend="bringup")
    image = np.zeros((100, 200, 3), np.uint8)
    msg = detection_message(Outcome(Request("find it", request_id="r1"), result, None, image), Header(frame_id="cam"))
    assert (msg.mask_roi.x_offset, msg.mask_roi.y_offset, msg.mask_roi.width, msg.mask_roi.height) == (30, 10, 5, 10)
    assert len(msg.mask) == 50 and np.array_equal(detection_mask(msg), mask)
    assert list(msg.crop) == [0, 0, 100, 100] and msg.points[1].y == 17 and math.isnan(msg.score)
    assert dict(zip(msg.timing_names, msg.timings_ms)) == {"gse": 1.5, "total": 3.0}
    assert (msg.image_width, msg.image_height, msg.request_id) == (200, 100, "r1")
