"""sensor_msgs/Image and CompressedImage pixels <-> numpy, without cv_bridge.

Works on the message's fields (no rclpy import), so it is tested per encoding directly.
Every decoder returns ``H x W x 3 uint8 RGB`` and raises ``ImageFormatError`` with a
one-line reason for anything it cannot read (wrong step or size, unknown encoding).
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (bytes per pixel, channels, dtype)
_LAYOUT = {
    "rgb8": (3, 3, np.uint8), "bgr8": (3, 3, np.uint8), "8UC3": (3, 3, np.uint8),
    "rgba8": (4, 4, np.uint8), "bgra8": (4, 4, np.uint8), "8UC4": (4, 4, np.uint8),
    "mono8": (1, 1, np.uint8), "8UC1": (1, 1, np.uint8),
    "mono16": (2, 1, np.uint16), "16UC1": (2, 1, np.uint16),
    "yuv422": (2, 2, np.uint8), "uyvy": (2, 2, np.uint8), "UYVY": (2, 2, np.uint8),
    "yuv422_yuy2": (2, 2, np.uint8), "yuyv": (2, 2, np.uint8), "YUYV": (2, 2, np.uint8),
}
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB, "8UC4": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY, "UYVY": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2, "YUYV": cv2.COLOR_YUV2RGB_YUY2,
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)
MAX_SIDE = 16384


class ImageFormatError(ValueError):
    pass


def image_to_rgb(encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as ``H x W x 3 uint8 RGB`` (always a fresh array)."""
    if encoding not in _LAYOUT:
        raise ImageFormatError(f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    bpp, channels, dtype = _LAYOUT[encoding]
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ImageFormatError(f"bad image size {width}x{height}")
    if channels == 2 and width % 2:
        raise ImageFormatError(f"{encoding} needs an even width, got {width}")
    row = width * bpp
    if step < row:
        raise ImageFormatError(f"step {step} < width {width} x {bpp} bytes for {encoding}")
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if buffer.size < step * (height - 1) + row:
        raise ImageFormatError(f"data has {buffer.size} bytes, {encoding} {width}x{height} step {step} needs {step * height}")
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row), strides=(step, 1))
    if dtype == np.uint16:
        pixels = rows.copy().view(">u2" if is_bigendian else "<u2").reshape(height, width).astype(np.float32)
        peak = float(pixels.max()) or 1.0
        gray = np.clip(pixels * (255.0 / peak), 0, 255).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)
    if encoding == "rgb8":
        return np.ascontiguousarray(pixels).copy()
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[encoding])


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg, png, ...) as ``H x W x 3 uint8 RGB``."""
    buffer = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data, np.uint8)
    if buffer.size == 0:
        raise ImageFormatError("empty compressed image")
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFormatError(f"cannot decode compressed image (format {fmt!r}, {buffer.size} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def rgb_fields(image: np.ndarray) -> dict:
    """Fields of an rgb8 sensor_msgs/Image for an ``H x W x 3 uint8`` array."""
    height, width = image.shape[:2]
    return {"encoding": "rgb8", "height": height, "width": width, "step": width * 3, "is_bigendian": 0,
            "data": np.ascontiguousarray(image).tobytes()}


def mono8_fields(mask: np.ndarray) -> dict:
    """Fields of a mono8 sensor_msgs/Image for an ``H x W`` bool mask (255 = object)."""
    height, width = mask.shape[:2]
    return {"encoding": "mono8", "height": height, "width": width, "step": width, "is_bigendian": 0,
            "data": (mask.astype(np.uint8) * 255).tobytes()}
