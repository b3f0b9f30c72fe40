"""
3D target positions with asymmetric cameras, targets on the image edges and exact thresholds.

Real cameras have fx != fy and a principal point off centre; targets touch the frame's edge;
a depth lands exactly on the range limit or the outlier spread. Scenes here are hand-built
depth images (flat or stepped) whose answer is known in closed form, so each check is exact.
"""

import cv2
import numpy as np
import pytest

from finers_ros.depth3d import (
    CameraModel,
    DepthOptions,
    No3D,
    camera_image,
    locate_target,
    mask_in_depth_frame,
    oriented_box,
    scale_between,
)

# an asymmetric camera: fx != fy, principal point off the image centre
ASYM = CameraModel(500.0, 700.0, 300.25, 200.75, 640, 480)
K_ASYM = [500.0, 0, 300.25, 0, 700.0, 200.75, 0, 0, 1]
EXACT = DepthOptions(erosion_px=0)  # every mask pixel counts (no erosion)


def flat(z, shape=(480, 640)):
    return np.full(shape, z, np.float64)


def square_mask(x0, y0, side, shape=(480, 640)):
    mask = np.zeros(shape, bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def test_asymmetric_camera_back_projects_each_axis_with_its_own_focal_length():
    result = locate_target(square_mask(400, 100, 11), flat(1.2), ASYM, EXACT)
    # the median pixel of an 11x11 square at (400, 100) is (405, 105)
    assert result.point == pytest.approx(
        ((405 - 300.25) / 500 * 1.2, (105 - 200.75) / 700 * 1.2, 1.2), abs=1e-12)
    assert ASYM.project(result.point) == pytest.approx((405, 105), abs=1e-9)
    assert result.valid_pixels == 121 and result.reason == ""


def test_project_puts_a_point_on_its_pixel():
    assert ASYM.project((0.5, -0.25, 2.0)) == pytest.approx(
        (500 * 0.25 + 300.25, 700 * -0.125 + 200.75))


def test_extent_is_the_percentile_window_of_the_points():
    mask = np.zeros((480, 640), bool)
    mask[200, 100:150] = True  # a row of 50 pixels
    options = DepthOptions(erosion_px=0, extent_percentile=10.0)
    result = locate_target(mask, flat(2.0), ASYM, options)
    xs = (np.arange(100, 150) - 300.25) / 500 * 2.0
    assert result.extent_min[0] == pytest.approx(np.percentile(xs, 10), abs=1e-12)
    assert result.extent_max[0] == pytest.approx(np.percentile(xs, 90), abs=1e-12)
    # the oriented box spans the same window along the row
    assert result.obb_size[0] == pytest.approx(np.percentile(xs, 90) - np.percentile(xs, 10))


def test_a_depth_exactly_at_the_range_limit_is_valid():
    mask = square_mask(300, 200, 4)
    at_limit = locate_target(mask, flat(10.0), ASYM, EXACT)
    assert at_limit.has_3d and at_limit.point[2] == 10.0
    beyond = locate_target(mask, flat(np.nextafter(10.0, 11.0)), ASYM, EXACT)
    assert beyond.reason == ("0 valid depth pixels of 16 under the mask (need 5; 0, NaN and > "
                             "10 m are invalid)")


def test_exactly_min_valid_pixels_are_enough():
    mask = square_mask(300, 200, 3)
    depth = flat(1.0)
    depth[200, 300:303] = 0.0
    depth[201, 300] = 0.0  # 4 holes: 5 valid of 9
    result = locate_target(mask, depth, ASYM, EXACT)
    assert result.has_3d and result.valid_pixels == 5
    depth[201, 301] = np.nan  # 4 valid
    result = locate_target(mask, depth, ASYM, EXACT)
    assert result.reason == ("4 valid depth pixels of 9 under the mask (need 5; 0, NaN and > "
                             "10 m are invalid)")
    assert result.valid_pixels == 0 and result.point is None


def test_outliers_are_judged_by_the_robust_standard_deviation():
    mask = square_mask(300, 200, 10)
    depth = flat(1.0)
    block = depth[200:210, 300:310].reshape(-1)  # the 100 mask pixels, 40 of them at 1.000 m
    block[40:65], block[65:90], block[90:] = 1.01, 0.99, 1.012
    depth[200:210, 300:310] = block.reshape(10, 10)
    # MAD 1 cm: robust sigma 1.4826 cm, so 1 sigma keeps the 1.2 cm pixels, 0.75 sigma not
    one = DepthOptions(erosion_px=0, min_spread_m=0.0, mad_k=1.0)
    assert locate_target(mask, depth, ASYM, one).valid_pixels == 100
    three_quarters = DepthOptions(erosion_px=0, min_spread_m=0.0, mad_k=0.75)
    assert locate_target(mask, depth, ASYM, three_quarters).valid_pixels == 90


def test_the_spread_floor_keeps_a_flat_targets_ripple():
    mask = square_mask(300, 200, 10)
    depth = flat(1.0)
    depth[200:204, 300:310] = 1.02  # 40 of 100 pixels 2 cm off; MAD is 0
    strict = DepthOptions(erosion_px=0, min_spread_m=0.0)
    assert locate_target(mask, depth, ASYM, strict).valid_pixels == 60
    floor = DepthOptions(erosion_px=0, min_spread_m=0.025)
    assert locate_target(mask, depth, ASYM, floor).valid_pixels == 100


def test_a_depth_exactly_at_the_outlier_spread_is_an_inlier():
    mask = square_mask(300, 200, 3)
    depth = flat(1.0)
    depth[200, 300] = 1.0 + 2.0 ** -7  # exactly min_spread_m off the median (MAD is 0)
    options = DepthOptions(erosion_px=0, min_spread_m=2.0 ** -7)
    assert locate_target(mask, depth, ASYM, options).valid_pixels == 9


def test_too_few_inliers_is_a_reason_with_the_count():
    mask = square_mask(300, 200, 3)
    depth = flat(1.0)
    depth[200:202, 300:303] = 3.0  # 6 far pixels, 3 near: the median is far, 6 agree
    options = DepthOptions(erosion_px=0, min_valid_pixels=7)
    assert locate_target(mask, depth, ASYM, options).reason == (
        "6 depth pixels agree on the target's depth (need 7)")
    exactly = DepthOptions(erosion_px=0, min_valid_pixels=6)
    assert locate_target(mask, depth, ASYM, exactly).valid_pixels == 6


def rounded_square(side=5):
    """Return a side x side mask without its four corners (in the depth frame)."""
    mask = square_mask(300, 200, side)
    for y in (200, 200 + side - 1):
        for x in (300, 300 + side - 1):
            mask[y, x] = False
    return mask


def test_erosion_uses_a_round_kernel_and_backs_off_one_pixel_at_a_time():
    depth = flat(1.0)
    # erosion by 1 (a 3x3 round kernel, a cross): the 3x3 interior of a cornerless 5x5 square
    one = DepthOptions(erosion_px=1, min_valid_pixels=9)
    assert locate_target(rounded_square(), depth, ASYM, one).valid_pixels == 9
    # erosion by 2 leaves 1 pixel of a 5x5 square: too few, so by 1 (9), not by 0 (25)
    two = DepthOptions(erosion_px=2, min_valid_pixels=5)
    assert locate_target(square_mask(300, 200, 5), depth, ASYM, two).valid_pixels == 9
    # exactly enough after erosion by 1: kept
    assert locate_target(square_mask(300, 200, 7), depth, ASYM,
                         DepthOptions(erosion_px=1, min_valid_pixels=25)).valid_pixels == 25


@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
def test_a_target_on_the_frames_edge_keeps_its_edge_pixels(corner):
    mask = np.zeros((480, 640), bool)
    depth = flat(3.0)
    if corner == "top-left":
        mask[0, 0:6] = True  # one row, on the first row and column
        depth[0, :] = 1.0
    else:
        mask[479, 634:640] = True
        depth[479, :] = 1.0
    result = locate_target(mask, depth, ASYM, EXACT)
    assert result.valid_pixels == 6 and result.point[2] == 1.0


def test_mask_sampling_at_the_edges_of_a_half_resolution_depth_grid():
    mask = np.zeros((480, 640), bool)
    mask[0:2, 0:4] = True  # the top-left 2x2 depth pixels
    sub, x0, y0 = mask_in_depth_frame(mask, (240, 320))
    assert (x0, y0) == (0, 0) and sub.shape == (1, 2) and sub.all()
    mask[:] = False
    mask[478:480, 636:640] = True  # the bottom-right 2x2 depth pixels
    sub, x0, y0 = mask_in_depth_frame(mask, (240, 320))
    assert (x0, y0) == (318, 239) and sub.shape == (1, 2) and sub.all()
    empty, x0, y0 = mask_in_depth_frame(np.zeros((480, 640), bool), (240, 320))
    assert empty.shape == (0, 0) and empty.dtype == bool and (x0, y0) == (0, 0)


def test_a_distorted_asymmetric_camera_undoes_opencvs_projection_exactly():
    d = (-0.28, 0.07, 0.0012, -0.0015, 0.01)
    camera = CameraModel.from_camera_info(K_ASYM, d, "plumb_bob", 640, 480)
    points = np.array([[0.3, -0.2, 1.0], [-0.25, 0.15, 1.2], [0.05, 0.1, 0.8]])
    pixels, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3),
                                  np.array(K_ASYM).reshape(3, 3), np.array(d))
    rays = camera.rays(pixels[:, 0, 0], pixels[:, 0, 1])
    np.testing.assert_allclose(rays, points[:, :2] / points[:, 2:], atol=1e-7)


