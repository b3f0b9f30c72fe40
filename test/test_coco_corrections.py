"""
Corrected COCO files as annotation tools write them.

Sub-pixel corners, tiny triangles, several parts on several annotations, and files
without annotations or images yet.
"""
from collections import Counter

import numpy as np

from finers_ros.data.annotations import gt_mask
from finers_training.coco import from_coco
from test_coco_records import annotation, document, frames  # noqa: F401

PARTS = "polygon parts dropped, the largest kept"


def test_sub_pixel_corners_come_back_to_a_hundredth_of_a_pixel(frames):  # noqa: F811
    corners = [[10.126, 20.004, 40.5, 20.004, 40.5, 50.999, 10.126, 50.999]]
    records, _ = from_coco(document(annotation(segmentation=corners)), frames, frames)
    # edges half a pixel in: the last pixel centre inside COCO's x < 40.5 is 39.5
    assert records[0]["points"] == [[10.13, 20.0], [39.5, 20.0], [39.5, 50.0], [10.13, 50.0]]


def test_a_triangle_of_half_a_pixel_is_a_polygon_on_its_pixel(frames):  # noqa: F811
    records, counts = from_coco(document(annotation(segmentation=[[5, 5, 6, 5, 5, 6]])),
                                frames, frames)
    covered = gt_mask(records[0]["points"], (200, 100))
    assert covered[5, 5] and covered.sum() <= 2
    assert "no polygon segmentation" not in counts


def test_a_polygon_narrower_than_a_pixel_is_the_pixel_under_its_centre(frames):  # noqa: F811
    sliver = [[10.2, 20.1, 10.8, 20.1, 10.8, 20.9, 10.2, 20.9]]
    records, _ = from_coco(document(annotation(segmentation=sliver)), frames, frames)
    assert list(zip(*np.nonzero(gt_mask(records[0]["points"], (200, 100))))) == [(20, 10)]


def test_dropped_parts_add_up_over_annotations_and_none_dropped_is_not_mentioned(
        frames):  # noqa: F811
    two_parts = [[10, 20, 40, 20, 40, 50, 10, 50], [60, 60, 62, 60, 62, 62]]
    records, counts = from_coco(document(annotation(segmentation=two_parts),
                                         annotation(segmentation=two_parts)), frames, frames)
    assert len(records) == 2 and counts[PARTS] == 2
    _, counts = from_coco(document(annotation()), frames, frames)
    assert PARTS not in counts


def test_a_file_without_annotations_or_images_yet_reads_as_nothing(frames):  # noqa: F811
    images = [{"id": 1, "file_name": "a.png", "width": 200, "height": 100}]
    assert from_coco({"images": images}, frames, frames) == (
        [], Counter({"image without annotation": 1}))
    assert from_coco({"annotations": []}, frames, frames) == ([], Counter())
