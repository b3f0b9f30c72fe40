"""Building finers_ros messages from core results (ROS message types only, no node)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from geometry_msgs.msg import Point32
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from finers_ros.msg import Detection

from ..geometry import mask_box
from ..result import is_count
from ..serving import Outcome
from .image_codec import mono8_fields, rgb_fields


def _box4(values) -> list:
    return [float(v) for v in values] if values is not None else [0.0] * 4


def outcome_header(outcome: Outcome, now) -> Header:
    """Return the source frame's header (stamp + frame_id); ``now`` when no frame was used."""
    frame_header = getattr(outcome.frame, "header", None)
    if frame_header is not None:
        return frame_header
    return Header(stamp=now, frame_id="")


def detection_message(outcome: Outcome, header: Header) -> Detection:
    """Build the Detection of one outcome (found, error, box, points, compact mask, timings)."""
    result = outcome.result
    request = outcome.request
    msg = Detection(header=header, request_id=request.request_id,
                    instruction=request.instruction[:4096],
                    found=bool(result.found), answer=result.answer or "", error=result.error or "",
                    error_stage=result.error_stage or "", backend=result.backend or "")
    msg.box = _box4(result.box)
    msg.region = _box4(result.region)
    msg.crop = [int(v) for v in result.crop.as_list()] if result.crop else [0, 0, 0, 0]
    msg.points = [Point32(x=float(x), y=float(y), z=0.0) for x, y in result.points]
    msg.score = float(result.score) if result.score is not None else math.nan
    if outcome.image is not None:
        msg.image_height, msg.image_width = (int(v) for v in outcome.image.shape[:2])
    tight: Optional[tuple] = mask_box(result.mask) if result.mask is not None else None
    if tight is not None:
        x1, y1, x2, y2 = (int(v) for v in tight)
        msg.mask_roi = RegionOfInterest(x_offset=x1, y_offset=y1, width=x2 - x1 + 1,
                                        height=y2 - y1 + 1)
        msg.mask = result.mask[y1:y2 + 1, x1:x2 + 1].astype(np.uint8).tobytes()
    msg.timing_names = list(result.timings_ms)
    msg.timings_ms = [float(v) for v in result.timings_ms.values()]
    return msg


def split_timings(names, values) -> tuple:
    """
    ``(latency_ms, counts)`` of a message's ``timing_names``/``timings_ms`` arrays.

    The arrays keep their layout, but entries named ``*_tokens`` hold counts
    (``finers_ros.result.is_count``), not milliseconds; counts come back as ints.
    """
    latency, counts = {}, {}
    for name, value in zip(names, values):
        if is_count(name):
            counts[name] = int(round(value))
        else:
            latency[name] = float(value)
    return latency, counts


def mask_image(mask: Optional[np.ndarray], shape, header: Header) -> Image:
    """Full-resolution mono8 mask (zeros when nothing was found) with the frame's header."""
    if mask is None:
        mask = np.zeros(shape[:2], bool)
    return Image(header=header, **mono8_fields(mask))


def rgb_image(image: np.ndarray, header: Header) -> Image:
    """Build an rgb8 Image of ``H x W x 3 uint8 RGB`` ``image`` with ``header``."""
    return Image(header=header, **rgb_fields(image))


def detection_mask(msg: Detection) -> np.ndarray:
    """Decode the full-frame bool mask a Detection carries (``image_height x image_width``)."""
    full = np.zeros((msg.image_height, msg.image_width), bool)
    roi = msg.mask_roi
    if roi.width and roi.height:
        crop = np.frombuffer(bytes(msg.mask), np.uint8).reshape(roi.height, roi.width).astype(bool)
        full[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width] = crop
    return full
