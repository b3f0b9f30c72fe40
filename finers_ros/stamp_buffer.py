"""
A small bounded buffer of stamped items and nearest-stamp pairing (depth to colour frames).

Stamps are integer nanoseconds (``sec * 10**9 + nanosec`` of a ROS header). The buffer keeps
the ``capacity`` most recently added items; pairing picks the item whose stamp is nearest to
the query within a slop, and says why when none is.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Generic, List, Optional, Sequence, Tuple, TypeVar

Item = TypeVar("Item")


class StampBuffer(Generic[Item]):
    """Thread-safe: items arrive from subscription callbacks, pairing runs in a worker."""

    def __init__(self, capacity: int = 10):
        if capacity < 1:
            raise ValueError(f"capacity={capacity} (must be >= 1)")
        self._items: deque = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, stamp_ns: int, item: Any) -> None:
        with self._lock:
            self._items.append((int(stamp_ns), item))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def entries(self) -> List[Tuple[int, Any]]:
        """Return a snapshot of ``(stamp_ns, item)``, oldest first."""
        with self._lock:
            return list(self._items)

    def nearest(
        self, stamp_ns: int, slop_ns: int, what: str = "depth frame"
    ) -> Tuple[Optional[Item], str]:
        """
        Return ``(item, "")`` for the item nearest to ``stamp_ns`` within ``slop_ns``.

        Else ``(None, reason)``.
        """
        return pick_nearest(self.entries(), stamp_ns, slop_ns, what)


def pick_nearest(
    entries: Sequence[Tuple[int, Any]], stamp_ns: int, slop_ns: int, what: str = "depth frame"
) -> Tuple[Optional[Any], str]:
    """
    Pick the item of ``(stamp_ns, item)`` entries nearest to ``stamp_ns`` within ``slop_ns``.

    Returns ``(item, "")``, or ``(None, reason)`` saying how far the nearest one was.
    """
    if not entries:
        return None, f"no {what} received"
    stamp, item = min(entries, key=lambda entry: abs(entry[0] - stamp_ns))
    gap = abs(stamp - stamp_ns)
    if gap > slop_ns:
        return None, (
            f"no {what} within {slop_ns / 1e6:g} ms of the colour frame "
            f"(nearest is {gap / 1e6:.0f} ms away, {len(entries)} buffered)"
        )
    return item, ""
