"""FineRS-4k ground truth: polygons rasterised as the reference evaluation does."""
import json

import numpy as np
import pytest

from finers_ros.data.annotations import DatasetError, gt_box, gt_mask, load_annotations


def test_polygon_vertices_are_truncated_then_filled_with_outline():
    # Truncated to int: (1, 1) (5, 1) (5, 4) (1, 4), a 5 x 4 block; rounding would tilt it.
    mask = gt_mask([[1.9, 1.9], [5.7, 1.2], [5.2, 4.8], [1.1, 4.9]], (8, 7))
    expected = np.zeros((7, 8), bool)
    expected[1:5, 1:6] = True
    np.testing.assert_array_equal(mask, expected)


def test_sliver_polygon_truncates_to_one_row():
    # Truncation keeps the sliver on row 0; rounding would move (9.9, 0.9) to (10, 1).
    # (The reference's 1-px outline adds no pixel to OpenCV's fill; it is drawn all the same.)
    mask = gt_mask([[0, 0], [9, 0], [9.9, 0.9], [0, 0.5]], (12, 3))
    expected = np.zeros((3, 12), bool)
    expected[0, 0:10] = True
    np.testing.assert_array_equal(mask, expected)


def test_several_polygons_and_box_of_the_pixels():
    two = gt_mask([[[0, 0], [3.9, 0], [3.9, 3.9], [0, 3.9]],
                   [[10, 10], [14, 10], [14, 14], [10, 14]]], (20, 20))
    assert two.sum() == 16 + 25
    # The region-recall box is the mask's inclusive pixel box, not the float polygon's.
    assert gt_box(gt_mask([[2.2, 3.7], [511.7, 3.7], [511.7, 9.9], [2.2, 9.9]], (600, 20))) == (
        2, 3, 511, 9)
    assert gt_box(np.zeros((4, 4), bool)) is None


def test_malformed_polygons_are_dataset_errors(tmp_path):
    base = {"image_path": "a.png", "Q": "find it", "A": "", "Q-type": "referring",
            "area_percent": 0.01}
    for points in ([[1, 2], [3, "x"], [4, 5]], [[1, 2, 3]], [[1, float("nan")], [2, 2], [3, 3]],
                   "nope", []):
        path = tmp_path / "a.json"
        path.write_text(json.dumps({"annotations": [dict(base, points=points)]}))
        with pytest.raises(DatasetError, match="record 0"):
            load_annotations(path)


@pytest.mark.parametrize("field, value", [
    ("Q", None), ("Q", ["find it"]), ("Q-type", None), ("area_percent", "nan"),
    ("area_percent", float("inf")), ("area_percent", -1), ("area_percent", None),
    ("image_path", 5),
])
def test_malformed_fields_are_dataset_errors(tmp_path, field, value):
    # Not str(None) as the question, not a NaN area that lands in the XS bucket unnoticed.
    record = {"image_path": "a.png", "Q": "find it", "A": "", "Q-type": "referring",
              "area_percent": 0.01, "points": [[1, 1], [5, 1], [5, 4]], field: value}
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"annotations": [record]}))
    with pytest.raises(DatasetError, match=f"record 0 is malformed.*{field}"):
        load_annotations(path)


def test_gt_mask_matches_the_reference_code_on_random_polygons():
    import cv2

    def reference_mask(points, height, width):  # the reference's get_mask_from_points
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.polylines(mask, np.array([points], dtype=np.int32), True, 1, 1)
        cv2.fillPoly(mask, np.array([points], dtype=np.int32), 1)
        return mask

    rng = np.random.default_rng(4)
    for _ in range(200):
        points = rng.uniform(-3, 40, (rng.integers(3, 9), 2)).tolist()
        np.testing.assert_array_equal(gt_mask(points, (37, 31)),
                                      reference_mask(points, 31, 37).astype(bool))


def test_gt_pixel_count_needs_no_canvas_down_to_the_origin():
    from finers_ros.data.annotations import gt_pixel_count

    polygon = [[3000.7, 2000.2], [3010.2, 2000.9], [3006.5, 2012.8]]
    assert gt_pixel_count(polygon) == int(gt_mask(polygon, (3840, 2160)).sum())
    straddling = [[-5.5, -3.2], [10.7, -2.0], [4.2, 9.9]]  # truncation toward zero kept
    assert gt_pixel_count(straddling) == int(gt_mask(straddling, (64, 64)).sum())
    # Far past any camera frame (the image is missing, so its size is unknown): nothing of it
    # can be in the image, and no 754 GiB canvas is allocated to find that out.
    assert gt_pixel_count([[900000, 900000], [900010, 900000], [900010, 900010]]) == 0
