"""
COCO's pixel convention against FineRS-4k's, so that a COCO tool and finers see one mask.

FineRS-4k polygons run through pixel centres and their outline is part of the mask
(``gt_mask``: vertices truncated, outline and fill); COCO coordinates are continuous, pixel
``(i, j)`` covering ``[i, i + 1) x [j, j + 1)``, and a pixel is in a polygon's mask when its
centre is (pycocotools, CVAT). Export moves each edge half a pixel out and import half a
pixel in: a block is exported as its outline of pixel edges, and a tight polygon a person
draws around a block imports as that block.
"""
import cv2
import numpy as np
import pytest

from finers_ros.data.annotations import gt_mask
from finers_training.coco import from_coco, mask_polygon, to_coco

W, H = 64, 48


def coco_mask(segmentation) -> np.ndarray:
    """Rasterise a COCO polygon as COCO tools do: the pixels whose centre lies inside."""
    corners = np.asarray(segmentation, np.float64).reshape(-1, 2).astype(np.float32)
    return np.array([[cv2.pointPolygonTest(corners, (x + 0.5, y + 0.5), False) > 0
                      for x in range(W)] for y in range(H)])


def pycocotools_mask(segmentation) -> np.ndarray:
    mask = pytest.importorskip("pycocotools.mask")
    rle = mask.merge(mask.frPyObjects([segmentation], H, W))
    return mask.decode(rle).astype(bool)


def block(x0, y0, side):
    mask = np.zeros((H, W), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def exported(mask):
    polygon, _ = mask_polygon(mask)
    record = {"image_path": "a.png", "Q": "find it", "Q-type": "referring",
              "points": polygon, "area_percent": 1.0}
    (annotation,) = to_coco([record], {"a.png": (W, H)})["annotations"]
    return annotation


@pytest.fixture
def frame(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((H, W, 3), np.uint8))
    return tmp_path


def imported(frame, segmentation):
    document = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
                "annotations": [{"id": 1, "image_id": 1, "segmentation": [segmentation],
                                 "attributes": {"question": "find it"}}]}
    (record,), _ = from_coco(document, frame, frame)
    return gt_mask(record["points"], (W, H))


def test_an_exported_block_is_its_outline_of_pixel_edges():
    annotation = exported(block(10, 20, 3))
    assert sorted(zip(annotation["segmentation"][0][::2], annotation["segmentation"][0][1::2])
                  ) == [(10, 20), (10, 23), (13, 20), (13, 23)]
    assert annotation["bbox"] == [10, 20, 3, 3]
    assert np.array_equal(coco_mask(annotation["segmentation"][0]), block(10, 20, 3))


@pytest.mark.parametrize("side", [1, 3, 12])
def test_a_tight_polygon_drawn_around_a_block_imports_as_the_block(frame, side):
    drawn = [10, 20, 10 + side, 20, 10 + side, 20 + side, 10, 20 + side]
    assert np.array_equal(coco_mask(drawn), block(10, 20, side))  # what the tool showed
    assert np.array_equal(imported(frame, drawn), block(10, 20, side))


def test_a_disc_is_one_mask_for_finers_and_coco_tools(frame):
    disc = np.zeros((H, W), bool)
    cv2.circle(disc.view(np.uint8), (30, 24), 9, 1, -1)
    segmentation = exported(disc)["segmentation"][0]
    shown = coco_mask(segmentation)
    assert (shown & disc).sum() / (shown | disc).sum() > 0.95
    assert np.array_equal(imported(frame, segmentation), disc)  # an unchanged pre-annotation


def test_pycocotools_draws_the_exported_block_and_the_drawn_one_alike(frame):
    segmentation = exported(block(10, 20, 3))["segmentation"][0]
    assert np.array_equal(pycocotools_mask(segmentation), block(10, 20, 3))
    drawn = [10, 20, 13, 20, 13, 23, 10, 23]
    assert np.array_equal(pycocotools_mask(drawn), imported(frame, drawn))
