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
from finers_ros.depth3d import (
    CameraModel,
    DepthOptions,
    No3D,
    camera_image,
    locate_target,
    mask_in_depth_frame,
    oriented_box,
    quaternion_of,
)
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


# -- raw and rectified images (image_geometry's PinholeCameraModel semantics) ----------------
# An asymmetric distorted camera (fx != fy, principal point off centre) and the projection P of
# its rectified image, as camera_calibration writes them: 1920x1080, k1 = -0.3.
K_DISTORTED = [1000.0, 0, 950.0, 0, 990.0, 530.0, 0, 0, 1]
D_DISTORTED = (-0.3, 0.08, 0.001, -0.002, 0.0)
P_RECTIFIED = [880.0, 0, 940.0, 0, 0, 875.0, 525.0, 0, 0, 0, 1, 0]


def distorted_camera(image, p=P_RECTIFIED, d=D_DISTORTED):
    return CameraModel.from_camera_info(
        K_DISTORTED, d, "plumb_bob", 1920, 1080, p=p, image=image
    )


def test_rectified_pixel_is_back_projected_with_p():
    # the reproduction: a rectified pixel at 1 m; by hand, x = (u - cx') / fx' with P's values
    rectified = distorted_camera("rectified")
    ray = rectified.rays(np.array([1700.0]), np.array([900.0]))[0]
    assert ray == pytest.approx([(1700 - 940) / 880, (900 - 525) / 875], abs=1e-12)
    # the same pixel taken as raw (K and D) is far off: why the image kind matters
    raw_ray = distorted_camera("raw").rays(np.array([1700.0]), np.array([900.0]))[0]
    assert 1000 * np.linalg.norm(raw_ray - ray) > 50


def test_raw_and_rectified_pixels_of_one_point_give_that_point():
    # independent references: OpenCV projects known points into the raw image (K, D) and P
    # into the rectified one; image_geometry's rectifyPoint is undistortPoints(K, D, R, P)
    k = np.array(K_DISTORTED).reshape(3, 3)
    p = np.array(P_RECTIFIED).reshape(3, 4)
    points = np.array([[0.21, -0.13, 1.0], [-0.35, 0.2, 1.4], [0.02, 0.03, 0.6], [0.4, 0.25, 2.0]])
    raw_px, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), k, np.array(D_DISTORTED))
    raw_px = raw_px.reshape(-1, 2)
    homogeneous = np.column_stack([points, np.ones(len(points))]) @ p.T
    rect_px = homogeneous[:, :2] / homogeneous[:, 2:]
    rectify_point = cv2.undistortPoints(
        raw_px.reshape(-1, 1, 2), k, np.array(D_DISTORTED), R=np.eye(3), P=p
    ).reshape(-1, 2)
    assert np.allclose(rectify_point, rect_px, atol=1e-3)  # the two images agree
    for image, pixels in (("raw", raw_px), ("rectified", rect_px)):
        rays = distorted_camera(image).rays(pixels[:, 0], pixels[:, 1])
        assert np.allclose(rays * points[:, 2:], points[:, :2], atol=1e-5), image


def test_depth_registered_into_p_is_located_with_the_rectified_model():
    # depth_image_proc registers depth into the colour camera's P: the scene is rendered on
    # P's pinhole; the mask is in the (rectified) colour image of the same grid
    pinhole = CameraModel(880.0, 875.0, 940.0, 525.0, 1920, 1080)
    centre = (0.55, 0.3, 1.0)  # far from the principal point, where distortion is large
    scene = disc_scene(pinhole, centre, 0.02, TILT, height=0.03)
    depth = corrupt(scene, np.random.default_rng(5))
    mask = segmenter_mask(scene)
    rectified = locate_target(mask, depth, distorted_camera("rectified"))
    assert rectified.has_3d and error_mm(rectified, centre) < 5.0, rectified
    raw = locate_target(mask, depth, distorted_camera("raw"))
    assert error_mm(raw, centre) > 15.0  # K and D on rectified pixels: centimetres off


