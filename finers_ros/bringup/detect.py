"""Finding the object a ``Query`` names in an RGB image, by colour components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .colours import colour_mask
from .language import Query


@dataclass
class Component:
    """A connected colour region: inclusive box and centroid in the image's pixels."""

    box: Tuple[int, int, int, int]
    centroid: Tuple[float, float]
    area: int
    mask: np.ndarray  # bool, H x W of the whole image
    colour: str = ""

    @property
    def shape(self) -> Optional[str]:
        from .shapes import classify_shape

        x1, y1, x2, y2 = self.box
        return classify_shape(self.mask[y1:y2 + 1, x1:x2 + 1])

    @property
    def size(self) -> Tuple[int, int]:
        return (self.box[2] - self.box[0] + 1, self.box[3] - self.box[1] + 1)


def components(rgb: np.ndarray, colour: str, min_area: int = 4) -> List[Component]:
    """Return ``colour``'s connected regions in an ``H x W x 3 uint8 RGB`` image, largest first."""
    mask = colour_mask(cv2.GaussianBlur(rgb, (3, 3), 0), colour).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = []
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        if area < min_area:
            continue
        found.append(
            Component(
                (int(x), int(y), int(x + w - 1), int(y + h - 1)),
                (float(centroids[label][0]), float(centroids[label][1])),
                int(area),
                labels == label,
                colour,
            )
        )
    return sorted(found, key=lambda c: -c.area)


def components_of_shape(rgb: np.ndarray, shape: str, min_area: int = 12) -> List[Component]:
    """Components of every named colour (grey excepted: clutter) whose shape is ``shape``."""
    from .colours import COLOUR_NAMES

    found = []
    for colour in COLOUR_NAMES:
        if colour != "grey":
            found += [c for c in components(rgb, colour, min_area) if c.shape == shape]
    return sorted(found, key=lambda c: -c.area)


def filter_shape(candidates: List[Component], shape: Optional[str]) -> List[Component]:
    """Candidates of ``shape``; all of them when none has it (shape is a hint, colour decides)."""
    if shape is None:
        return candidates
    matching = [c for c in candidates if c.shape == shape]
    return matching or candidates


def _position_score(component: Component, positions: List[str], width: int, height: int) -> float:
    """Lower is better: how far the component is from the named side(s) of the image."""
    cx, cy = component.centroid[0] / width, component.centroid[1] / height
    score = 0.0
    for position in positions:
        score += {
            "left": cx,
            "right": 1 - cx,
            "top": cy,
            "bottom": 1 - cy,
            "centre": abs(cx - 0.5) + abs(cy - 0.5),
        }[position]
    return score


def select(
    candidates: List[Component],
    query: Query,
    image_size: Tuple[int, int],
    use_position: bool = True,
    anchor: Optional[Tuple[float, float]] = None,
    anchor_name: str = "the anchor",
) -> Tuple[Optional[Component], str]:
    """
    Pick the candidate the query describes; returns (component or None, explanation).

    Size words pick by area, position words by distance to the named sides; with neither,
    the candidate nearest ``anchor`` (if given) or the largest one wins.
    """
    described = " ".join(w for w in (query.colour, query.shape) if w) or "matching"
    if not candidates:
        return None, f"no {described} object is visible"
    width, height = image_size
    note = f"{len(candidates)} {described} candidate(s)"
    if use_position and query.positions:
        best = min(candidates, key=lambda c: _position_score(c, query.positions, width, height))
        return best, f"{note}; the most {'-'.join(query.positions)} one"
    if query.size in ("small", "smallest"):
        return min(candidates, key=lambda c: c.area), f"{note}; the smallest one"
    if query.size in ("large", "largest"):
        return max(candidates, key=lambda c: c.area), f"{note}; the largest one"
    if anchor is not None:
        best = min(
            candidates,
            key=lambda c: (c.centroid[0] - anchor[0]) ** 2 + (c.centroid[1] - anchor[1]) ** 2,
        )
        return best, f"{note}; the one nearest {anchor_name}"
    return candidates[0], f"{note}; the largest one"


def inscribed_points(mask: np.ndarray) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """Centres of the two largest (roughly disjoint) inscribed circles of a bool mask."""
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y1, x1 = np.unravel_index(int(np.argmax(dist)), dist.shape)
    radius = max(float(dist[y1, x1]), 1.0)
    # The second circle must not overlap the first (centres >= 2r apart); small or round
    # masks may leave no room, then accept overlap, then repeat the first point.
    for reach in (2.0 * radius, radius):
        suppressed = dist.copy()
        cv2.circle(suppressed, (int(x1), int(y1)), int(np.ceil(reach)), 0, -1)
        suppressed[~mask] = 0
        if suppressed.max() > 0:
            y2, x2 = np.unravel_index(int(np.argmax(suppressed)), dist.shape)
            return (float(x1), float(y1)), (float(x2), float(y2))
    return (float(x1), float(y1)), (float(x1), float(y1))
