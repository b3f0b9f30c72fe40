"""
The answer in the standard detection layout and 3D results moved into another frame (ROS-free).

Expected values are worked out by hand here (pixel-edge box arithmetic, the optical-to-body
rotation of REP 103 written as axis columns), not by the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from finers_ros.depth3d import Target3D
from finers_ros.detection_layout import (
    ORIENTATION_VARIANCE,
    box_2d,
    box_3d,
    hypothesis_score,
    pose_covariance,
)
from finers_ros.rigid_transform import RigidTransform, rotation_matrix, target_in_frame

# camera_link -> camera_optical_frame, as every ROS camera driver publishes it
OPTICAL_IN_BODY = (-0.5, 0.5, -0.5, 0.5)
# its columns: optical x (right) is body -y, optical y (down) is body -z, optical z is body x
OPTICAL_AXES_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def target(**changes):
    values = dict(point=(0.2, 0.1, 1.0), extent_min=(0.18, 0.09, 0.99),
                  extent_max=(0.22, 0.11, 1.01), valid_pixels=40,
                  obb_centre=(0.201, 0.1, 0.999), obb_orientation=(0.0, 0.0, 0.0, 1.0),
                  obb_size=(0.04, 0.02, 0.002),
                  covariance=(4e-4, 1e-5, 0.0, 1e-5, 1e-4, 0.0, 0.0, 0.0, 1e-6),
                  points=np.array([[0.18, 0.09, 0.99], [0.22, 0.11, 1.01]], np.float32))
    values.update(changes)
    return Target3D(**values)


# -- 2D ---------------------------------------------------------------------------------
def test_inclusive_box_becomes_centre_and_pixel_sides():
    # pixels 100..139 x 50..59: 40 x 10 pixels whose edges are at 99.5 and 139.5
    box = box_2d((100.0, 50.0, 139.0, 59.0))
    assert (box.centre_x, box.centre_y, box.size_x, box.size_y) == (119.5, 54.5, 40.0, 10.0)
    one = box_2d((7.0, 3.0, 7.0, 3.0))  # a one-pixel target still has one pixel's size
    assert (one.centre_x, one.centre_y, one.size_x, one.size_y) == (7.0, 3.0, 1.0, 1.0)


@pytest.mark.parametrize("score, expected", [(0.83, 0.83), (0.0, 0.0), (math.nan, 1.0),
                                             (None, 1.0), (math.inf, 1.0)])
def test_hypothesis_score_is_the_segmenters_or_one(score, expected):
    assert hypothesis_score(score) == pytest.approx(expected)


# -- 3D ---------------------------------------------------------------------------------
def test_pose_covariance_puts_the_spread_on_position_and_leaves_orientation_open():
    covariance = np.arange(1, 10, dtype=float).reshape(3, 3) * 1e-6
    full = np.array(pose_covariance(covariance.ravel())).reshape(6, 6)
    assert np.array_equal(full[:3, :3], covariance)
    assert np.array_equal(np.diag(full)[3:], [ORIENTATION_VARIANCE] * 3)
    assert not full[:3, 3:].any() and not full[3:, :3].any()
    off_diagonal = full[3:, 3:] - np.diag(np.diag(full[3:, 3:]))
    assert not off_diagonal.any()


def test_3d_box_is_the_oriented_box_or_else_the_extent():
    with_obb = box_3d(target())
    assert with_obb.centre == (0.201, 0.1, 0.999) and with_obb.size == (0.04, 0.02, 0.002)
    assert with_obb.orientation == (0.0, 0.0, 0.0, 1.0)
    extent_only = box_3d(target(obb_centre=None, obb_orientation=None, obb_size=None))
    assert extent_only.centre == pytest.approx((0.2, 0.1, 1.0))
    assert extent_only.size == pytest.approx((0.04, 0.02, 0.02))
    assert extent_only.orientation == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="no 3D result"):
        box_3d(Target3D.none("no depth"))


# -- another frame --------------------------------------------------------------------------
def test_rotation_matrix_of_the_optical_frame_quaternion():
    assert np.allclose(rotation_matrix(OPTICAL_IN_BODY), OPTICAL_AXES_IN_BODY)
    # a quaternion that is not quite unit (a float32 round trip) is normalised
    assert np.allclose(rotation_matrix([2 * v for v in OPTICAL_IN_BODY]), OPTICAL_AXES_IN_BODY)
    with pytest.raises(ValueError, match="zero quaternion"):
        rotation_matrix((0.0, 0.0, 0.0, 0.0))


def test_target_moved_from_the_optical_frame_into_the_body_frame():
    # the camera 0.1 m ahead of and 0.5 m above the body origin, looking along body x
    body_from_optical = RigidTransform.from_quaternion((0.1, 0.0, 0.5), OPTICAL_IN_BODY)
    moved = target_in_frame(target(), body_from_optical)
    # optical (x, y, z) is body (0.1 + z, -x, 0.5 - y)
    assert moved.point == pytest.approx((1.1, -0.2, 0.4))
    assert moved.obb_centre == pytest.approx((1.099, -0.201, 0.4))
    assert moved.extent_min == pytest.approx((1.09, -0.22, 0.39))
    assert moved.extent_max == pytest.approx((1.11, -0.18, 0.41))
    assert moved.obb_size == (0.04, 0.02, 0.002)  # a box keeps its sides
    # the box's axes were the optical axes: now they are the optical axes seen from the body
    assert np.allclose(rotation_matrix(moved.obb_orientation), OPTICAL_AXES_IN_BODY)
    # variance along optical z (depth) is now along body x, optical x along body -y
    covariance = np.array(moved.covariance).reshape(3, 3)
    assert np.diag(covariance) == pytest.approx([1e-6, 4e-4, 1e-4])
    assert covariance[1, 2] == pytest.approx(1e-5) and covariance[0, 1] == pytest.approx(0.0)
    assert np.allclose(moved.points, [[1.09, -0.18, 0.41], [1.11, -0.22, 0.39]], atol=1e-6)
    assert moved.points.dtype == np.float32
    assert (moved.valid_pixels, moved.reason) == (40, "")


def test_a_turned_box_composes_with_the_transform():
    # box turned 90 degrees about optical z, frame turned 90 degrees about its own z again
    quarter = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))
    turned = target(obb_orientation=quarter)
    moved = target_in_frame(turned, RigidTransform.from_quaternion((0, 0, 0), quarter))
    half_turn = np.diag([-1.0, -1.0, 1.0])
    assert np.allclose(rotation_matrix(moved.obb_orientation), half_turn, atol=1e-9)
    assert moved.point == pytest.approx((-0.1, 0.2, 1.0))


def test_no_3d_result_stays_none_with_its_reason():
    moved = target_in_frame(Target3D.none("no depth frame", 3),
                            RigidTransform.from_quaternion((1, 2, 3), OPTICAL_IN_BODY))
    assert not moved.has_3d and moved.reason == "no depth frame" and moved.valid_pixels == 3
