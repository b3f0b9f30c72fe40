import struct
import zlib

import cv2
import numpy as np
import pytest

from finers_ros.ros.image_codec import (
    MAX_SIDE,
    ImageFormatError,
    compressed_to_rgb,
    depth_to_metres,
    image_to_rgb,
    mono8_fields,
    rgb_fields,
)


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def padded(array2d_bytes, height, row, pad):
    rows = np.frombuffer(array2d_bytes, np.uint8).reshape(height, row)
    return np.concatenate([rows, np.full((height, pad), 7, np.uint8)], 1).tobytes(), row + pad


@pytest.mark.parametrize(
    "encoding, convert",
    [
        ("rgb8", None),
        ("bgr8", cv2.COLOR_RGB2BGR),
        ("rgba8", cv2.COLOR_RGB2RGBA),
        ("bgra8", cv2.COLOR_RGB2BGRA),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_with_step_padding(rgb, encoding, convert, pad):
    pixels = rgb if convert is None else cv2.cvtColor(rgb, convert)
    data, step = padded(pixels.tobytes(), 6, pixels.shape[1] * pixels.shape[2], pad)
    assert np.array_equal(image_to_rgb(encoding, 8, 6, step, data), rgb)


def test_mono8(rgb):
    gray = rgb[..., 0].copy()
    out = image_to_rgb("mono8", 8, 6, 8, gray.tobytes())
    assert np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_scaled_by_fixed_factor(encoding, bigendian):
    values = np.array([[0, 1000], [32896, 65535]], np.uint16)
    data = values.astype(">u2" if bigendian else "<u2").tobytes()
    out = image_to_rgb(encoding, 2, 2, 4, data, is_bigendian=bigendian)
    assert out.dtype == np.uint8 and out[..., 0].tolist() == [[0, 4], [128, 255]]
    assert np.array_equal(out[..., 0], out[..., 2])


def test_mono16_brightness_does_not_depend_on_the_brightest_pixel():
    dim = np.full((2, 4), 20000, np.uint16)
    bright = dim.copy()
    bright[0, 0] = 65535
    a = image_to_rgb("mono16", 4, 2, 8, dim.tobytes())
    b = image_to_rgb("mono16", 4, 2, 8, bright.tobytes())
    assert a[1, 1, 0] == b[1, 1, 0] == round(20000 * 255 / 65535)


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16"])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 6])
def test_rgb16_and_bgr16(rgb, encoding, bigendian, pad):
    wide = rgb.astype(np.uint16) * 257  # 255 -> 65535: the 8-bit image exactly
    pixels = wide if encoding == "rgb16" else wide[..., ::-1]
    raw = np.ascontiguousarray(pixels).astype(">u2" if bigendian else "<u2").tobytes()
    data, step = padded(raw, 6, 8 * 6, pad)
    assert np.array_equal(image_to_rgb(encoding, 8, 6, step, data, is_bigendian=bigendian), rgb)


def bayer_mosaic(rgb_image, pattern):
    """Record an image as a ``pattern`` (top-left 2x2 cell, e.g. "rggb") Bayer sensor does."""
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros(rgb_image.shape[:2], rgb_image.dtype)
    for letter, (dy, dx) in zip(pattern, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb_image[dy::2, dx::2, channel[letter]]
    return mosaic


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_patterns_demosaic_to_the_right_colours(pattern, bits):
    # three flat colour patches: any mix-up of the pattern swaps red and blue or greens
    image = np.zeros((12, 24, 3), np.uint8)
    image[:, :8] = (200, 40, 10)
    image[:, 8:16] = (10, 180, 30)
    image[:, 16:] = (20, 60, 220)
    mosaic = bayer_mosaic(image, pattern)
    if bits == 16:
        mosaic = mosaic.astype(np.uint16) * 257
    out = image_to_rgb(f"bayer_{pattern}{bits}", 24, 12, 24 * bits // 8, mosaic.tobytes())
    assert out.shape == (12, 24, 3) and out.dtype == np.uint8
    for x, colour in ((3, (200, 40, 10)), (11, (10, 180, 30)), (19, (20, 60, 220))):
        patch = out[4:8, x:x + 2].astype(int)
        assert np.abs(patch - colour).max() <= 2, (pattern, x, out[5, x])


def test_bayer_needs_even_size():
    with pytest.raises(ImageFormatError, match="even width and height"):
        image_to_rgb("bayer_rggb8", 7, 6, 7, b"\0" * 42)


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_16uc1_in_millimetres(bigendian):
    mm = np.array([[0, 1000], [1234, 65535]], np.uint16)
    data, step = padded(mm.astype(">u2" if bigendian else "<u2").tobytes(), 2, 4, 4)
    depth = depth_to_metres("16UC1", 2, 2, step, data, is_bigendian=bigendian)
    assert depth.dtype == np.float32 and np.allclose(depth, [[0, 1.0], [1.234, 65.535]])


def test_depth_32fc1_in_metres():
    metres = np.array([[np.nan, 0.5], [1.25, 0.0]], np.float32)
    depth = depth_to_metres("32FC1", 2, 2, 8, metres.tobytes())
    assert np.isnan(depth[0, 0]) and depth[1, 0] == np.float32(1.25) and depth[1, 1] == 0
    depth = depth_to_metres("32FC1", 2, 2, 8, metres.astype(">f4").tobytes(), is_bigendian=True)
    assert depth[0, 1] == np.float32(0.5)


@pytest.mark.parametrize(
    "args, message",
    [
        (("rgb8", 2, 2, 6, b"\0" * 12), "unsupported depth encoding 'rgb8'"),
        (("16UC1", 4, 2, 6, b"\0" * 16), "step 6 < width 4 x 2 bytes"),
        (("32FC1", 4, 2, 16, b"\0" * 20), "data has 20 bytes"),
    ],
)
def test_bad_depth_images(args, message):
    with pytest.raises(ImageFormatError, match=message):
        depth_to_metres(*args)


@pytest.mark.parametrize(
    "encoding, code",
    [
        ("yuv422", cv2.COLOR_YUV2RGB_UYVY),
        ("uyvy", cv2.COLOR_YUV2RGB_UYVY),
        ("yuv422_yuy2", cv2.COLOR_YUV2RGB_YUY2),
        ("yuyv", cv2.COLOR_YUV2RGB_YUY2),
    ],
)
def test_yuv422_variants(encoding, code):
    # a flat colour survives the round trip within chroma rounding
    uyvy = np.zeros((4, 8, 2), np.uint8)
    y, u, v = 120, 90, 200
    if code == cv2.COLOR_YUV2RGB_UYVY:
        uyvy[..., 0] = np.tile([u, v], 4)
        uyvy[..., 1] = y
    else:
        uyvy[..., 0] = y
        uyvy[..., 1] = np.tile([u, v], 4)
    out = image_to_rgb(encoding, 8, 4, 16, uyvy.tobytes())
    expected = cv2.cvtColor(uyvy, code)
    assert out.shape == (4, 8, 3) and np.array_equal(out, expected)
    assert out[0, 0, 0] > out[0, 0, 2]  # V high: red-ish


@pytest.mark.parametrize(
    "args, message",
    [
        (("bayer_xyzw8", 8, 6, 8, b"\0" * 48), "unsupported encoding 'bayer_xyzw8'"),
        (("rgb8", 8, 6, 20, b"\0" * 200), "step 20 < width"),
        (("rgb8", 8, 6, 24, b"\0" * 100), "data has 100 bytes"),
        (("rgb8", 0, 6, 0, b""), "bad image size"),
        (("yuv422", 7, 2, 14, b"\0" * 28), "even width"),
    ],
)
def test_malformed_images(args, message):
    with pytest.raises(ImageFormatError, match=message):
        image_to_rgb(*args)


def test_compressed_round_trip_and_garbage(rgb):
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.array_equal(compressed_to_rgb("png", png.tobytes()), rgb)
    with pytest.raises(ImageFormatError, match="cannot decode"):
        compressed_to_rgb("jpeg", b"\xff\xd8garbage")
    with pytest.raises(ImageFormatError, match="empty"):
        compressed_to_rgb("jpeg", b"")


def test_output_fields(rgb):
    fields = rgb_fields(rgb)
    assert fields["step"] == 24 and len(fields["data"]) == 144
    mask = np.zeros((6, 8), bool)
    mask[1, 2] = True
    fields = mono8_fields(mask)
    assert fields["data"][1 * 8 + 2] == 255 and sum(fields["data"]) == 255


@pytest.mark.parametrize("pad", [0, 5])
def test_rgb8_is_a_fresh_writable_copy(rgb, pad):
    data, step = padded(rgb.tobytes(), 6, 24, pad)
    message = np.frombuffer(data, np.uint8).copy()  # as rclpy hands over a message's data
    out = image_to_rgb("rgb8", 8, 6, step, message)
    assert np.array_equal(out, rgb) and out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, message)


def png_header(width: int, height: int) -> bytes:
    """Return a PNG whose header says ``width x height`` grey, with a few rows of data after it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1) * 4)) + chunk(b"IEND", b""))


def jpeg_sized(width: int, height: int) -> bytes:
    """Return a small real JPEG whose start-of-frame header is rewritten to ``width x height``."""
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(jpeg.tobytes())
    sof = data.index(b"\xff\xc0")  # baseline: marker, length (2), precision (1), height, width
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_sized(width: int, height: int) -> bytes:
    """Return a small real BMP whose header is rewritten to ``width x height``."""
    ok, bmp = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(bmp.tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


@pytest.mark.parametrize("fmt, data, size", [
    ("png", png_header(20000, 12000), "20000x12000"),  # decoded, it took 7 s and 1.4 GB
    ("png", png_header(40000, 40000), "40000x40000"),  # OpenCV's own limit: its assertion
    ("png", png_header(16385, 8), "16385x8"),
    ("rgb8; jpeg compressed bgr8", jpeg_sized(30000, 100), "30000x100"),
    ("bmp", bmp_sized(20000, 100), "20000x100"),  # other formats: Pillow reads the header
    ("bmp", bmp_sized(30000, 30000), "more than"),  # past Pillow's own limit
])
def test_oversized_compressed_images_are_refused_from_their_header(fmt, data, size):
    # as raw frames are: at most MAX_SIDE a side, said in one line, nothing decoded
    with pytest.raises(ImageFormatError) as refused:
        compressed_to_rgb(fmt, data)
    message = str(refused.value)
    assert size in message and str(MAX_SIDE) in message and "\n" not in message


def test_compressed_image_at_the_size_limit_is_decoded():
    ok, png = cv2.imencode(".png", np.zeros((2, MAX_SIDE, 3), np.uint8))
    assert compressed_to_rgb("png", png.tobytes()).shape == (2, MAX_SIDE, 3)
