"""
Drawing a result for people: downscaled frame, tinted mask, region, crop, box, points, answer.

Kept apart from inference; the CLI, the evaluation report and the ROS overlay topic use it.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from .geometry import mask_box
from .result import FineRSResult

MASK_TINT = (255, 0, 255)
REGION_COLOUR = (255, 210, 0)
CROP_COLOUR = (0, 200, 255)
BOX_COLOUR = (0, 255, 0)
POINT_COLOUR = (255, 40, 40)


def _scaled(box, scale):
    return tuple(int(round(v * scale)) for v in box)


def draw_overlay(image: np.ndarray, result: FineRSResult, max_width: int = 1280,
                 label: Optional[str] = None, inset: bool = True) -> np.ndarray:
    """
    ``H x W x 3 uint8 RGB`` frame -> overlay ``h x w x 3 uint8 RGB`` with ``w <= max_width``.

    With ``inset``, the LPR crop is also shown at native resolution in the top-right corner:
    small objects are a few pixels once the frame is downscaled.
    """
    height, width = image.shape[:2]
    scale = min(1.0, max_width / float(width))
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    # Shrinking a 4K frame 3x with INTER_AREA costs ~25 memcpys of the frame; nearest costs
    # less than one, and the small target is shown magnified in the inset anyway.
    shrink = cv2.INTER_AREA if scale >= 0.5 else cv2.INTER_NEAREST
    canvas = cv2.resize(image, size, interpolation=shrink)  # a new array: drawn on in place
    box = None if result.mask is None else mask_box(result.mask)
    if box is not None:  # only the mask's bounding box is read again
        x0, y0, x1, y1 = (int(v) for v in box)
        tint_mask(canvas, result.mask[y0:y1 + 1, x0:x1 + 1], (x0, y0), (width, height))
    thick = max(1, int(round(2 * max(scale, 0.5))))
    if result.crop is not None:
        x1, y1, x2, y2 = _scaled(result.crop.box, scale)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), CROP_COLOUR, 1)
    if result.region is not None:
        x1, y1, x2, y2 = _scaled(result.region, scale)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), REGION_COLOUR, thick)
    if result.box is not None:
        x1, y1, x2, y2 = _scaled(result.box, scale)
        pad = 3
        cv2.rectangle(canvas, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), BOX_COLOUR, thick)
    for point in result.points:
        cv2.circle(canvas, _scaled(point, scale), max(2, thick + 1), POINT_COLOUR, -1)
    if result.crop is not None and inset:
        _draw_inset(canvas, image, result)
    lines = [f"{result.instruction[:80]}"]
    if result.error:
        lines.append(f"error: {result.error[:90]}")
    else:
        lines.append(f"{'found' if result.found else 'not found'}: {result.answer[:80]}")
    if label:
        lines.append(label)
    font_scale = max(0.45, size[0] / 1800.0)
    line_height = int(26 * font_scale / 0.6)
    widths = [
        cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] for line in lines
    ]
    # a dark band behind the text keeps it readable on any background
    band = canvas[:line_height * len(lines) + 8, :min(canvas.shape[1], max(widths) + 16)]
    band[...] = (band * 0.35).astype(np.uint8)
    y = int(20 * font_scale / 0.6)
    for line in lines:
        cv2.putText(canvas, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                    1, cv2.LINE_AA)
        y += line_height
    return canvas


def tint_mask(canvas: np.ndarray, mask: np.ndarray, origin, frame_size) -> None:
    """
    Tint each pixel of the shrunk frame ``canvas`` that has any pixel of ``mask`` under it.

    ``canvas`` is a frame of ``frame_size`` (W, H) shrunk: a wire one pixel wide or a single
    pixel stays visible.

    ``mask``: ``h x w`` bool whose top-left is ``origin`` (x, y) in native frame pixels (a
    whole-frame mask at ``(0, 0)``, or a track's ROI). Native ``x`` falls on canvas column
    ``x * canvas_width // W`` (integer arithmetic: no pixel lost to rounding).
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    height, width = canvas.shape[:2]
    columns = np.minimum((xs + int(origin[0])) * width // int(frame_size[0]), width - 1)
    rows = np.minimum((ys + int(origin[1])) * height // int(frame_size[1]), height - 1)
    hit = np.zeros((height, width), bool)
    hit[rows, columns] = True
    canvas[hit] = (0.45 * canvas[hit] + 0.55 * np.array(MASK_TINT, np.float32)).astype(np.uint8)


def _draw_inset(canvas: np.ndarray, image: np.ndarray, result: FineRSResult) -> None:
    """Draw a magnified view around the found box (else the crop window), top-right corner."""
    from .geometry import crop_for_region

    native = (image.shape[1], image.shape[0])
    window = result.crop
    if result.box is not None:
        x1, y1, x2, y2 = result.box
        side = max(64, int(3 * max(x2 - x1 + 1, y2 - y1 + 1)))
        window = crop_for_region(result.box, native, side)
    pixels = window.cut(image)
    side = max(64, int(min(canvas.shape[0], canvas.shape[1]) * 0.4))
    scale = side / max(window.width, window.height)
    zoomed_size = (max(1, int(window.width * scale)), max(1, int(window.height * scale)))
    zoomed = cv2.resize(
        pixels, zoomed_size, interpolation=cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    )
    if result.mask is not None:  # the mask's outline, so the object itself stays visible
        inside = cv2.resize(
            window.cut(result.mask).astype(np.uint8), zoomed_size, interpolation=cv2.INTER_NEAREST
        )
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(zoomed, contours, -1, MASK_TINT, 2)
    if result.box is not None:
        x1, y1, x2, y2 = ((v - o) * scale for v, o in zip(result.box, (window.x0, window.y0) * 2))
        cv2.rectangle(
            zoomed, (int(x1), int(y1)), (int(x2 + scale), int(y2 + scale)), BOX_COLOUR, 1
        )
    h, w = zoomed.shape[:2]
    x0 = canvas.shape[1] - w - 6
    if x0 < 0 or h + 12 > canvas.shape[0]:
        return
    canvas[6:6 + h, x0:x0 + w] = zoomed
    cv2.rectangle(canvas, (x0 - 1, 5), (x0 + w, 6 + h), CROP_COLOUR, 2)


def draw_track(image: np.ndarray, mask: np.ndarray, box, label: str,
               max_width: int = 1280, inset_side: int = 256) -> np.ndarray:
    """
    Overlay one tracked frame: ``H x W x 3 uint8 RGB`` + ``H x W`` bool mask + XYXY box.

    Drawn like a Detection's overlay (the same tint, box and inset), the inset a
    ``inset_side`` native window around the tracked box.
    """
    from .geometry import crop_for_region

    width, height = image.shape[1], image.shape[0]
    side = min(inset_side, width, height)
    track = FineRSResult(instruction=label, found=True, answer="tracked", box=tuple(box),
                         mask=mask, crop=crop_for_region(tuple(box), (width, height), side))
    return draw_overlay(image, track, max_width)
