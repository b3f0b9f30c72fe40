"""
3D target position from an aligned depth image.

Accuracy on a hard synthetic scene, and a reason for every input that cannot give a point.
"""

import math

import cv2
import numpy as np
import pytest

from finers_ros.data.synthetic_depth import (
    camera_for,
    corrupt,
    depth_to_16uc1,
    disc_scene,
    raised_mask_scene,
)
from finers_ros.depth3d import CameraModel, DepthOptions, No3D, locate_target, mask_in_depth_frame
from finers_ros.stamp_buffer import StampBuffer

CAMERA = CameraModel(600.0, 600.0, 319.5, 239.5, 640, 480)  # colour camera, 640x480
TILT = (0.0, -math.sin(math.radians(30)), -math.cos(math.radians(30)))  # plane normal, 30 deg tilt
CENTRE = (0.03, -0.02, 1.0)  # the disc's known centre, optical frame, metres
RADIUS = 10 / 600.0  # 20 pixels across at 1 m


def k_of(camera):
    return [camera.fx, 0, camera.cx, 0, camera.fy, camera.cy, 0, 0, 1]


def hard_scene(seed=0, hole_value=0.0, camera=CAMERA):
    """Tilted plane + a 3 cm raised 20-px disc, with noise, holes, flying pixels and glints."""
    scene = disc_scene(camera, CENTRE, RADIUS, TILT, height=0.03)
    depth = corrupt(scene, np.random.default_rng(seed), hole_value=hole_value)
    return scene, depth


def segmenter_mask(scene, grow_px=1):
    """Return the target's mask as a segmenter does: a pixel wider than the object."""
    kernel = np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8)
    return cv2.dilate(scene.target_mask.astype(np.uint8), kernel).astype(bool)


def error_mm(result, centre=CENTRE):
    return 1000 * float(np.linalg.norm(np.subtract(result.point, centre)))


def test_disc_scene_is_what_it_claims():
    scene = disc_scene(CAMERA, CENTRE, RADIUS, TILT, height=0.03)
    u, v = CAMERA.project(CENTRE)
    assert scene.target_mask[round(v), round(u)]
    assert abs(float(scene.depth_m[round(v), round(u)]) - CENTRE[2]) < 0.002
    width = np.count_nonzero(scene.target_mask[round(v)])
    assert 18 <= width <= 22  # a 20-pixel target
    assert scene.background_m[round(v), round(u)] > scene.depth_m[round(v), round(u)] + 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_point_within_5mm_at_1m_for_20px_target(seed, encoding):
    scene, depth = hard_scene(seed, hole_value=np.nan if encoding == "32FC1" else 0.0)
    if encoding == "16UC1":
        depth = depth_to_16uc1(depth).astype(np.float32) / 1000.0
    result = locate_target(segmenter_mask(scene), depth, CAMERA)
    assert result.has_3d and result.reason == ""
    assert error_mm(result) < 5.0, result
    lo, hi = np.array(result.extent_min), np.array(result.extent_max)
    assert np.all(lo <= result.point) and np.all(result.point <= hi)
    assert 0.02 < hi[0] - lo[0] < 0.04  # about the disc's 33 mm diameter, not the plane behind
    assert hi[2] - lo[2] < 0.03
    # the valid pixels exclude holes, glints, and the band of flying pixels
    assert 100 < result.valid_pixels < np.count_nonzero(scene.target_mask)


def test_without_erosion_and_outlier_rejection_the_edges_pull_the_point_off():
    # the same scene shows why the method has both steps: a plain mean is centimetres off
    scene, depth = hard_scene(0)
    mask = segmenter_mask(scene, grow_px=2)
    z = depth[mask]
    z = z[np.isfinite(z) & (z > 0) & (z < 10)]
    assert abs(float(z.mean()) - CENTRE[2]) > 0.005
    assert error_mm(locate_target(mask, depth, CAMERA)) < 5.0


def test_depth_at_half_resolution_scales_the_intrinsics():
    scene, _ = hard_scene(0)
    half = CameraModel(300.0, 300.0, 159.5, 119.5, 320, 240)
    assert CAMERA.scaled_to(320, 240) == half
    depth = corrupt(
        disc_scene(half, CENTRE, RADIUS, TILT, 0.03),
        np.random.default_rng(3),
        edge_px=1,
        hole_fraction=0.1,
    )
    result = locate_target(segmenter_mask(scene), depth, CAMERA)  # mask and K: colour frame
    assert result.has_3d and error_mm(result) < 5.0, result