def test_a_fisheye_asymmetric_camera_undoes_opencvs_projection_exactly():
    d = (0.05, -0.01, 0.002, -0.0005)
    camera = CameraModel.from_camera_info(K_ASYM, d, "equidistant", 640, 480)
    points = np.array([[[0.3, -0.2, 1.0]], [[-0.25, 0.15, 1.2]], [[0.05, 0.1, 0.8]]])
    pixels, _ = cv2.fisheye.projectPoints(points, np.zeros(3), np.zeros(3),
                                          np.array(K_ASYM).reshape(3, 3), np.array(d))
    rays = camera.rays(pixels[:, 0, 0], pixels[:, 0, 1])
    np.testing.assert_allclose(rays, points[:, 0, :2] / points[:, 0, 2:], atol=1e-7)


def test_a_distorted_camera_scaled_to_the_depth_size_keeps_its_distortion():
    d = (-0.28, 0.07, 0.0012, -0.0015, 0.01)
    full = CameraModel.from_camera_info(K_ASYM, d, "plumb_bob", 640, 480)
    half = full.scaled_to(320, 240)
    u, v = np.array([10.0, 300.0, 315.0]), np.array([5.0, 120.0, 230.0])
    # depth pixel (u, v) covers colour pixels whose centre is (2u + 0.5, 2v + 0.5)
    np.testing.assert_allclose(half.rays(u, v), full.rays(2 * u + 0.5, 2 * v + 0.5), atol=1e-9)


