"""
Where a segmented target is in 3D.

An aligned depth image, the colour camera's intrinsics and the target's mask give one robust
point in the colour camera's optical frame.

Frames and units:

- *colour frame*: native pixels of the camera frame the mask belongs to, ``W x H``.
- *depth frame*: pixels of the depth image, registered (aligned) to the colour camera, so it
  sees the same field of view, possibly at another resolution ``w x h``.
- *optical frame*: the colour camera's optical frame (REP 103): x right, y down, z forward,
  metres. Every 3D value below is in it.

Pixel centres are at integer coordinates; scaling between resolutions maps pixel edges onto
pixel edges (``u' = (u + 0.5) * s - 0.5``), as OpenCV and ``image_proc`` do. The depth image's
size must be the colour size times one scale (within a pixel): another aspect means the depth
is not registered to the colour camera, and there is no point.

*Raw or rectified.* A raw colour image is back-projected with CameraInfo ``K`` and ``D``; a
rectified one (``image_rect``, or depth registered into the colour camera's ``P`` by
``depth_image_proc``) with ``P`` and no distortion, as image_geometry's PinholeCameraModel
does (``rectifyPoint`` then ``projectPixelTo3dRay``).

Small targets sit on depth edges, so the point comes from the mask eroded by a pixel or two,
minus invalid depths (0, NaN, beyond the range), minus outliers (median and MAD of z), back-
projected with the intrinsics; the point is the per-axis median of what is left and the extent
a percentile window of it; the oriented box is the same window along the principal axes of
those points on the target's surface, the covariance their spread. Whenever that is not
possible, ``Target3D.reason`` says why in one line, and there is no point rather than a wrong
one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

Vec3 = Tuple[float, float, float]
Quaternion = Tuple[float, float, float, float]  # x, y, z, w (geometry_msgs/Quaternion order)

# which image the colour pixels come from: raw (K, D) or rectified (P); auto decides by name
CAMERA_IMAGES = ("raw", "rectified")
CAMERA_IMAGE_SETTINGS = ("auto",) + CAMERA_IMAGES
RECTIFIED_NAME_WORDS = ("rect", "rectified")  # image_rect, image_rect_color, ...
SIZE_TOLERANCE_PX = 1.0  # a scaled image may differ from the exact scale by rounding only
# oriented box: points farther than this off the target's surface may be flying pixels
SURFACE_MIN_SPREAD_M = 0.001
SURFACE_PASSES = 2
MIN_ROBUST_POINTS = 8  # fewer points are all taken as they are

# distortion models sensor_msgs/CameraInfo names that the back-projection undoes
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
PINHOLE_COEFFICIENT_COUNTS = (4, 5, 8, 12, 14)  # what cv2.undistortPoints takes
FISHEYE_MODELS = ("equidistant",)
SUPPORTED_DISTORTION_MODELS = PINHOLE_MODELS + FISHEYE_MODELS


class No3D(ValueError):
    """Why no 3D point can be computed (one line); it becomes ``Target3D.reason``."""


@dataclass(frozen=True)
class DepthOptions:
    """
    How the depth pixels under a mask become a point (defaults suit RGB-D cameras).

    ``max_range_m``: depths beyond it are invalid; ``erosion_px``: mask erosion in depth
    pixels (reduced, down to none, while it would leave < ``min_valid_pixels``); ``mad_k``:
    inliers lie within ``mad_k`` robust standard deviations (1.4826 MAD) of the median z, and
    never closer than ``min_spread_m`` (so a flat target's sensor noise is not "outliers");
    ``extent_percentile``: the extent is the [p, 100 - p] percentile window of the inliers.
    """

    max_range_m: float = 10.0
    erosion_px: int = 2
    mad_k: float = 2.5
    min_spread_m: float = 0.005
    extent_percentile: float = 2.0
    min_valid_pixels: int = 5

    def __post_init__(self):
        problems = []
        if not self.max_range_m > 0:
            problems.append(f"max_range_m={self.max_range_m} (must be > 0)")
        if not 0 <= self.erosion_px <= 10:
            problems.append(f"erosion_px={self.erosion_px} (0..10)")
        if not self.mad_k > 0:
            problems.append(f"mad_k={self.mad_k} (must be > 0)")
        if not self.min_spread_m >= 0:
            problems.append(f"min_spread_m={self.min_spread_m} (must be >= 0)")
        if not 0 <= self.extent_percentile < 50:
            problems.append(f"extent_percentile={self.extent_percentile} (0..50)")
        if self.min_valid_pixels < 1:
            problems.append(f"min_valid_pixels={self.min_valid_pixels} (must be >= 1)")
        if problems:
            raise ValueError("invalid depth options: " + "; ".join(problems))


@dataclass(frozen=True)
class Target3D:
    """
    The 3D result for one target: ``point`` and ``extent_min/max`` in metres, optical frame.

    ``valid_pixels`` counts the depth pixels the point was computed from (after erosion, range
    check and outlier rejection). Without a result, ``point`` is None and ``reason`` says why.

    For grasping: ``obb_centre``, ``obb_orientation`` (quaternion x, y, z, w of the box axes in
    the optical frame) and ``obb_size`` (m, along the box's own x, y, z) are the oriented box of
    those points that lie on the target's surface (``oriented_box``: flying pixels left out):
    x along their largest spread, z along their smallest (a flat target's normal), pointing
    towards the camera. ``covariance`` is their 3x3 covariance (m^2, row-major), ``points``
    the points themselves (``N x 3`` float32, m).
    """

    point: Optional[Vec3] = None
    extent_min: Optional[Vec3] = None
    extent_max: Optional[Vec3] = None
    valid_pixels: int = 0
    reason: str = ""
    obb_centre: Optional[Vec3] = None
    obb_orientation: Optional[Quaternion] = None
    obb_size: Optional[Vec3] = None
    covariance: Optional[Tuple[float, ...]] = None
    points: Optional[np.ndarray] = field(default=None, compare=False, repr=False)

    @property
    def has_3d(self) -> bool:
        return self.point is not None

    @classmethod
    def none(cls, reason: str, valid_pixels: int = 0) -> "Target3D":
        return cls(valid_pixels=valid_pixels, reason=reason)


def camera_image(setting: str, colour_topic: str) -> Tuple[str, str]:
    """
    Tell which image the colour topic carries, ``raw`` or ``rectified``, and why (one line).

    ``setting``: ``raw`` or ``rectified`` (taken as is) or ``auto``: rectified when the last
    part of the (remapped) topic name has the word ``rect`` or ``rectified`` between
    underscores (``image_rect``, ``image_rect_color``), raw otherwise (``image_raw``,
    ``image_color``). A trailing ``/compressed`` (image_transport's CompressedImage topic) is
    not the image's name: ``/cam/image_rect/compressed`` is rectified.
    """
    if setting in CAMERA_IMAGES:
        return setting, f"depth_camera_model is {setting}"
    if setting != "auto":
        raise ValueError(
            f"depth_camera_model={setting!r} ({' | '.join(CAMERA_IMAGE_SETTINGS)})"
        )
    name = colour_topic.rstrip("/").removesuffix("/compressed").rsplit("/", 1)[-1]
    if any(word in name.split("_") for word in RECTIFIED_NAME_WORDS):
        return "rectified", f"auto: topic name {name!r} says rectified"
    return "raw", f"auto: topic name {name!r} does not say rect"


def scale_between(
    source: Tuple[int, int], target: Tuple[int, int], what: str
) -> Tuple[float, float]:
    """
    ``(sx, sy)`` from ``source`` to ``target`` (``(width, height)`` each), or raise ``No3D``.

    The target must be the source times one scale, within ``SIZE_TOLERANCE_PX`` of rounding
    in each direction; ``what`` names the pair in the reason (e.g. "depth image ... colour").
    """
    (width, height), (to_width, to_height) = source, target
    sx, sy = to_width / width, to_height / height
    if (
        abs(width * sy - to_width) > SIZE_TOLERANCE_PX
        or abs(height * sx - to_height) > SIZE_TOLERANCE_PX
    ):
        raise No3D(
            f"{what}: {to_width}x{to_height} is not {width}x{height} scaled (aspect "
            f"{to_width / to_height:.4f} vs {width / height:.4f})"
        )
    return sx, sy


@dataclass(frozen=True)
class CameraModel:
    """
    How pixels of one image (``width x height``) become rays in the colour optical frame.

    A pinhole ``fx, fy, cx, cy`` (pixels), and for a raw image the distortion coefficients
    ``d`` of ``distortion_model`` (empty: none). ``from_camera_info`` builds it from ``K`` and
    ``D`` for a raw image, from ``P`` for a rectified one.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion_model: str = ""
    d: Tuple[float, ...] = ()

    @classmethod
    def from_camera_info(
        cls,
        k: Sequence[float],
        d: Sequence[float],
        distortion_model: str,
        width: int,
        height: int,
        binning_x: int = 0,
        binning_y: int = 0,
        roi_width: int = 0,
        roi_height: int = 0,
        p: Sequence[float] = (),
        image: str = "raw",
    ) -> "CameraModel":
        """
        Return the model a ``sensor_msgs/CameraInfo``'s fields describe, or raise ``No3D``.

        ``image``: ``raw`` (pixels of the camera's own image: ``K`` and ``D``) or
        ``rectified`` (pixels of a rectified image, or of depth registered into this camera's
        ``P``: ``P``'s fx, fy, cx, cy, no distortion). A ``P`` with a translation (Tx, Ty: a
        stereo pair's second camera) places points in another camera's frame and is refused.
        """
        if image not in CAMERA_IMAGES:
            raise ValueError(f"image={image!r} ({' | '.join(CAMERA_IMAGES)})")
        if width <= 0 or height <= 0:
            raise No3D(f"CameraInfo size {width}x{height} is not set")
        # an roi of zeros or of the full resolution means the full image (CameraInfo.msg)
        roi = (roi_width, roi_height) not in ((0, 0), (width, height))
        if binning_x > 1 or binning_y > 1 or roi:
            raise No3D("CameraInfo with binning or a region of interest is not handled")
        coefficients = tuple(float(v) for v in d)
        if not all(np.isfinite(coefficients)):
            raise No3D("CameraInfo D has non-finite coefficients")
        if image == "rectified":
            projection = np.asarray(p, np.float64).ravel()
            if any(coefficients) or np.any(projection):  # else rectified is the raw image
                return cls._from_projection(projection, int(width), int(height))
        return cls._from_intrinsics(k, coefficients, distortion_model, int(width), int(height))

    @classmethod
    def _from_projection(cls, p: np.ndarray, width: int, height: int) -> "CameraModel":
        """Return the rectified image's pinhole: ``P`` (3x4, row-major), which has no Tx, Ty."""
        if p.size != 12 or not np.all(np.isfinite(p)):
            raise No3D(f"CameraInfo P has {p.size} values or non-finite ones")
        if not np.any(p):
            raise No3D(
                "CameraInfo P is all zero: a rectified image (depth_camera_model rectified) is "
                "back-projected with P"
            )
        fx, fy, cx, cy, tx, ty = p[0], p[5], p[2], p[6], p[3], p[7]
        if fx <= 0 or fy <= 0:
            raise No3D(f"CameraInfo P has focal lengths fx={fx:g}, fy={fy:g} (must be > 0)")
        if tx or ty:
            raise No3D(
                f"CameraInfo P has Tx={tx:g}, Ty={ty:g} (a stereo pair's second camera): its "
                "points would be in the first camera's frame, not the image's"
            )
        return cls(float(fx), float(fy), float(cx), float(cy), width, height)

    @classmethod
    def _from_intrinsics(
        cls, k, coefficients: Tuple[float, ...], distortion_model: str, width: int, height: int
    ) -> "CameraModel":
        """Return the raw image's camera: ``K`` and, when any coefficient is non-zero, ``D``."""
        k = np.asarray(k, np.float64).ravel()
        if k.size != 9 or not np.all(np.isfinite(k)):
            raise No3D(f"CameraInfo K has {k.size} values or non-finite ones")
        if not np.any(k):
            raise No3D("CameraInfo K is all zero (camera not calibrated)")
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
        if fx <= 0 or fy <= 0:
            raise No3D(f"CameraInfo K has focal lengths fx={fx:g}, fy={fy:g} (must be > 0)")
        distorted = any(coefficients)
        if distorted and distortion_model not in SUPPORTED_DISTORTION_MODELS:
            raise No3D(
                f"distortion model {distortion_model!r} is not handled "
                f"(supported: {', '.join(SUPPORTED_DISTORTION_MODELS)}, or all-zero D)"
            )
        if (
            distorted
            and distortion_model in PINHOLE_MODELS
            and len(coefficients) not in PINHOLE_COEFFICIENT_COUNTS
        ):
            raise No3D(
                f"{distortion_model} distortion has {len(coefficients)} coefficients "
                f"(need {', '.join(map(str, PINHOLE_COEFFICIENT_COUNTS))})"
            )
        if distorted and distortion_model in FISHEYE_MODELS and len(coefficients) < 4:
            raise No3D(
                f"{distortion_model} distortion needs 4 coefficients, got {len(coefficients)}"
            )
        return cls(
            float(fx),
            float(fy),
            float(cx),
            float(cy),
            width,
            height,
            distortion_model if distorted else "",
            coefficients if distorted else (),
        )

    def scaled_to(self, width: int, height: int) -> "CameraModel":
        """Return the same camera at ``width x height`` (a registered depth image's size)."""
        sx, sy = scale_between(
            (self.width, self.height),
            (width, height),
            "depth image is not registered to the colour camera",
        )
        return CameraModel(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            width,
            height,
            self.distortion_model,
            self.d,
        )

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``N x 2`` normalised image coordinates (x/z, y/z) of pixels ``(u, v)``, undistorted."""
        points = np.stack([u, v], 1).astype(np.float64)
        if not self.distortion_model:
            return np.stack(
                [(points[:, 0] - self.cx) / self.fx, (points[:, 1] - self.cy) / self.fy], 1
            )
        k = np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)
        if self.distortion_model in FISHEYE_MODELS:
            out = cv2.fisheye.undistortPoints(points.reshape(-1, 1, 2), k, np.array(self.d[:4]))
        else:
            out = cv2.undistortPoints(points.reshape(-1, 1, 2), k, np.array(self.d))
        return out.reshape(-1, 2)

    def project(self, point: Vec3) -> Tuple[float, float]:
        """Pixel ``(u, v)`` of an optical-frame point (pinhole, no distortion)."""
        x, y, z = point
        return self.fx * x / z + self.cx, self.fy * y / z + self.cy


def mask_in_depth_frame(
    mask: np.ndarray, depth_shape: Tuple[int, int]
) -> Tuple[np.ndarray, int, int]:
    """
    Sample the colour-frame mask on the depth grid, cut to the mask's box.

    ``mask``: ``H x W`` bool (colour frame). Returns ``(sub_mask, x0, y0)``: ``sub_mask`` is
    the nearest-neighbour mask on depth pixels ``[y0, y0 + h') x [x0, x0 + w')``. Only the
    mask's box is sampled, so a 4K mask costs no more than its target.
    """
    height, width = mask.shape
    dh, dw = depth_shape
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return np.zeros((0, 0), bool), 0, 0
    sy, sx = dh / height, dw / width
    # depth pixels whose centre falls inside the mask's colour box
    y0 = max(0, int(np.floor((rows[0]) * sy)))
    y1 = min(dh, int(np.ceil((rows[-1] + 1) * sy)))
    x0 = max(0, int(np.floor((cols[0]) * sx)))
    x1 = min(dw, int(np.ceil((cols[-1] + 1) * sx)))
    src_rows = np.clip(((np.arange(y0, y1) + 0.5) / sy).astype(int), 0, height - 1)
    src_cols = np.clip(((np.arange(x0, x1) + 0.5) / sx).astype(int), 0, width - 1)
    return mask[src_rows[:, None], src_cols[None, :]], x0, y0


def _eroded(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0 or mask.size == 0:
        return mask
    padded = np.pad(mask.astype(np.uint8), pixels)  # outside the box is background
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.erode(padded, kernel)[pixels:-pixels, pixels:-pixels].astype(bool)


def locate_target(
    mask: np.ndarray,
    depth_m: np.ndarray,
    camera: CameraModel,
    options: DepthOptions = DepthOptions(),
) -> Target3D:
    """
    Locate the target's 3D point and extent from its mask and an aligned depth image.

    ``mask``: ``H x W`` bool in the colour frame (``camera``'s resolution or any resolution
    with its aspect); ``depth_m``: ``h x w`` float depths in metres along the optical axis (z),
    registered to the colour camera (0 or NaN = no depth); ``camera``: the colour camera's
    model. Never raises for bad input: the result's ``reason`` says what was wrong.
    """
    try:
        return _locate(mask, depth_m, camera, options)
    except No3D as exc:
        return Target3D.none(str(exc))


def _locate(mask, depth_m, camera, options) -> Target3D:
    if mask is None or mask.ndim != 2 or not mask.any():
        raise No3D("empty target mask")
    if depth_m.ndim != 2 or depth_m.size == 0:
        raise No3D(f"depth image has shape {depth_m.shape}, expected h x w")
    scale_between(
        (camera.width, camera.height),
        (mask.shape[1], mask.shape[0]),
        "colour frame does not match CameraInfo",
    )
    depth_camera = camera.scaled_to(depth_m.shape[1], depth_m.shape[0])
    sub_mask, x0, y0 = mask_in_depth_frame(mask.astype(bool), depth_m.shape)
    if not sub_mask.any():
        raise No3D("target mask covers no depth pixel")
    for pixels in range(options.erosion_px, -1, -1):  # less erosion for a target a few pixels wide
        eroded = _eroded(sub_mask, pixels)
        if np.count_nonzero(eroded) >= options.min_valid_pixels:
            break
    vs, us = np.nonzero(eroded)
    z = depth_m[vs + y0, us + x0].astype(np.float64)
    valid = np.isfinite(z) & (z > 0) & (z <= options.max_range_m)
    covered = z.size
    if np.count_nonzero(valid) < options.min_valid_pixels:
        raise No3D(
            f"{np.count_nonzero(valid)} valid depth pixels of {covered} under the mask "
            f"(need {options.min_valid_pixels}; 0, NaN and > {options.max_range_m:g} m are "
            "invalid)"
        )
    us, vs, z = us[valid], vs[valid], z[valid]
    median = np.median(z)
    spread = max(options.mad_k * 1.4826 * np.median(np.abs(z - median)), options.min_spread_m)
    inliers = np.abs(z - median) <= spread
    if np.count_nonzero(inliers) < options.min_valid_pixels:
        raise No3D(
            f"{np.count_nonzero(inliers)} depth pixels agree on the target's depth "
            f"(need {options.min_valid_pixels})"
        )
    us, vs, z = us[inliers] + x0, vs[inliers] + y0, z[inliers]
    rays = depth_camera.rays(us, vs)
    points = np.column_stack([rays * z[:, None], z])
    point = np.median(points, 0)
    low, high = np.percentile(
        points, [options.extent_percentile, 100 - options.extent_percentile], 0
    )
    box = oriented_box(points, options.extent_percentile, options.mad_k)
    return Target3D(
        point=_vec(point),
        extent_min=_vec(low),
        extent_max=_vec(high),
        valid_pixels=int(z.size),
        obb_centre=_vec(box.centre),
        obb_orientation=tuple(float(v) for v in quaternion_of(box.axes)),
        obb_size=_vec(box.size),
        covariance=tuple(float(v) for v in box.covariance.ravel()),
        points=points[box.kept].astype(np.float32),
    )


def _vec(values) -> Vec3:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class OrientedBox:
    """
    A box around 3D points along their principal axes (all in the points' frame, metres).

    ``axes``: 3x3 rotation whose columns are the box's x, y, z; ``size``: its sides along
    them; ``covariance``: the kept points' 3x3 covariance (m^2); ``kept``: ``N`` bool, the
    points on the target's surface (the others are flying pixels).
    """

    centre: np.ndarray
    axes: np.ndarray
    size: np.ndarray
    covariance: np.ndarray
    kept: np.ndarray


def oriented_box(
    points: np.ndarray, percentile: float = 2.0, mad_k: float = 2.5
) -> OrientedBox:
    """
    Return the oriented box of ``N x 3`` points (optical frame), robust to flying pixels.

    Axes are the covariance's eigenvectors (PCA): x along the largest spread, z along the
    smallest, pointing towards the camera (negative optical z), y completing a right-handed
    frame; x's largest component is positive, so the same points always give the same box.
    Flying pixels (blends of target and background along the target's edge) sit off the
    target's surface and would tilt the axes: the axes are first fitted to the central half of
    the points (nearest to their median), then points farther from that surface along z than
    ``mad_k`` robust standard deviations (at least ``SURFACE_MIN_SPREAD_M``) are left out
    (``kept``), twice. Along each axis the box spans the ``[percentile, 100 - percentile]``
    window of the kept points; ``covariance`` is theirs.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    kept = np.ones(len(points), bool)
    if len(points) >= MIN_ROBUST_POINTS:
        distance = np.linalg.norm(points - np.median(points, 0), axis=1)
        kept = distance <= np.median(distance)
        for _ in range(SURFACE_PASSES):
            subset = points[kept]
            normal = np.linalg.eigh(np.cov(subset, rowvar=False))[1][:, 0]
            off = (points - subset.mean(0)) @ normal
            centre = np.median(off[kept])
            spread = mad_k * 1.4826 * np.median(np.abs(off[kept] - centre))
            kept = np.abs(off - centre) <= max(spread, SURFACE_MIN_SPREAD_M)
    subset = points[kept]
    mean = subset.mean(0)
    covariance = np.cov(subset, rowvar=False) if len(subset) > 1 else np.zeros((3, 3))
    axes = np.linalg.eigh(covariance)[1][:, ::-1].copy()  # descending eigenvalues
    if axes[np.argmax(np.abs(axes[:, 0])), 0] < 0:
        axes[:, 0] *= -1
    if axes[2, 2] > 0:
        axes[:, 2] *= -1
    axes[:, 1] = np.cross(axes[:, 2], axes[:, 0])
    local = (subset - mean) @ axes
    low, high = np.percentile(local, [percentile, 100 - percentile], 0)
    return OrientedBox(mean + axes @ ((low + high) / 2), axes, high - low, covariance, kept)


def quaternion_of(rotation: np.ndarray) -> np.ndarray:
    """Return the unit quaternion ``(x, y, z, w)`` of a 3x3 rotation matrix (via Rodrigues)."""
    vector, _ = cv2.Rodrigues(np.asarray(rotation, np.float64))
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    axis = vector.ravel() / angle
    return np.append(axis * np.sin(angle / 2), np.cos(angle / 2))