def test_rectified_without_distortion_or_p_is_the_raw_camera():
    # D all zero: the rectified image is the raw image, so K serves when P is unset
    k = k_of(CAMERA)
    for p in ([], [0.0] * 12):
        model = CameraModel.from_camera_info(k, [0.0] * 5, "plumb_bob", 640, 480, p=p,
                                             image="rectified")
        assert model == CAMERA
    # with P == [K | 0] both kinds are the same camera
    p = k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0]
    for image in ("raw", "rectified"):
        assert CameraModel.from_camera_info(k, [], "", 640, 480, p=p, image=image) == CAMERA


@pytest.mark.parametrize(
    "p, reason",
    [
        ([0.0] * 12, "P is all zero"),
        ([880.0, 0, 940, 0, 0, 875, 525, 0, 0, 0, 1], "P has 11 values"),
        ([880.0, 0, 940, 0, 0, -875, 525, 0, 0, 0, 1, 0], "focal lengths"),
        ([880.0, 0, 940, -52.8, 0, 875, 525, 0, 0, 0, 1, 0], "Tx=-52.8, Ty=0"),
        ([880.0, 0, 940, 0, 0, 875, 525, 3.0, 0, 0, 1, 0], "Ty=3"),
        ([880.0, 0, 940, 0, 0, float("inf"), 525, 0, 0, 0, 1, 0], "non-finite"),
    ],
)
def test_unusable_p_of_a_rectified_image_gives_its_reason(p, reason):
    with pytest.raises(No3D, match=reason):
        distorted_camera("rectified", p=p)
    assert distorted_camera("raw", p=p).fx == 1000.0  # a raw image does not use P


@pytest.mark.parametrize(
    "setting, topic, kind",
    [
        ("auto", "/camera/color/image_rect", "rectified"),
        ("auto", "/cam/image_rect_color", "rectified"),
        ("auto", "/cam/left/image_rectified/", "rectified"),
        ("auto", "/camera/camera/color/image_raw", "raw"),
        ("auto", "/cam/image_color", "raw"),
        ("auto", "/rect/camera/image_raw", "raw"),  # only the last part of the name counts
        ("auto", "/cam/rectangle_view", "raw"),  # a whole word, not a prefix
        ("raw", "/cam/image_rect", "raw"),
        ("rectified", "/cam/image_raw", "rectified"),
        # image_transport's compressed topic: the image's own name is the part before it
        ("auto", "/cam/image_rect/compressed", "rectified"),
        ("auto", "/cam/image_raw/compressed", "raw"),
    ],
)
def test_which_image_the_colour_topic_carries(setting, topic, kind):
    chosen, why = camera_image(setting, topic)
    assert chosen == kind and why and "\n" not in why
    if setting == "auto":
        image_topic = topic.rstrip("/").removesuffix("/compressed")
        assert repr(image_topic.rsplit("/", 1)[-1]) in why


def test_unknown_camera_image_setting_is_refused():
    with pytest.raises(ValueError, match="auto | raw | rectified"):
        camera_image("rect", "/cam/image_rect")


# -- sizes: registered depth is the colour size times one scale ------------------------------
@pytest.mark.parametrize(
    "depth_size, ok",
    [
        ((640, 360), True),  # half of 1280x720
        ((1280, 720), True),
        ((1920, 1080), True),
        ((427, 240), True),  # a third, rounded
        ((848, 480), False),  # a D400 depth stream, not aligned: 0.6 % off in aspect
        ((640, 480), False),
        ((1280, 721), False),
    ],
)
def test_depth_must_be_the_colour_size_scaled(depth_size, ok):
    colour = camera_for(1280, 720)
    mask = np.zeros((720, 1280), bool)
    mask[300:340, 600:660] = True
    depth = np.full(depth_size[::-1], 1.0, np.float32)
    result = locate_target(mask, depth, colour)
    assert result.has_3d == ok, result.reason
    if not ok:
        assert "not registered to the colour camera" in result.reason
        assert f"{depth_size[0]}x{depth_size[1]} is not 1280x720 scaled" in result.reason