def test_depth_one_pixel_off_the_exact_scale_is_rounding_not_another_camera():
    assert scale_between((640, 480), (321, 240), "depth") == (321 / 640, 0.5)
    assert scale_between((480, 640), (240, 321), "depth") == (0.5, 321 / 640)
    with pytest.raises(No3D) as caught:
        scale_between((640, 480), (300, 300), "depth image is not registered")
    assert str(caught.value) == ("depth image is not registered: 300x300 is not 640x480 "
                                 "scaled (aspect 1.0000 vs 1.3333)")


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"width": 0}, "CameraInfo size 0x480 is not set"),
        ({"height": 0}, "CameraInfo size 640x0 is not set"),
        ({"k": [0.0] * 9}, "CameraInfo K is all zero (camera not calibrated)"),
        ({"k": [0, 0, 300, 0, 700, 200, 0, 0, 1]},
         "CameraInfo K has focal lengths fx=0, fy=700 (must be > 0)"),
        ({"k": [500, 0, 300, 0, 0, 200, 0, 0, 1]},
         "CameraInfo K has focal lengths fx=500, fy=0 (must be > 0)"),
        ({"binning_y": 2}, "CameraInfo with binning or a region of interest is not handled"),
        ({"d": [0.1, float("inf")]}, "CameraInfo D has non-finite coefficients"),
        ({"d": [0.1], "distortion_model": "pinhole_x"},
         "distortion model 'pinhole_x' is not handled (supported: plumb_bob, "
         "rational_polynomial, equidistant, or all-zero D)"),
        ({"d": [0.1] * 6},
         "plumb_bob distortion has 6 coefficients (need 4, 5, 8, 12, 14)"),
        ({"image": "rectified", "p": [0.0] * 11 + [1.0]},
         "CameraInfo P has focal lengths fx=0, fy=0 (must be > 0)"),
        ({"image": "rectified", "p": [500, 0, 300, 0, 0, 0, 200, 0, 0, 0, 1, 0]},
         "CameraInfo P has focal lengths fx=500, fy=0 (must be > 0)"),
        ({"image": "rectified", "p": [500, 0, 300, 0.1, 0, 700, 200, 0, 0, 0, 1, 0]},
         "CameraInfo P has Tx=0.1, Ty=0 (a stereo pair's second camera): its points would "
         "be in the first camera's frame, not the image's"),
        ({"image": "rectified", "d": [0.1] * 5, "p": [0.0] * 12},
         "CameraInfo P is all zero: a rectified image (depth_camera_model rectified) is "
         "back-projected with P"),
    ],
)
def test_each_unusable_camera_info_is_one_exact_line(change, reason):
    fields = {"k": K_ASYM, "d": [], "distortion_model": "plumb_bob", "width": 640,
              "height": 480, **change}
    with pytest.raises(No3D) as caught:
        CameraModel.from_camera_info(**fields)
    assert str(caught.value) == reason


