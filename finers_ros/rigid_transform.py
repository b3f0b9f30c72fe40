"""
A 3D result moved from the colour camera's optical frame into another frame, ROS-free.

A ``RigidTransform`` maps coordinates of a source frame into a target frame:
``p_target = rotation @ p_source + translation`` (metres), as a tf2 lookup of
``(target_frame, source_frame)`` gives it (translation and unit quaternion x, y, z, w).
Points, the target's point and its oriented box's centre move with it; orientations compose
(``rotation @ box_axes``); covariances rotate (``R C R^T``); a box keeps its sides. An
axis-aligned extent is no longer axis-aligned in the new frame: it becomes the axis-aligned
box around the eight moved corners of the old one.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .depth3d import Target3D, quaternion_of


def rotation_matrix(quaternion: Sequence[float]) -> np.ndarray:
    """
    Return the 3x3 rotation of quaternion ``(x, y, z, w)`` (normalised first).

    Raises ValueError for a zero quaternion.
    """
    q = np.asarray(quaternion, np.float64)
    norm = float(np.linalg.norm(q))
    if not norm > 0:
        raise ValueError("zero quaternion: no rotation")
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclass(frozen=True)
class RigidTransform:
    """``p_target = rotation @ p_source + translation``: 3x3 rotation, translation in m."""

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def from_quaternion(cls, translation: Sequence[float],
                        quaternion: Sequence[float]) -> "RigidTransform":
        """Build one from a translation (m) and a quaternion ``(x, y, z, w)``."""
        return cls(rotation_matrix(quaternion), np.asarray(translation, np.float64).reshape(3))

    def points(self, points) -> np.ndarray:
        """Return ``N x 3`` source-frame positions (m) in the target frame (float64)."""
        return np.asarray(points, np.float64).reshape(-1, 3) @ self.rotation.T + self.translation

    def point(self, point) -> tuple:
        """Return one point in the target frame."""
        return tuple(float(v) for v in self.points(point)[0])

    def orientation(self, quaternion: Sequence[float]) -> tuple:
        """Return the orientation ``(x, y, z, w)`` of a source-frame orientation."""
        return tuple(float(v) for v in quaternion_of(self.rotation @ rotation_matrix(quaternion)))

    def covariance(self, covariance: Sequence[float]) -> tuple:
        """Return a row-major 3x3 source-frame spread (m^2) in the target frame: ``R C R^T``."""
        matrix = np.asarray(covariance, np.float64).reshape(3, 3)
        return tuple(float(v) for v in (self.rotation @ matrix @ self.rotation.T).ravel())


def target_in_frame(target: Target3D, transform: RigidTransform) -> Target3D:
    """
    Return ``target`` (optical frame) in the frame ``transform`` maps into.

    Without a 3D result it is returned as it is (no point, the same reason).
    """
    if not target.has_3d:
        return target
    corners = np.array(list(itertools.product(*zip(target.extent_min, target.extent_max))))
    moved = transform.points(corners)
    changes = dict(point=transform.point(target.point),
                   extent_min=tuple(float(v) for v in moved.min(0)),
                   extent_max=tuple(float(v) for v in moved.max(0)))
    if target.obb_centre is not None and target.obb_orientation is not None:
        changes.update(obb_centre=transform.point(target.obb_centre),
                       obb_orientation=transform.orientation(target.obb_orientation))
    if target.covariance is not None:
        changes["covariance"] = transform.covariance(target.covariance)
    if target.points is not None:
        changes["points"] = transform.points(target.points).astype(np.float32)
    return replace(target, **changes)
