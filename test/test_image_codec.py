import cv2
import numpy as np
import pytest

from finers_ros.ros.image_codec import ImageFormatError, compressed_to_rgb, image_to_rgb, mono8_fields, rgb_fields


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def padded(array2d_bytes, height, row, pad):
    rows = np.frombuffer(array2d_bytes, np.uint8).reshape(height, row)
    return np.concatenate([rows, np.full((height, pad), 7, np.uint8)], 1).tobytes(), row + pad


@pytest.mark.parametrize("encoding, convert", [
    ("rgb8", None), ("bgr8", cv2.COLOR_RGB2BGR), ("rgba8", cv2.COLOR_RGB2RGBA), ("bgra8", cv2.COLOR_RGB2BGRA),
])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_with_step_padding(rgb, encoding, convert, pad):
    pixels = rgb if convert is None else cv2.cvtColor(rgb, convert)
    data, step = padded(pixels.tobytes(), 6, pixels.shape[1] * pixels.shape[2], pad)
    assert np.array_equal(image_to_rgb(encoding, 8, 6, step, data), rgb)


def test_mono8(rgb):
    gray = rgb[..., 0].copy()
    out = image_to_rgb("mono8", 8, 6, 8, gray.tobytes())
    assert np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_scaled_to_full_range(bigendian):
    values = np.array([[0, 1000], [2000, 4000]], np.uint16)
    data = values.astype(">u2" if bigendian else "<u2").tobytes()
    out = image_to_rgb("mono16", 2, 2, 4, data, is_bigendian=bigendian)
    assert out[..., 0].tolist() == [[0, 63], [127, 255]]


@pytest.mark.parametrize("encoding, code", [("yuv422", cv2.COLOR_YUV2RGB_UYVY), ("uyvy", cv2.COLOR_YUV2RGB_UYVY),
                                            ("yuv422_yuy2", cv2.COLOR_YUV2RGB_YUY2), ("yuyv", cv2.COLOR_YUV2RGB_YUY2)])
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


@pytest.mark.parametrize("args, message", [
    (("bayer_rggb8", 8, 6, 8, b"\0" * 48), "unsupported encoding"),
    (("rgb8", 8, 6, 20, b"\0" * 200), "step 20 < width"),
    (("rgb8", 8, 6, 24, b"\0" * 100), "data has 100 bytes"),
    (("rgb8", 0, 6, 0, b""), "bad image size"),
    (("yuv422", 7, 2, 14, b"\0" * 28), "even width"),
])
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
