"""
Synthetic aligned depth images with a known 3D target (tests, ``finers-demo``).

Everything is in the colour camera's optical frame (x right, y down, z forward, metres);
depth images hold z in metres, ``h x w`` float32, on the grid of a ``CameraModel``
(undistorted pinhole). A scene is a plane (``normal . X = offset``) with a raised target:

- ``disc_scene``: a flat disc of known 3D centre, parallel to a (possibly tilted) plane;
- ``raised_mask_scene``: the pixels of a colour-frame mask raised towards the camera, for
  the synthetic colour scenes whose target is only known in pixels.

``corrupt`` adds what real RGB-D sensors do at small objects: noise, holes (0 / NaN) and
"flying pixels" that blend foreground and background depth along the target's edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..depth3d import CameraModel, Vec3


@dataclass(frozen=True)
class DepthScene:
    """
    A depth image with one target of known position.

    ``depth_m``: ``h x w`` float32 metres; ``target_mask``: ``h x w`` bool of the target's
    depth pixels; ``centre``: the target's known 3D centre (optical frame, metres);
    ``background_m``: the depth the target would have without it (for flying pixels).
    """

    depth_m: np.ndarray
    target_mask: np.ndarray
    centre: Vec3
    background_m: np.ndarray
    foreground_m: np.ndarray


def _pixel_rays(camera: CameraModel) -> np.ndarray:
    """``h x w x 3`` rays (x/z, y/z, 1) through every pixel centre."""
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    return np.dstack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones(u.shape)])


def plane_depth(camera: CameraModel, normal: Vec3, offset: float) -> np.ndarray:
    """Return z where each pixel's ray meets the plane ``normal . X = offset`` (``inf``: never)."""
    n = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    along = _pixel_rays(camera) @ n
    with np.errstate(divide="ignore"):
        z = offset / np.linalg.norm(normal) / along
    return np.where(z > 0, z, np.inf)


def disc_scene(
    camera: CameraModel, centre: Vec3, radius: float, plane_normal: Vec3, height: float
) -> DepthScene:
    """
    Build a scene of a disc of ``radius`` (m) centred at ``centre`` in front of a plane.

    The plane is parallel to the disc, ``height`` (m) behind it along ``plane_normal``
    (pointing from the plane towards the camera).
    """
    n = np.asarray(plane_normal, np.float64)
    n /= np.linalg.norm(n)
    if n[2] > 0:
        n = -n  # towards the camera: negative z
    c = np.asarray(centre, np.float64)
    disc_plane = plane_depth(camera, tuple(n), float(n @ c))
    background = plane_depth(camera, tuple(n), float(n @ (c - height * n)))
    hits = _pixel_rays(camera) * disc_plane[..., None]
    inside = np.linalg.norm(hits - c, axis=2) <= radius
    depth = np.where(inside, disc_plane, background).astype(np.float32)
    return DepthScene(
        depth,
        inside,
        tuple(float(v) for v in c),
        background.astype(np.float32),
        disc_plane.astype(np.float32),
    )


def raised_mask_scene(
    camera: CameraModel, mask: np.ndarray, plane_z: float, height: float
) -> DepthScene:
    """
    Build a fronto-parallel plane at ``plane_z`` (m) with the mask's pixels ``height`` nearer.

    ``mask``: ``H x W`` bool in the colour frame, resampled (nearest) to the camera's grid.
    ``centre`` is the back-projection of the target's median pixel at its depth.
    """
    target = cv2.resize(
        mask.astype(np.uint8), (camera.width, camera.height), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    z = plane_z - height
    depth = np.where(target, z, plane_z).astype(np.float32)
    vs, us = np.nonzero(target)
    u, v = (float(np.median(us)), float(np.median(vs))) if us.size else (camera.cx, camera.cy)
    centre = ((u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z)
    return DepthScene(
        depth,
        target,
        centre,
        np.full(depth.shape, plane_z, np.float32),
        np.full(depth.shape, z, np.float32),
    )


def corrupt(
    scene: DepthScene,
    rng: np.random.Generator,
    noise_m: float = 0.001,
    hole_fraction: float = 0.15,
    edge_px: int = 2,
    far_pixels: int = 5,
    hole_value: float = 0.0,
) -> np.ndarray:
    """
    Return the scene's depth as a sensor delivers it (a new array).

    Gaussian noise of ``noise_m``; ``hole_fraction`` of the target's pixels without depth
    (``hole_value``: 0 or NaN); a band ``edge_px`` wide on both sides of the target's edge of
    flying pixels (uniform blends of target and background depth); ``far_pixels`` target
    pixels far beyond any range (specular glints).
    """
    depth = scene.depth_m + rng.normal(0, noise_m, scene.depth_m.shape).astype(np.float32)
    mask8 = scene.target_mask.astype(np.uint8)
    kernel = np.ones((2 * edge_px + 1, 2 * edge_px + 1), np.uint8)
    band = cv2.dilate(mask8, kernel).astype(bool) & ~cv2.erode(mask8, kernel).astype(bool)
    t = rng.uniform(0, 1, depth.shape).astype(np.float32)
    blend = scene.background_m + t * (scene.foreground_m - scene.background_m)
    depth[band] = blend[band]
    inside = np.flatnonzero(scene.target_mask & ~band)
    holes = (
        rng.choice(inside, int(hole_fraction * inside.size), replace=False) if inside.size else []
    )
    depth.ravel()[holes] = hole_value
    far = rng.choice(inside, min(far_pixels, inside.size), replace=False) if inside.size else []
    depth.ravel()[far] = 60.0
    return depth


def depth_to_16uc1(depth_m: np.ndarray, invalid: Optional[float] = 0) -> np.ndarray:
    """Metres -> ``uint16`` millimetres as RGB-D drivers publish ``16UC1`` (NaN/inf/<0 -> 0)."""
    mm = np.where(np.isfinite(depth_m) & (depth_m > 0), np.round(depth_m * 1000.0), invalid)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def camera_for(width: int, height: int, fov_x_deg: float = 69.0) -> CameraModel:
    """Return a pinhole colour camera of ``width x height``, field of view of an RGB-D camera."""
    fx = width / 2 / np.tan(np.radians(fov_x_deg) / 2)
    return CameraModel(float(fx), float(fx), (width - 1) / 2, (height - 1) / 2, width, height)