def test_colour_frame_must_be_the_camera_info_size_scaled():
    depth = np.full((720, 1280), 1.0, np.float32)
    mask = np.zeros((720, 1282), bool)
    mask[300:340, 600:660] = True
    result = locate_target(mask, depth, camera_for(1280, 720))
    assert not result.has_3d and "colour frame does not match CameraInfo" in result.reason


# -- grasp-ready output: oriented box, covariance, points ------------------------------------
def rotation(z_deg, x_deg):
    a, b = math.radians(z_deg), math.radians(x_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ rx


def rotate_by_quaternion(q, v):
    """Rotate ``v`` by unit quaternion ``q`` (x, y, z, w): v' = v + 2w(u x v) + 2u x (u x v)."""
    u, w = np.asarray(q[:3]), q[3]
    return v + 2 * w * np.cross(u, v) + 2 * np.cross(u, np.cross(u, v))


def test_oriented_box_of_a_rotated_box_of_points(rng):
    truth = rotation(35, -25)  # columns: the box's axes in the optical frame
    sides = np.array([0.08, 0.03, 0.01])
    local = rng.uniform(-0.5, 0.5, (20000, 3)) * sides
    centre = np.array([0.1, -0.05, 0.9])
    box = oriented_box(local @ truth.T + centre, percentile=0.0)
    assert np.allclose(box.size, sides, atol=1e-3)
    assert np.allclose(box.centre, centre, atol=1e-3)
    for axis in range(3):  # same axes up to sign
        assert abs(box.axes[:, axis] @ truth[:, axis]) > 0.999
    assert box.axes[2, 2] < 0  # z towards the camera
    assert np.allclose(box.axes.T @ box.axes, np.eye(3)) and np.linalg.det(box.axes) > 0
    # a uniform side s has variance s^2 / 12 along its axis
    variances = np.diag(truth.T @ box.covariance @ truth)
    assert np.allclose(variances, sides**2 / 12, rtol=0.05)


def test_quaternion_rotates_as_the_matrix_does():
    for z_deg, x_deg in ((0, 0), (35, -25), (180, 0), (90, 179), (-120, 60)):
        matrix = rotation(z_deg, x_deg)
        q = quaternion_of(matrix)
        assert abs(np.linalg.norm(q) - 1) < 1e-12
        for v in np.eye(3):
            assert np.allclose(rotate_by_quaternion(q, v), matrix @ v, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_target_gets_an_oriented_box_along_its_surface(seed):
    # the tilted disc with flying pixels on its edge: the box lies in the disc's plane, its z
    # along the plane's normal (a plain PCA of all inliers was 12-45 degrees off on these seeds)
    scene, depth = hard_scene(seed)
    result = locate_target(segmenter_mask(scene), depth, CAMERA)
    assert result.has_3d
    q = result.obb_orientation
    normal = rotate_by_quaternion(q, np.array([0.0, 0.0, 1.0]))
    assert normal @ np.array(TILT) > math.cos(math.radians(5))  # within 5 degrees, same sense
    size = np.array(result.obb_size)
    # the 33 mm disc, less the eroded outline and its flying pixels
    assert 0.018 < size[1] <= size[0] < 0.034
    assert size[2] < 0.006  # a few mm of noise, not the 3 cm step behind it
    assert np.linalg.norm(np.subtract(result.obb_centre, CENTRE)) < 0.005
    points = result.points
    assert points.dtype == np.float32 and points.shape[1] == 3
    assert result.valid_pixels / 2 < len(points) < result.valid_pixels  # flying pixels left out
    covariance = np.array(result.covariance).reshape(3, 3)
    assert np.allclose(covariance, np.cov(points.astype(np.float64), rowvar=False), atol=1e-9)
    assert np.allclose(covariance, covariance.T)
    assert np.all(np.linalg.eigvalsh(covariance) >= 0)
    on_disc = np.abs((points - np.array(CENTRE)) @ np.array(TILT))
    assert np.percentile(on_disc, 95) < 0.003  # the kept points lie on the disc's surface
