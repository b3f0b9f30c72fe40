"""
sensor_msgs/Image and CompressedImage pixels <-> numpy, without cv_bridge.

Works on the message's fields (no rclpy import), so it is tested per encoding directly.
Every decoder returns ``H x W x 3 uint8 RGB`` and raises ``ImageFormatError`` with a
one-line reason for anything it cannot read (wrong step or size, unknown encoding).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..image_header import HeaderTooLarge, declared_size

# encoding -> (channels per pixel, dtype); bytes per pixel = channels x itemsize
_LAYOUT = {
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "8UC3": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
    "8UC4": (4, np.uint8),
    "mono8": (1, np.uint8),
    "8UC1": (1, np.uint8),
    "mono16": (1, np.uint16),
    "16UC1": (1, np.uint16),
    "rgb16": (3, np.uint16),
    "bgr16": (3, np.uint16),
    "yuv422": (2, np.uint8),
    "uyvy": (2, np.uint8),
    "UYVY": (2, np.uint8),
    "yuv422_yuy2": (2, np.uint8),
    "yuyv": (2, np.uint8),
    "YUYV": (2, np.uint8),
}
# Bayer mosaics, named by their top-left 2x2 cell as in sensor_msgs; OpenCV names the same
# patterns by the second row's second and third pixels (rggb = "BG"), in OpenCV 4 and 5 alike.
_BAYER = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}
for _pattern in _BAYER:
    _LAYOUT[f"bayer_{_pattern}8"] = (1, np.uint8)
    _LAYOUT[f"bayer_{_pattern}16"] = (1, np.uint16)
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "8UC3": cv2.COLOR_BGR2RGB,
    "bgr16": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "8UC4": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "8UC1": cv2.COLOR_GRAY2RGB,
    "mono16": cv2.COLOR_GRAY2RGB,
    "16UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "UYVY": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
    "YUYV": cv2.COLOR_YUV2RGB_YUY2,
}
_TO_RGB.update({f"bayer_{p}{bits}": code for p, code in _BAYER.items() for bits in (8, 16)})
SUPPORTED_ENCODINGS = tuple(_LAYOUT)
# depth encodings -> metres per stored unit (REP 118: 16UC1 in millimetres, 32FC1 in metres)
DEPTH_ENCODINGS = {
    "16UC1": (np.uint16, 0.001),
    "mono16": (np.uint16, 0.001),
    "32FC1": (np.float32, 1.0),
}
MAX_SIDE = 16384
_SIXTEEN_TO_EIGHT = 255.0 / 65535.0  # fixed: scaling by each frame's maximum makes brightness jump


class ImageFormatError(ValueError):
    pass


def _pixels(
    encoding: str,
    width: int,
    height: int,
    step: int,
    data,
    channels: int,
    dtype,
    is_bigendian: bool,
) -> np.ndarray:
    """``H x W (x C)`` array of ``dtype`` in native byte order from an Image's fields."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ImageFormatError(f"bad image size {width}x{height}")
    itemsize = np.dtype(dtype).itemsize
    bpp = channels * itemsize
    row = width * bpp
    if step < row:
        raise ImageFormatError(f"step {step} < width {width} x {bpp} bytes for {encoding}")
    buffer = (
        np.frombuffer(data, np.uint8)
        if not isinstance(data, np.ndarray)
        else data.view(np.uint8).ravel()
    )
    if buffer.size < step * (height - 1) + row:
        raise ImageFormatError(
            f"data has {buffer.size} bytes, {encoding} {width}x{height} step {step} "
            f"needs {step * height}"
        )
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row), strides=(step, 1))
    if itemsize > 1:
        order = ">" if is_bigendian else "<"
        typed = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order)).astype(dtype)
    else:
        typed = rows
    return typed.reshape(height, width, channels) if channels > 1 else typed.reshape(height, width)


def image_to_rgb(
    encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False
) -> np.ndarray:
    """
    Pixels of a sensor_msgs/Image as ``H x W x 3 uint8 RGB`` (always a fresh array).

    16-bit encodings (mono16, rgb16, bgr16, 16-bit Bayer) are scaled by the fixed factor
    255/65535, so a frame's brightness does not depend on its brightest pixel. Bayer mosaics
    are demosaiced bilinearly by OpenCV.
    """
    if encoding not in _LAYOUT:
        raise ImageFormatError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    channels, dtype = _LAYOUT[encoding]
    if channels == 2 and width % 2:
        raise ImageFormatError(f"{encoding} needs an even width, got {width}")
    if encoding.startswith("bayer_") and (width % 2 or height % 2 or width < 2 or height < 2):
        raise ImageFormatError(f"{encoding} needs an even width and height, got {width}x{height}")
    raw = _pixels(encoding, width, height, step, data, channels, dtype, bool(is_bigendian))
    if encoding == "rgb8":
        return np.array(raw, order="C")  # the one copy, also from rows with a padded step
    pixels = np.ascontiguousarray(raw)
    bayer = encoding.startswith("bayer_")
    if bayer:
        pixels = cv2.cvtColor(pixels, _TO_RGB[encoding])  # demosaic at full bit depth
    if pixels.dtype == np.uint16:
        pixels = cv2.convertScaleAbs(pixels, alpha=_SIXTEEN_TO_EIGHT)
    if bayer or encoding == "rgb16":
        return pixels
    return cv2.cvtColor(pixels, _TO_RGB[encoding])