def test_colour_frame_at_double_resolution_of_camera_info():
    # CameraInfo for 640x480 while colour and depth come at 1280x960: both are scaled
    big = CAMERA.scaled_to(1280, 960)
    scene = disc_scene(big, CENTRE, RADIUS, TILT, 0.03)
    depth = corrupt(scene, np.random.default_rng(4))
    result = locate_target(segmenter_mask(scene), depth, CAMERA)
    assert result.has_3d and error_mm(result) < 5.0, result


def test_distortion_is_undone_against_opencv_projection():
    d = (0.12, -0.25, 0.001, -0.002, 0.08)
    camera = CameraModel.from_camera_info(k_of(CAMERA), d, "plumb_bob", 640, 480)
    points = np.array([[0.2, -0.1, 1.0], [-0.3, 0.25, 1.5], [0.0, 0.0, 2.0]])
    k = np.array(k_of(CAMERA)).reshape(3, 3)
    pixels, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), k, np.array(d))
    rays = camera.rays(pixels[:, 0, 0], pixels[:, 0, 1])
    assert np.allclose(rays * points[:, 2:], points[:, :2], atol=1e-4)
    fisheye = CameraModel.from_camera_info(k_of(CAMERA), d[:4], "equidistant", 640, 480)
    pixels, _ = cv2.fisheye.projectPoints(
        points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, np.array(d[:4])
    )
    assert np.allclose(
        fisheye.rays(pixels[:, 0, 0], pixels[:, 0, 1]) * points[:, 2:], points[:, :2], atol=1e-4
    )


def test_tiny_target_keeps_unerodable_mask():
    # 3 x 3 depth pixels: erosion would leave one, so the whole mask is used
    depth = np.full((480, 640), 1.0, np.float32)
    depth[100:103, 200:203] = 0.9
    mask = np.zeros((480, 640), bool)
    mask[100:103, 200:203] = True
    result = locate_target(mask, depth, CAMERA, DepthOptions(min_valid_pixels=5))
    assert result.has_3d and result.valid_pixels == 9 and abs(result.point[2] - 0.9) < 1e-6


def test_mask_sampling_on_a_coarser_depth_grid():
    mask = np.zeros((480, 640), bool)
    mask[100:110, 200:220] = True
    sub, x0, y0 = mask_in_depth_frame(mask, (240, 320))
    assert (x0, y0) == (100, 50) and sub.shape == (5, 10) and sub.all()


def test_raised_mask_scene_centre_is_recovered():
    camera = camera_for(1920, 1080)
    mask = np.zeros((2160, 3840), bool)
    cv2.circle(mask.view(np.uint8), (2900, 700), 14, 1, -1)
    scene = raised_mask_scene(camera, mask, plane_z=1.2, height=0.04)
    depth = corrupt(scene, np.random.default_rng(0), edge_px=1)
    result = locate_target(mask, depth, camera)
    assert result.has_3d and error_mm(result, scene.centre) < 5.0, (result, scene.centre)


