"""
A bounded ring of recent camera frames, by count and by bytes (4K RGB frames are 25 MB).

The cascade answers on a frame that is seconds old; the frames received since are replayed
through the tracker so that its first output is current. Frames are kept as received (their
``view`` decodes on demand), so keeping one costs no copy, only the message's memory.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, List

from .frames import FrameView


@dataclass
class TrackFrame:
    """One received frame: ``view()`` gives its pixels; ``seq`` grows by one per frame."""

    view: Callable[[], FrameView]
    header: Any = None  # the transport's header (stamp, frame_id), echoed in track outputs
    seq: int = 0
    nbytes: int = 0  # what keeping this frame holds in memory
    stamp_ns: int = 0  # the frame's own stamp (camera clock), to notice time going backwards


class FrameRing:
    """The newest frames within ``max_frames`` and ``max_bytes``; the oldest go first."""

    def __init__(self, max_frames: int = 30, max_bytes: int = 256 * 2 ** 20):
        if max_frames < 1 or max_bytes < 1:
            raise ValueError("max_frames and max_bytes must be positive")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._frames: "deque[TrackFrame]" = deque()
        self._bytes = 0
        self.peak_bytes = 0  # the most this ring ever held
        self._lock = threading.Lock()

    def put(self, frame: TrackFrame) -> None:
        """
        Keep ``frame``; drop the oldest until both bounds hold.

        A frame over the byte bound on its own is not kept.
        """
        with self._lock:
            self._frames.append(frame)
            self._bytes += frame.nbytes
            while self._frames and (len(self._frames) > self.max_frames
                                    or self._bytes > self.max_bytes):
                self._bytes -= self._frames.popleft().nbytes
            self.peak_bytes = max(self.peak_bytes, self._bytes)

    def after(self, seq: int) -> List[TrackFrame]:
        """Return the kept frames newer than ``seq``, oldest first."""
        with self._lock:
            return [frame for frame in self._frames if frame.seq > seq]

    def clear(self) -> None:
        """Forget every frame (nothing waits for a catch-up)."""
        with self._lock:
            self._frames.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)