def test_camera_info_without_binning_and_any_positive_focal_length_is_accepted():
    model = CameraModel.from_camera_info(K_ASYM, [], "plumb_bob", 640, 480,
                                         binning_x=1, binning_y=1)
    assert (model.fx, model.fy, model.cx, model.cy) == (500.0, 700.0, 300.25, 200.75)
    small = CameraModel.from_camera_info([0.5, 0, 0.5, 0, 0.5, 0.5, 0, 0, 1], [], "", 640, 480)
    assert (small.fx, small.fy) == (0.5, 0.5)
    with pytest.raises(ValueError, match=r"^image='mono' \(raw \| rectified\)$"):
        CameraModel.from_camera_info(K_ASYM, [], "", 640, 480, image="mono")


def test_a_rectified_image_without_distortion_uses_p_when_it_differs_from_k():
    p = [520.0, 0, 310.0, 0, 0, 690.0, 205.0, 0, 0, 0, 1, 0]  # depth registered into P
    model = CameraModel.from_camera_info(K_ASYM, [0.0] * 5, "plumb_bob", 640, 480, p=p,
                                         image="rectified")
    assert (model.fx, model.fy, model.cx, model.cy) == (520.0, 690.0, 310.0, 205.0)


@pytest.mark.parametrize("topic, kind", [("image_rect", "rectified"), ("image_raw", "raw"),
                                         ("/cam/color/image_rect_color/", "rectified")])
def test_a_topic_name_without_a_namespace_says_which_image(topic, kind):
    assert camera_image("auto", topic)[0] == kind


@pytest.mark.parametrize(
    "options, ok",
    [
        ({"max_range_m": 0.5}, True), ({"erosion_px": 0}, True), ({"erosion_px": 10}, True),
        ({"extent_percentile": 0.0}, True), ({"extent_percentile": 49.9}, True),
        ({"min_valid_pixels": 1}, True), ({"mad_k": 0.01}, True), ({"min_spread_m": 0.0}, True),
        ({"erosion_px": 11}, False), ({"extent_percentile": 50.0}, False),
        ({"mad_k": 0.0}, False), ({"min_valid_pixels": 0}, False), ({"max_range_m": 0.0}, False),
    ],
)
def test_depth_options_limits(options, ok):
    if ok:
        DepthOptions(**options)
    else:
        with pytest.raises(ValueError, match="^invalid depth options: "):
            DepthOptions(**options)


def test_every_bad_depth_option_is_named_in_one_line():
    with pytest.raises(ValueError) as caught:
        DepthOptions(max_range_m=-1.0, erosion_px=11, mad_k=0.0, min_spread_m=-0.1,
                     extent_percentile=50.0, min_valid_pixels=0)
    assert str(caught.value) == (
        "invalid depth options: max_range_m=-1.0 (must be > 0); erosion_px=11 (0..10); "
        "mad_k=0.0 (must be > 0); min_spread_m=-0.1 (must be >= 0); extent_percentile=50.0 "
        "(0..50); min_valid_pixels=0 (must be >= 1)")


