"""
Frame maps with the asymmetric sizes real cameras and configs give, and boxes on the edges.

The default frames are square (512x512 crop and LPR frame), so a map that swapped width and
height would pass with them: here crops, LPR frames and boxes are all non-square and off the
origin, and boxes sit exactly on a frame's or another box's edge.
"""

import cv2
import numpy as np
import pytest

from finers_ros import geometry as geo

CROP = geo.CropWindow(x0=300, y0=120, width=256, height=128)
LPR = (512, 384)  # x scale 2, y scale 3


def test_native_to_lpr_scales_each_axis_by_its_own_size():
    assert geo.native_to_lpr_box((310, 130, 350, 150), CROP, LPR) == (20, 30, 100, 90)
    assert geo.native_to_lpr_point((310, 130), CROP, LPR) == (20, 30)


def test_lpr_to_crop_and_native_scale_back_each_axis():
    assert geo.lpr_to_crop_box((20, 30, 100, 90), CROP, LPR) == (10, 10, 50, 30)
    assert geo.lpr_to_crop_point((20, 30), CROP, LPR) == (10, 10)
    assert geo.lpr_to_native_box((20, 30, 100, 90), CROP, LPR) == (310, 130, 350, 150)
    assert geo.lpr_to_native_point((20, 30), CROP, LPR) == (310, 130)


def test_gse_maps_scale_each_axis_by_its_own_size():
    native, gse = (4000, 3000), (1920, 1080)
    box = (1000, 600, 2000, 1500)
    assert geo.native_to_gse_box(box, native, gse) == pytest.approx((480, 216, 960, 540))
    assert geo.gse_to_native_box((480, 216, 960, 540), native, gse) == pytest.approx(box)


def test_box_centre_and_area_of_a_box_off_the_origin():
    assert geo.box_centre((10, 20, 31, 61)) == (20.5, 40.5)
    assert geo.box_area((10, 20, 19, 24)) == 50.0  # 10 x 5 pixels, corners inclusive
    assert geo.box_area((10, 20, 8, 24)) == 0.0  # x2 < x1: empty
    assert geo.box_area((10, 20, 19, 18)) == 0.0


@pytest.mark.parametrize(
    "a, b, iou",
    [
        ((0, 0, 9, 9), (9, 0, 18, 9), 10 / 190),  # one shared column
        ((0, 0, 9, 9), (0, 9, 9, 18), 10 / 190),  # one shared row
        ((0, 0, 9, 9), (10, 0, 19, 9), 0.0),  # side by side, nothing shared
        ((0, 0, 9, 4), (5, 2, 14, 11), 15 / (50 + 100 - 15)),  # asymmetric overlap
        ((5, 2, 14, 11), (0, 0, 9, 4), 15 / (50 + 100 - 15)),
        ((0, 10, 3, 20), (2, 0, 30, 12), 6 / (44 + 377 - 6)),
        ((7, 7, 7, 7), (7, 7, 7, 7), 1.0),  # one pixel on itself
        ((5, 5, 4, 4), (9, 9, 8, 8), 0.0),  # two empty boxes
    ],
)
def test_box_iou_counts_shared_edges_and_single_pixels(a, b, iou):
    assert geo.box_iou(a, b) == pytest.approx(iou)


@pytest.mark.parametrize(
    "box, clipped",
    [
        ((0, 0, 639, 479), (0, 0, 639, 479)),
        ((-3, -4, 650, 490), (0, 0, 639, 479)),
        ((700, 500, 800, 600), (639, 479, 639, 479)),
        ((-9, -9, -1, -1), (0, 0, 0, 0)),
        ((1, 2, 3, 4), (1, 2, 3, 4)),
    ],
)
def test_clip_box_keeps_boxes_on_the_frames_pixels(box, clipped):
    assert geo.clip_box(box, (640, 480)) == clipped


@pytest.mark.parametrize(
    "box, overlaps",
    [
        ((-10, 5, 0, 8), True), ((-10, 5, -1, 8), False),  # left edge
        ((5, -10, 8, 0), True), ((5, -10, 8, -1), False),  # top edge
        ((639, 5, 700, 8), True), ((640, 5, 700, 8), False),  # right edge (W 640)
        ((5, 479, 8, 500), True), ((5, 480, 8, 500), False),  # bottom edge (H 480)
    ],
)
def test_overlaps_frame_on_each_edge(box, overlaps):
    assert geo.overlaps_frame(box, (640, 480)) is overlaps


@pytest.mark.parametrize(
    "box, inside",
    [
        ((300, 120, 555, 247), True),  # the window itself
        ((299, 130, 350, 140), False), ((310, 119, 350, 140), False),
        ((310, 130, 556, 140), False), ((310, 130, 350, 248), False),
    ],
)
def test_crop_contains_a_box_up_to_each_of_its_edges(box, inside):
    assert CROP.contains_box(box) is inside


def test_mask_box_spans_pixels_in_different_rows_and_columns():
    mask = np.zeros((12, 16), bool)
    mask[1, 2] = mask[7, 9] = True
    assert geo.mask_box(mask) == (2.0, 1.0, 9.0, 7.0)
    mask[:] = False
    mask[4, 13] = mask[4, 3] = mask[11, 8] = True
    assert geo.mask_box(mask) == (3.0, 4.0, 13.0, 11.0)


def test_polygon_box_of_several_polygons_and_of_flat_coordinate_lists():
    polygons = [[[0, 0], [10, 0], [10, 5]], [[20, 30], [25, 35], [22, 40]]]
    assert geo.polygon_box(polygons) == (0.0, 0.0, 25.0, 40.0)
    assert geo.polygon_box([3, 4, 10, 2, 7, 9]) == (3.0, 2.0, 10.0, 9.0)  # COCO x, y, ...
    assert geo.polygon_box([[5, 7]]) == (5.0, 7.0, 5.0, 7.0)
    assert geo.polygon_box([[[5, 7]], [[1, 9]]]) == (1.0, 7.0, 5.0, 9.0)


def test_polygon_to_mask_of_several_polygons_fills_each():
    mask = geo.polygon_to_mask([[[1, 1], [3, 1], [3, 3], [1, 3]],
                                [[6, 5], [8, 5], [8, 7], [6, 7]]], (10, 10))
    assert mask[2, 2] and mask[6, 7] and not mask[5, 4]
    assert geo.mask_box(mask) == (1.0, 1.0, 8.0, 7.0)


@pytest.fixture(scope="module")
def texture():
    return np.random.default_rng(4).integers(0, 255, (120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "size, interpolation",
    [
        ((70, 50), cv2.INTER_AREA),  # smaller on both axes: area filter
        ((320, 240), cv2.INTER_LINEAR),  # larger
        ((80, 240), cv2.INTER_LINEAR),  # narrower but taller
        ((320, 60), cv2.INTER_LINEAR),  # wider but shorter
        ((160, 60), cv2.INTER_LINEAR),  # as wide, shorter
    ],
)
def test_resize_image_uses_the_area_filter_only_when_shrinking_both_axes(
        texture, size, interpolation):
    resized = geo.resize_image(texture, size)
    assert resized.shape == (size[1], size[0], 3)
    np.testing.assert_array_equal(resized, cv2.resize(texture, size, interpolation=interpolation))