def depth_to_metres(
    encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False
) -> np.ndarray:
    """
    Decode a depth sensor_msgs/Image to ``H x W float32`` z in metres (0 or NaN: none).

    ``16UC1`` (and ``mono16``, which some drivers use for it) holds millimetres, ``32FC1``
    metres, as REP 118 and RGB-D drivers have it.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ImageFormatError(
            f"unsupported depth encoding {encoding!r}; supported: 16UC1 (mm), 32FC1 (m)"
        )
    dtype, scale = DEPTH_ENCODINGS[encoding]
    values = _pixels(encoding, width, height, step, data, 1, dtype, bool(is_bigendian))
    return (
        values.astype(np.float32) * np.float32(scale)
        if scale != 1.0
        else values.astype(np.float32)
    )


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """
    Decode a sensor_msgs/CompressedImage (jpeg, png, ...) to ``H x W x 3 uint8 RGB``.

    The size its header declares is checked first, against ``MAX_SIDE`` as raw frames are:
    a larger image is refused without decoding it.
    """
    raw = bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data
    buffer = np.frombuffer(raw, np.uint8)
    if buffer.size == 0:
        raise ImageFormatError("empty compressed image")
    try:
        size = declared_size(raw)
    except HeaderTooLarge as exc:
        raise ImageFormatError(f"compressed image of {exc} (at most {MAX_SIDE} pixels a "
                               f"side): not decoded") from None
    if size is not None and not (0 < size[0] <= MAX_SIDE and 0 < size[1] <= MAX_SIDE):
        raise ImageFormatError(f"compressed image is {size[0]}x{size[1]} (at most "
                               f"{MAX_SIDE} pixels a side): not decoded")
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's multi-line assertion text: its last line says why
        reason = [line for line in str(exc).splitlines() if line.strip()][-1:] or ["?"]
        raise ImageFormatError(
            f"cannot decode compressed image (format {fmt!r}, {buffer.size} bytes): "
            f"{reason[0].strip()}"
        ) from None
    if image is None:
        raise ImageFormatError(
            f"cannot decode compressed image (format {fmt!r}, {buffer.size} bytes)"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def rgb_fields(image: np.ndarray) -> dict:
    """Fields of an rgb8 sensor_msgs/Image for an ``H x W x 3 uint8`` array."""
    height, width = image.shape[:2]
    return {
        "encoding": "rgb8",
        "height": height,
        "width": width,
        "step": width * 3,
        "is_bigendian": 0,
        "data": np.ascontiguousarray(image).tobytes(),
    }


def mono8_fields(mask: np.ndarray) -> dict:
    """Fields of a mono8 sensor_msgs/Image for an ``H x W`` bool mask (255 = object)."""
    height, width = mask.shape[:2]
    return {
        "encoding": "mono8",
        "height": height,
        "width": width,
        "step": width,
        "is_bigendian": 0,
        # bool -> 0/255 in one pass (no uint8 temporary of the 4K frame), then the bytes
        "data": np.multiply(np.asarray(mask, bool), np.uint8(255), dtype=np.uint8).tobytes(),
    }


def image_view(encoding: str, width: int, height: int, step: int, data,
               is_bigendian: bool = False):
    """
    Return a ``FrameView`` of a sensor_msgs/Image for the tracker (rgb8/bgr8: no copy).

    The tracker reads a few windows per frame, so a 25 MB 4K frame is viewed where it lies
    (the message's buffer); other encodings are decoded whole (``image_to_rgb``).
    """
    from ..tracking.frames import FrameView

    if encoding in ("rgb8", "bgr8", "8UC3"):
        pixels = _pixels(encoding, width, height, step, data, 3, np.uint8, False)
        return FrameView(pixels, "rgb" if encoding == "rgb8" else "bgr")
    return FrameView(image_to_rgb(encoding, width, height, step, data, is_bigendian))