@pytest.mark.parametrize(
    "mask, depth, reason",
    [
        (None, flat(1.0), "empty target mask"),
        (np.zeros((480, 640, 1), bool), flat(1.0), "empty target mask"),
        (np.zeros((480, 640), bool), flat(1.0), "empty target mask"),
        (square_mask(1, 1, 2), np.zeros((0, 0)), "depth image has shape (0, 0), expected h x w"),
        (square_mask(1, 1, 2, (480, 600)), flat(1.0),
         "colour frame does not match CameraInfo: 600x480 is not 640x480 scaled (aspect "
         "1.2500 vs 1.3333)"),
    ],
)
def test_each_unusable_input_is_one_exact_reason_without_pixels(mask, depth, reason):
    result = locate_target(mask, depth, ASYM)
    assert (result.reason, result.valid_pixels, result.point) == (reason, 0, None)


def test_a_mask_between_the_pixel_centres_of_a_coarse_depth_grid_says_so():
    mask = np.zeros((480, 640), bool)
    mask[0, 0] = True  # half-resolution depth pixel 0 samples colour pixel 1 (its centre)
    result = locate_target(mask, flat(1.0, (240, 320)), ASYM)
    assert result.reason == "target mask covers no depth pixel"


def plane_with_flyers():
    """Return a 10x10 grid on the plane z = 1 m, alone and with 2 flying pixels before it."""
    xs, ys = np.meshgrid(np.linspace(-0.05, 0.04, 10), np.linspace(-0.02, 0.025, 10))
    plane = np.column_stack([xs.ravel(), ys.ravel(), np.ones(100)])
    flyers = np.array([[0.04, 0.025, 0.9], [-0.05, -0.02, 0.8]])
    return plane, np.vstack([plane, flyers])


