"""
Camera frames into the node: one input transport, and frames taken only when needed.

Transports (parameter ``image_transport``), as image_transport names them:

- ``raw``: ``sensor_msgs/Image`` on ``camera/image_raw``;
- ``compressed``: ``sensor_msgs/CompressedImage`` on ``<the raw topic, resolved>/compressed``
  (``camera/image_raw/compressed`` unless remapped; remapping that name itself also works).

Why on demand: taking a 4K frame from the middleware into Python costs ~13-18 ms of CPU
(copies of 25 MB), whether or not anyone asked anything; at 10 Hz that is 15-20 % of a core.
While the node is idle (no instruction waiting or running, no track) the frame subscriptions
are left out of the executor's wait set (a gated callback group): the middleware keeps the
newest frame (history depth ``frame_depth``, 1 by default) and nothing is copied into Python.
An instruction opens the gate (``demand``): from then on every frame is taken as it arrives,
until the node is idle again (``settle``, from the node's periodic watch). With
``frame_policy: latest`` the frame the middleware holds is taken first, in the command's own
callback, before the request is queued: it is the newest frame. With ``after_request`` that
frame (received before the instruction) cannot answer it: it is dropped when the executor
takes it (by its receive time), off the request's path.

While idle the newest frame is still looked at now and then (``peek``, one frame): after a
camera matched, every watch period until one came (so the no-frames warning stays right),
then once per ``IDLE_PEEK_S``. The status' ``frames_received`` counts the frames in between
from the publisher's sequence numbers, not by taking them. ``frame_intake: every_frame``
takes every frame all the time (the behaviour before this module; benchmarks compare both).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CompressedImage, Image

TRANSPORTS = ("raw", "compressed")
INTAKE_MODES = ("on_demand", "every_frame")
CAMERA_TOPIC = "camera/image_raw"
COMPRESSED_TOPIC = "camera/image_raw/compressed"
IDLE_PEEK_S = 5.0  # while idle, the newest frame is taken this often (counters, last stamp)


class GatedGroup(MutuallyExclusiveCallbackGroup):
    """A mutually exclusive group whose entities the executor waits on only while open."""

    def __init__(self, is_open: bool = True):
        super().__init__()
        self.is_open = is_open

    def can_execute(self, entity) -> bool:
        return self.is_open and super().can_execute(entity)


def compressed_topic(node) -> str:
    """
    Return the CompressedImage topic: the raw topic's resolved name plus ``/compressed``.

    Unless ``camera/image_raw/compressed`` itself is remapped, then that name.
    """
    expanded = node.resolve_topic_name(COMPRESSED_TOPIC, only_expand=True)
    remapped = node.resolve_topic_name(COMPRESSED_TOPIC)
    if remapped != expanded:
        return remapped
    return node.resolve_topic_name(CAMERA_TOPIC) + "/compressed"


def transport_topics(node, transport: str, legacy_compressed: bool = False) -> List[tuple]:
    """
    Return ``(message type, topic)`` of each frame subscription of ``transport``.

    ``legacy_compressed`` (the deprecated ``subscribe_compressed: true`` with ``raw``):
    both, as before that parameter was replaced.
    """
    if transport == "compressed":
        return [(CompressedImage, compressed_topic(node))]
    topics = [(Image, CAMERA_TOPIC)]
    if legacy_compressed:
        topics.append((CompressedImage, compressed_topic(node)))
    return topics


class ArrivalCounter:
    """
    Counts frames that arrived, also those never taken, from publication sequence numbers.

    A frame taken after others were skipped counts the skipped ones too (same publisher,
    sequence number grown); any other frame counts one.
    """

    def __init__(self):
        self._last: dict = {}  # publisher gid -> last publication sequence number

    def count(self, info) -> int:
        if not info:
            return 1
        gid = bytes((info.get("publisher_gid") or {}).get("data", b""))
        sequence = info.get("publication_sequence_number")
        if not isinstance(sequence, int) or sequence <= 0:
            return 1
        last = self._last.get(gid)
        self._last[gid] = sequence
        if last is None or sequence <= last:
            return 1
        return sequence - last


class FrameIntake:
    """
    The node's frame subscriptions, taken on demand (see the module docstring).

    ``on_frame(msg, info, topic)`` receives each taken message with its rmw message info (a
    dict: ``received_timestamp``, ``publication_sequence_number``, ...) and the resolved topic
    it came from. ``wanted()`` says whether
    frames are needed now (requests queued or running, tracks). Thread-safe: ``demand`` runs
    in command callbacks, ``settle``/``peek`` in the watch timer, frames in executor threads.
    """

    def __init__(self, node, topics: List[tuple], qos, on_frame: Callable, mode: str,
                 wanted: Callable[[], bool], event_callbacks=None):
        self._node = node
        self._on_frame = on_frame
        self._wanted = wanted
        self.mode = mode
        self._lock = threading.RLock()  # ``then`` may answer at once, publishing under it
        self._gate = GatedGroup(is_open=mode == "every_frame")
        self._last_take = 0.0  # time.monotonic() of the last frame taken (or peek tried)
        self._skip_before_ns = 0  # frames received before this (system ns) are dropped
        self._seen_since_match = False  # a frame was taken since a camera (re)matched
        self._matched = 0
        self.subscriptions = [
            node.create_subscription(kind, topic, self._callback, qos,
                                     callback_group=self._gate, event_callbacks=event_callbacks)
            for kind, topic in topics]
        # one subscription per message type: the type says where a message came from
        self.topic_of = {s.msg_type: s.topic_name for s in self.subscriptions}

    @property
    def group(self) -> GatedGroup:
        """Return the gated callback group: other inputs taken only with the frames (depth)."""
        return self._gate

    @property
    def is_open(self) -> bool:
        """Tell whether every frame is taken now (serving or tracking, or every_frame)."""
        return self._gate.is_open

    def _callback(self, msg, info) -> None:
        self._last_take = time.monotonic()
        self._seen_since_match = True
        if self._skip_before_ns and info and \
                int(info.get("received_timestamp") or 0) < self._skip_before_ns:
            return  # older than the request (its arrival is counted with the next frame's)
        self._on_frame(msg, info, self.topic_of.get(type(msg), ""))

    def demand(self, then: Callable[[], object] = lambda: None, take_held: bool = True) -> int:
        """
        Open the gate and run ``then`` (which queues the request); the number of frames taken.

        ``take_held``: first take the frames the middleware holds, so the newest one is the
        node's before the request is queued (``latest``); else frames received before now
        are dropped as the executor takes them (``after_request``). The gate cannot close
        between opening and ``then``.
        """
        with self._lock:
            taken = 0
            if not self._gate.is_open:
                if take_held:
                    self._skip_before_ns = 0
                    taken = self._take_held()
                else:
                    self._skip_before_ns = time.time_ns()
            self._open()
            then()
        return taken

    def _open(self) -> None:
        if self._gate.is_open:
            return
        self._gate.is_open = True
        executor = self._node.executor
        if executor is not None:  # rebuild its wait set with the frame subscriptions
            executor.wake()

    def _take_held(self, most: int = 1 << 30) -> int:
        taken = 0
        for subscription in self.subscriptions:
            while taken < most:
                try:
                    with subscription.handle:
                        got = subscription.handle.take_message(subscription.msg_type,
                                                               subscription.raw)
                except Exception:  # destroyed meanwhile (deactivate)
                    break
                if got is None:
                    break
                taken += 1
                self._callback(*got)
        return taken

    def settle(self) -> bool:
        """Close the gate when no frame is wanted any more (on_demand); True when closed."""
        if self.mode == "every_frame":
            return False
        with self._lock:
            if self._gate.is_open and not self._wanted():
                self._gate.is_open = False
            return not self._gate.is_open

    def peek(self, matched: int, now: Optional[float] = None) -> int:
        """
        While idle, take one frame now and then (see the module docstring); 0 or 1.

        ``matched``: the camera publishers matched now (none: nothing to look at).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            if matched and not self._matched:
                self._seen_since_match = False
            self._matched = matched
            period = IDLE_PEEK_S if self._seen_since_match else 0.0
            if not matched or self._gate.is_open or now - self._last_take < period:
                return 0
            self._last_take = now  # also when nothing came: one try per period
            self._skip_before_ns = 0
            return self._take_held(most=1)

    def close(self) -> None:
        """Destroy the subscriptions (the node's deactivate)."""
        with self._lock:
            for subscription in self.subscriptions:
                self._node.destroy_subscription(subscription)
            self.subscriptions = []
