import numpy as np
import pytest

from finers_ros.bringup.shapes import classify_shape
from finers_ros.data.synthetic import shape_polygon
from finers_ros.geometry import polygon_to_mask


@pytest.mark.parametrize("shape", ["circle", "square", "diamond", "triangle", "rectangle"])
@pytest.mark.parametrize("radius", [7, 12, 30])
def test_synthetic_shapes_are_named(shape, radius):
    polygon = shape_polygon(shape, (50.3, 48.7), radius, 0.6)
    mask = polygon_to_mask(polygon, (100, 100))
    assert classify_shape(mask) == shape


def test_tiny_or_empty_masks_have_no_shape():
    assert classify_shape(np.zeros((10, 10), bool)) is None
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    assert classify_shape(mask) is None