def test_the_oriented_box_of_a_plane_leaves_its_flying_pixels_out():
    plane, points = plane_with_flyers()
    box = oriented_box(points, percentile=0.0)
    assert box.kept.tolist() == [True] * 100 + [False] * 2
    # x along the larger spread (positive), z towards the camera, y completing the frame
    np.testing.assert_allclose(box.axes, [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-9)
    np.testing.assert_allclose(box.size, [0.09, 0.045, 0.0], atol=1e-9)
    np.testing.assert_allclose(box.centre, [-0.005, 0.0025, 1.0], atol=1e-9)
    np.testing.assert_allclose(box.covariance, np.cov(plane, rowvar=False), atol=1e-12)
    assert oriented_box(points).size.tolist() == oriented_box(points, 2.0, 2.5).size.tolist()


def test_the_oriented_box_centre_is_the_middle_of_the_window_not_the_mean():
    points = np.array([[0.0, 0.001, 1], [0.0, -0.001, 1], [0.001, 0, 1], [0.1, 0, 1]])
    box = oriented_box(points, percentile=0.0)
    np.testing.assert_allclose(box.centre, [0.05, 0.0, 1.0], atol=1e-12)  # the mean x: 0.02525
    np.testing.assert_allclose(box.size, [0.1, 0.002, 0.0], atol=1e-12)


def test_eight_points_are_enough_to_leave_a_flying_pixel_out_seven_are_not():
    ring = [[np.cos(a) * 0.01, np.sin(a) * 0.02, 1.0]
            for a in np.linspace(0, 2 * np.pi, 7, endpoint=False)]
    eight = np.array(ring + [[0.0, 0.0, 0.7]])
    assert eight.shape == (8, 3) and not oriented_box(eight).kept[-1]
    seven = np.array(ring[:6] + [[0.0, 0.0, 0.7]])
    assert oriented_box(seven).kept.all()


def test_one_and_two_points_give_a_box_without_failing():
    one = oriented_box(np.array([[0.1, 0.2, 1.0]]))
    assert one.covariance.shape == (3, 3) and not one.covariance.any()
    np.testing.assert_allclose(one.centre, [0.1, 0.2, 1.0])
    two = oriented_box(np.array([[0.0, 0.0, 1.0], [0.02, 0.0, 1.0]]), percentile=0.0)
    assert two.covariance[0, 0] == pytest.approx(0.0002)
    assert two.size[0] == pytest.approx(0.02)


def test_an_unusable_input_has_no_valid_pixels_by_default():
    from finers_ros.depth3d import Target3D

    assert Target3D.none("why") == Target3D(valid_pixels=0, reason="why")


@pytest.mark.parametrize("column", [0, 639])
def test_a_one_pixel_wide_target_on_the_first_or_last_column_is_located(column):
    mask = np.zeros((480, 640), bool)
    mask[100:110, column] = True
    depth = flat(3.0)
    depth[:, column] = 1.0
    result = locate_target(mask, depth, ASYM, EXACT)
    assert result.valid_pixels == 10 and result.point[2] == 1.0


def test_a_p_with_one_focal_length_zero_is_refused_and_small_ones_are_accepted():
    with pytest.raises(No3D) as caught:
        CameraModel.from_camera_info(K_ASYM, [], "", 640, 480, image="rectified",
                                     p=[0, 0, 300, 0, 0, 700, 200, 0, 0, 0, 1, 0])
    assert str(caught.value) == "CameraInfo P has focal lengths fx=0, fy=700 (must be > 0)"
    small = CameraModel.from_camera_info(K_ASYM, [], "", 640, 480, image="rectified",
                                         p=[0.5, 0, 0.5, 0, 0, 0.5, 0.5, 0, 0, 0, 1, 0])
    assert (small.fx, small.fy) == (0.5, 0.5)
    tiny = CameraModel.from_camera_info([1, 0, 0, 0, 1, 0, 0, 0, 1], [], "", 1, 1)
    assert (tiny.width, tiny.height) == (1, 1)


def test_depth_of_another_aspect_is_not_registered_to_the_colour_camera():
    result = locate_target(square_mask(300, 200, 4), flat(1.0, (360, 640)), ASYM)
    assert result.reason == ("depth image is not registered to the colour camera: 640x360 is "
                             "not 640x480 scaled (aspect 1.7778 vs 1.3333)")


@pytest.fixture(scope="module")
def noisy_plane():
    """Return 2000 points on the plane z = 1 m with 1 mm Gaussian noise along z."""
    rng = np.random.default_rng(11)
    xy = rng.uniform([-0.05, -0.02], [0.05, 0.02], (2000, 2))
    noise = rng.normal(0.0, 0.001, 2000)
    return np.column_stack([xy, 1.0 + noise]), noise


def test_points_more_than_2_5_robust_sigmas_off_the_surface_are_left_out(noisy_plane):
    points, noise = noisy_plane
    between = (np.abs(noise) > 0.003) & (np.abs(noise) < 0.0035)
    assert between.any(), "the fixture has points between 3 and 3.5 sigmas"
    box = oriented_box(points)
    assert not box.kept[np.abs(noise) > 0.003].any()
    assert box.kept[np.abs(noise) < 0.002].all()
    assert oriented_box(points).size.tolist() == oriented_box(points, 2.0, 2.5).size.tolist()
    assert oriented_box(points, 3.0).size[0] < oriented_box(points).size[0]


@pytest.mark.parametrize("angle", [0.0, 40.0, 90.0, 130.0, 200.0, 300.0])
def test_the_box_x_axis_has_its_largest_component_positive_along_the_spread(angle):
    rng = np.random.default_rng(5)
    local = np.column_stack([rng.uniform(-0.05, 0.05, 300), rng.uniform(-0.01, 0.01, 300),
                             np.zeros(300)])
    turn = np.radians(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0],
                         [0, 0, 1]])
    box = oriented_box(local @ rotation.T + [0, 0, 1.0])
    x_axis = box.axes[:, 0]
    assert x_axis[np.argmax(np.abs(x_axis))] > 0
    direction = rotation[:, 0] * np.sign(rotation[np.argmax(np.abs(rotation[:, 0])), 0])
    np.testing.assert_allclose(x_axis, direction, atol=0.02)
    np.testing.assert_allclose(box.axes[:, 2], [0, 0, -1], atol=1e-9)
    np.testing.assert_allclose(np.cross(box.axes[:, 2], box.axes[:, 0]), box.axes[:, 1])


def test_a_fisheye_d_with_a_fifth_coefficient_uses_the_first_four():
    four = CameraModel.from_camera_info(K_ASYM, (0.05, -0.01, 0.002, -0.0005), "equidistant",
                                        640, 480)
    five = CameraModel.from_camera_info(K_ASYM, (0.05, -0.01, 0.002, -0.0005, 0.0),
                                        "equidistant", 640, 480)
    u, v = np.array([10.0, 320.0, 600.0]), np.array([20.0, 240.0, 470.0])
    np.testing.assert_array_equal(five.rays(u, v), four.rays(u, v))
