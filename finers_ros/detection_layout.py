"""
An answer in the layout of the standard ROS detection messages (vision_msgs), ROS-free.

``vision_msgs/Detection2D`` describes a box by its centre and sides; the project's boxes are
inclusive pixel corners ``(x1, y1, x2, y2)`` with pixel centres at integer coordinates, so a
box covers ``[x1 - 0.5, x2 + 0.5]``: centre ``(x1 + x2) / 2``, side ``x2 - x1 + 1`` pixels.

``vision_msgs/Detection3D`` carries an oriented box (``BoundingBox3D``) and a hypothesis with a
``PoseWithCovariance``: the target's point and the box's orientation, and a 6 x 6 covariance
whose position block is the 3 x 3 covariance of the target's points (their spread, m^2). The
orientation of the box is not estimated with an uncertainty: its variances are
``ORIENTATION_VARIANCE`` (an uninformed rotation), never a zero that would claim certainty.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .depth3d import Quaternion, Target3D, Vec3

ORIENTATION_VARIANCE = math.pi ** 2  # rad^2 on roll, pitch and yaw: not estimated
NO_SCORE = 1.0  # the hypothesis score when the segmenter gives none (the answer is the only one)
IDENTITY: Quaternion = (0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Box2D:
    """A box as vision_msgs/BoundingBox2D has it: centre and sides, native pixels."""

    centre_x: float
    centre_y: float
    size_x: float
    size_y: float


@dataclass(frozen=True)
class Box3D:
    """A box as vision_msgs/BoundingBox3D has it: centre (m), orientation (x, y, z, w), sides."""

    centre: Vec3
    orientation: Quaternion
    size: Vec3


def box_2d(box: Sequence[float]) -> Box2D:
    """Return the centre-and-sides box of an inclusive ``(x1, y1, x2, y2)`` pixel box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return Box2D((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1 + 1, y2 - y1 + 1)


def hypothesis_score(score: Optional[float]) -> float:
    """Return the segmenter's score (predicted mask IoU), or ``NO_SCORE`` when it has none."""
    if score is None or not math.isfinite(score):
        return NO_SCORE
    return float(score)


def pose_covariance(covariance: Sequence[float]) -> Tuple[float, ...]:
    """
    Return the row-major 6 x 6 pose covariance (x, y, z, roll, pitch, yaw) of a 3 x 3 one.

    Position block: ``covariance`` (row-major, m^2); orientation: ``ORIENTATION_VARIANCE``
    on the diagonal; no correlation between the two.
    """
    full = np.zeros((6, 6))
    full[:3, :3] = np.asarray(covariance, np.float64).reshape(3, 3)
    full[3:, 3:] = np.eye(3) * ORIENTATION_VARIANCE
    return tuple(float(v) for v in full.ravel())


def box_3d(target: Target3D) -> Box3D:
    """
    Return the target's oriented box, or its axis-aligned extent where it has none.

    Raises ValueError for a target without a 3D result.
    """
    if not target.has_3d:
        raise ValueError(f"no 3D result: {target.reason}")
    if target.obb_size is not None and target.obb_centre is not None:
        return Box3D(tuple(target.obb_centre), tuple(target.obb_orientation or IDENTITY),
                     tuple(target.obb_size))
    low, high = np.asarray(target.extent_min), np.asarray(target.extent_max)
    return Box3D(tuple(float(v) for v in (low + high) / 2), IDENTITY,
                 tuple(float(v) for v in high - low))