@pytest.mark.parametrize(
    "case, reason",
    [
        ("empty mask", "empty target mask"),
        ("all holes", "valid depth pixels"),
        ("all NaN", "valid depth pixels"),
        ("beyond range", "> 10 m are invalid"),
        ("mask off the depth", "covers no depth pixel"),
        ("depth aspect", "registered to the colour camera"),
        ("colour aspect", "does not match CameraInfo"),
        ("depth not 2-D", "expected h x w"),
        ("scattered depths", "agree on the target's depth"),
    ],
)
def test_every_invalid_depth_input_gives_its_reason(case, reason):
    scene, depth = hard_scene(0)
    mask = segmenter_mask(scene)
    if case == "empty mask":
        mask = np.zeros_like(mask)
    elif case == "all holes":
        depth = np.where(mask, 0.0, depth)
    elif case == "all NaN":
        depth = np.where(mask, np.nan, depth)
    elif case == "beyond range":
        depth = np.where(mask, 12.0, depth)
    elif case == "mask off the depth":
        # one colour pixel that no pixel centre of a half-resolution depth image falls on
        mask = np.zeros_like(mask)
        mask[0, 0] = True
        depth = cv2.resize(depth, (320, 240), interpolation=cv2.INTER_NEAREST)
    elif case == "depth aspect":
        depth = cv2.resize(depth, (640, 360), interpolation=cv2.INTER_NEAREST)
    elif case == "colour aspect":
        mask = cv2.resize(
            mask.astype(np.uint8), (640, 360), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    elif case == "depth not 2-D":
        depth = np.dstack([depth, depth])
    elif case == "scattered depths":
        depth = np.where(mask, np.random.default_rng(0).uniform(0.5, 5.0, depth.shape), depth)
        result = locate_target(
            mask, depth, CAMERA, DepthOptions(mad_k=0.01, min_spread_m=0.0, min_valid_pixels=50)
        )
        assert not result.has_3d and reason in result.reason
        return
    result = locate_target(mask, depth, CAMERA)
    assert not result.has_3d and result.point is None
    assert reason in result.reason, result.reason


@pytest.mark.parametrize(
    "k, d, model, size, reason",
    [
        ([0.0] * 9, [], "plumb_bob", (640, 480), "K is all zero"),
        ([600, 0, 320, 0, -1, 240, 0, 0, 1], [], "plumb_bob", (640, 480), "focal lengths"),
        (
            [600, 0, 320, 0, 600, 240, 0, 0, 1],
            [0.1, 0, 0, 0, 0],
            "kannala_brandt_x",
            (640, 480),
            "distortion model 'kannala_brandt_x' is not handled",
        ),
        (
            [600, 0, 320, 0, 600, 240, 0, 0, 1],
            [0.1, 0.2],
            "equidistant",
            (640, 480),
            "needs 4 coefficients",
        ),
        (
            [600, 0, 320, 0, 600, 240, 0, 0, 1],
            [float("nan")],
            "plumb_bob",
            (640, 480),
            "non-finite",
        ),
        ([600, 0, 320, 0, 600, 240], [], "plumb_bob", (640, 480), "K has 6 values"),
        ([600, 0, 320, 0, 600, 240, 0, 0, 1], [], "plumb_bob", (0, 0), "size 0x0 is not set"),
    ],
)
def test_every_unusable_camera_info_gives_its_reason(k, d, model, size, reason):
    with pytest.raises(No3D, match=reason.replace("(", r"\(")):
        CameraModel.from_camera_info(k, d, model, *size)


def test_camera_info_accepted_forms():
    k = k_of(CAMERA)
    # an unknown model with all-zero D is a pinhole camera, not a reason to refuse
    assert (
        CameraModel.from_camera_info(k, [0.0] * 5, "some_vendor_model", 640, 480).distortion_model
        == ""
    )
    assert CameraModel.from_camera_info(k, [], "", 640, 480) == CAMERA
    with pytest.raises(No3D, match="binning"):
        CameraModel.from_camera_info(k, [], "plumb_bob", 640, 480, binning_x=2)


def test_options_are_validated():
    with pytest.raises(ValueError, match="max_range_m=0"):
        DepthOptions(max_range_m=0)


def test_stamp_pairing_nearest_within_slop():
    buffer = StampBuffer(capacity=3)
    assert buffer.nearest(0, 50_000_000) == (None, "no depth frame received")
    for ms in (0, 33, 66, 100):  # the oldest (0 ms) falls out of the 3-frame buffer
        buffer.add(1_000_000_000 + ms * 1_000_000, f"depth@{ms}")
    assert len(buffer) == 3
    assert buffer.nearest(1_070_000_000, 50_000_000) == ("depth@66", "")
    assert buffer.nearest(1_000_000_000, 50_000_000) == ("depth@33", "")
    item, reason = buffer.nearest(1_200_000_000, 50_000_000)
    assert item is None and "no depth frame within 50 ms" in reason and "100 ms away" in reason
    item, reason = buffer.nearest(900_000_000, 50_000_000)
    assert item is None and "133 ms away" in reason


@pytest.mark.parametrize("count", [1, 3, 6, 9, 15])
def test_distortion_with_a_coefficient_count_opencv_cannot_use_is_a_reason(count):
    # plumb_bob has 5, rational_polynomial 8; OpenCV raised a multi-line assertion for others
    with pytest.raises(No3D, match=f"plumb_bob distortion has {count} coefficients"):
        CameraModel.from_camera_info(k_of(CAMERA), [0.01] * count, "plumb_bob", 640, 480)
    for ok in (4, 5, 8, 12, 14):
        camera = CameraModel.from_camera_info(k_of(CAMERA), [0.01] * ok, "plumb_bob", 640, 480)
        assert camera.rays(np.array([10.0]), np.array([20.0])).shape == (1, 2)


def test_camera_info_roi_of_the_full_image_is_no_roi():
    # sensor_msgs/CameraInfo: an roi of all zeros or of the full resolution means "full image"
    k = k_of(CAMERA)
    full = CameraModel.from_camera_info(
        k, [], "plumb_bob", 640, 480, roi_width=640, roi_height=480
    )
    assert full == CAMERA
    with pytest.raises(No3D, match="region of interest"):
        CameraModel.from_camera_info(k, [], "plumb_bob", 640, 480, roi_width=320, roi_height=240)
