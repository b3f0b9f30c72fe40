"""
The node's optional depth input: an aligned depth image and the colour camera's CameraInfo.

Topics (relative names, resolved in the node's namespace; remap them to the camera driver's):

- ``camera/aligned_depth/image_raw``: ``sensor_msgs/Image``, ``16UC1`` (mm) or ``32FC1`` (m),
  registered to the colour camera (same field of view; any resolution of the same aspect);
- ``camera/camera_info``: ``sensor_msgs/CameraInfo`` of the colour camera (``K``, ``D``, ``P``).

Depth, CameraInfo and colour must share one ``frame_id`` (registered depth is in the colour
camera's frame), or there is no point: a depth image or calibration of another camera would
put it in the wrong place. The colour topic carries a raw or a rectified image
(``depth_camera_model``; ``auto`` reads the colour topic the node subscribed, remapped,
without image_transport's ``/compressed``), which decides
whether ``K, D`` or ``P`` back-project its pixels (``finers_ros.depth3d.camera_image``).

Depth frames and CameraInfo wait in small bounded buffers, undecoded and unchecked. A colour
frame is paired with the depth frame nearest to its stamp within the slop, and with the
CameraInfo nearest to it within the slop (a driver stamps it as the frame), else the newest
CameraInfo (a calibration published on its own). Because a request may run for seconds
while depth keeps streaming, the pairing is also *pinned* when the worker takes the colour
frame (``pinning`` wraps the frame's decode): the depth frame and CameraInfo nearest at that
moment are kept aside for that stamp, so they are still there when the outcome is published
(and recorded). Both subscriptions are in the colour frames' callback group: with on-demand
intake an idle node takes neither. The 3D result itself comes from ``finers_ros.depth3d``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Optional

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ..depth3d import CameraModel, DepthOptions, No3D, Target3D, locate_target
from ..depth3d import camera_image as image_kind
from ..stamp_buffer import StampBuffer, pick_nearest
from .image_codec import ImageFormatError, depth_to_metres
from .markers import TargetPublisher

DEPTH_TOPIC = "camera/aligned_depth/image_raw"
CAMERA_INFO_TOPIC = "camera/camera_info"
COLOUR_TOPIC = "camera/image_raw"  # the node's colour input (node.CAMERA_TOPIC)
DEPTH_BUFFER = 10  # depth frames kept for pairing (a third of a second at 30 Hz)
INFO_BUFFER = 10  # CameraInfo messages kept for pairing, likewise
LATE_DEPTH_WAIT_S = 0.5  # how long an outcome waits for its frame's depth, at most
PINNED = 16  # depth frames kept aside for colour frames being served


def stamp_ns(stamp) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def camera_model(info: CameraInfo, image: str = "raw") -> CameraModel:
    """
    Return the model of the colour camera's ``image`` (raw or rectified) from its CameraInfo.

    Raises ``No3D`` saying why there is none.
    """
    return CameraModel.from_camera_info(
        info.k,
        info.d,
        info.distortion_model,
        info.width,
        info.height,
        info.binning_x,
        info.binning_y,
        info.roi.width,
        info.roi.height,
        p=info.p,
        image=image,
    )


def frame_problem(colour_frame: str, depth_frame: str, info_frame: str) -> str:
    """
    Say why depth or CameraInfo do not belong to the colour frame (one line; "" when they do).

    Frame ids compare without a leading "/"; an empty one differs from a set one.
    """
    colour, depth, info = (name.lstrip("/") for name in (colour_frame, depth_frame, info_frame))
    if depth != colour:
        return (f"depth frame_id {depth_frame!r} is not the colour frame's {colour_frame!r}: "
                "the depth image must be registered (aligned) to the colour camera")
    if info != colour:
        return (f"CameraInfo frame_id {info_frame!r} is not the colour frame's "
                f"{colour_frame!r}: camera/camera_info must be the colour camera's")
    return ""


class PairedStream:
    """
    One stamped input (depth frames or CameraInfo): the newest messages, and those pinned.

    Not thread-safe on its own: ``DepthInput`` calls it under its condition's lock.
    """

    def __init__(self, recent: int):
        self.recent = StampBuffer(recent)
        self.pinned = StampBuffer(PINNED)
        self.newest = None  # the last message received (kept across unsubscribe)

    def add(self, msg, wanted, slop_ns: int) -> None:
        """Keep ``msg``; pinned too when within the slop of a colour stamp being served."""
        stamp = stamp_ns(msg.header.stamp)
        self.recent.add(stamp, msg)
        self.newest = msg
        if any(abs(stamp - colour) <= slop_ns for colour in wanted):
            self.pinned.add(stamp, msg)

    def pin(self, wanted: int, slop_ns: int) -> None:
        """Keep aside the message nearest to the colour stamp ``wanted`` (ns), if any."""
        msg, _ = pick_nearest(self.recent.entries(), wanted, slop_ns)
        if msg is not None:
            self.pinned.add(stamp_ns(msg.header.stamp), msg)

    def entries(self) -> list:
        """``(stamp ns, message)`` pinned and recent."""
        return self.pinned.entries() + self.recent.entries()

    def clear(self) -> None:
        self.recent.clear()
        self.pinned.clear()


class DepthInput:
    """Depth + CameraInfo subscriptions on ``node`` and the 3D result of a target's mask."""

    def __init__(self, node, slop_s: float = 0.05, options: DepthOptions = DepthOptions(),
                 camera_image: str = "auto", colour_topic: str = COLOUR_TOPIC):
        self._node = node
        self.slop_ns = int(round(slop_s * 1e9))
        self.options = options
        self._depths = PairedStream(DEPTH_BUFFER)
        self._infos = PairedStream(INFO_BUFFER)
        self._wanted: deque = deque(maxlen=PINNED)  # colour stamps being served, ns
        self._arrived = threading.Condition()  # a depth frame or CameraInfo came in
        self._warned = set()
        self._warn_lock = threading.Lock()
        self._subscriptions: list = []
        self.depth_topic = node.resolve_topic_name(DEPTH_TOPIC)
        self.camera_info_topic = node.resolve_topic_name(CAMERA_INFO_TOPIC)
        self._camera_image = camera_image
        self.colour_topic = node.resolve_topic_name(colour_topic)  # remapped
        self.image, self.image_rule = image_kind(camera_image, self.colour_topic)

    def subscribe(self, callback_group=None, colour_topic: str = "") -> None:
        """
        Start taking depth frames and CameraInfo (the node's activate).

        ``callback_group``: theirs, the colour frames' gated group with on-demand intake, so
        depth and CameraInfo are taken only while colour frames are. ``colour_topic``: the
        colour frames' subscribed topic (resolved; a CompressedImage one with the compressed
        transport), which ``auto`` reads.
        """
        if self._subscriptions:
            return
        if colour_topic:
            self.colour_topic = colour_topic
            self.image, self.image_rule = image_kind(self._camera_image, colour_topic)
        self._subscriptions = [
            self._node.create_subscription(
                Image, DEPTH_TOPIC, self._on_depth, qos_profile_sensor_data,
                callback_group=callback_group,
            ),
            self._node.create_subscription(
                CameraInfo, CAMERA_INFO_TOPIC, self._on_info, qos_profile_sensor_data,
                callback_group=callback_group,
            ),
        ]
        self.depth_topic = self._subscriptions[0].topic_name
        self.camera_info_topic = self._subscriptions[1].topic_name
        uses = "CameraInfo P, no distortion" if self.image == "rectified" else "CameraInfo K, D"
        self._node.get_logger().info(
            f"3D: colour frames on {self.colour_topic} are {self.image} images "
            f"({self.image_rule}): back-projected with {uses}"
        )

    def unsubscribe(self) -> None:
        """Stop taking depth (the node's deactivate); buffered frames are dropped."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []
        with self._arrived:
            self._depths.clear()
            self._infos.clear()
            self._wanted.clear()

    # -- intake (executor callbacks: store only, decode nothing) ---------------------------
    def _on_depth(self, msg: Image) -> None:
        with self._arrived:  # published after its colour frame was taken: pinned as it comes
            self._depths.add(msg, self._wanted, self.slop_ns)
            self._arrived.notify_all()

    def _on_info(self, msg: CameraInfo) -> None:
        """Keep the CameraInfo; it is checked when a target is located with it."""
        with self._arrived:
            self._infos.add(msg, self._wanted, self.slop_ns)
            self._arrived.notify_all()

    def pin(self, stamp) -> None:
        """
        Keep aside the depth frames and CameraInfo near the colour stamp (a run starts).

        The nearest ones already here, and any within the slop that arrive later.
        """
        wanted = stamp_ns(stamp)
        with self._arrived:
            self._wanted.append(wanted)
            self._depths.pin(wanted, self.slop_ns)
            self._infos.pin(wanted, self.slop_ns)

    def pinning(self, decode: Callable, header) -> Callable:
        """``decode`` that pins the colour frame's depth first (the worker calls it once)."""

        def decode_and_pin():
            self.pin(header.stamp)
            return decode()

        return decode_and_pin

    # -- the 3D result (worker thread) ----------------------------------------------------
    def locate(self, header, mask: Optional[np.ndarray]) -> Target3D:
        """Locate a target's ``H x W`` bool mask (colour frame of ``header``) in 3D."""
        if mask is None or not mask.any():
            return Target3D.none("no target mask")
        depth_msg, reason = self._paired(stamp_ns(header.stamp))
        info = self._info_of(stamp_ns(header.stamp))
        if info is None:
            return Target3D.none(f"no CameraInfo received on {self.camera_info_topic}")
        try:
            camera = camera_model(info, self.image)
        except No3D as exc:
            self._warn_once(
                f"CameraInfo on {self.camera_info_topic} is unusable: {exc}; "
                "no 3D positions until it is fixed"
            )
            return Target3D.none(str(exc))
        if depth_msg is None:
            return Target3D.none(
                reason.replace("depth frame", f"depth frame on {self.depth_topic}")
            )
        problem = frame_problem(
            header.frame_id, depth_msg.header.frame_id, info.header.frame_id
        )
        if problem:
            self._warn_once(f"no 3D positions: {problem}")
            return Target3D.none(problem)
        try:
            depth = depth_to_metres(
                depth_msg.encoding,
                depth_msg.width,
                depth_msg.height,
                depth_msg.step,
                depth_msg.data,
                bool(depth_msg.is_bigendian),
            )
        except ImageFormatError as exc:
            self._warn_once(f"depth image on {self.depth_topic}: {exc}")
            return Target3D.none(f"bad depth image: {exc}")
        return locate_target(mask, depth, camera, self.options)

    def _paired(self, wanted: int):
        """
        ``(depth Image, "")`` nearest to the colour stamp ``wanted`` (ns), or ``(None, why)``.

        While depth is streaming and none within the slop is here yet, waits (at most
        ``LATE_DEPTH_WAIT_S``) for the frame's depth, which drivers publish after colour; and
        while no CameraInfo came yet (the frames' group just opened: it is being taken).
        """
        deadline = time.monotonic() + LATE_DEPTH_WAIT_S
        with self._arrived:
            while True:
                entries = self._depths.entries()
                msg, reason = pick_nearest(entries, wanted, self.slop_ns)
                if not entries:  # no depth publisher at all
                    break
                if msg is not None and self._infos.newest is not None:
                    break
                if msg is None and max(stamp for stamp, _ in entries) > wanted + self.slop_ns:
                    break  # newer frames are already past the slop: none will be nearer
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            if wanted in self._wanted:
                self._wanted.remove(wanted)
        return msg, reason

    def _info_of(self, wanted: int) -> Optional[CameraInfo]:
        """
        Return the CameraInfo nearest to the colour stamp ``wanted`` (ns) within the slop.

        Else the newest one (a calibration stamped on its own), None before any came.
        """
        with self._arrived:
            msg, _ = pick_nearest(self._infos.entries(), wanted, self.slop_ns)
            return msg if msg is not None else self._infos.newest

    def inputs_of(self, header) -> list:
        """
        Return ``(topic, message)`` of the CameraInfo and the colour frame's depth, as received.

        What a recording needs to replay the frame's 3D answer: none without a paired depth
        frame, the frame's CameraInfo (paired as ``locate`` pairs it) and that depth frame
        otherwise.
        """
        wanted = stamp_ns(header.stamp)
        with self._arrived:
            entries = self._depths.entries()
        msg, _ = pick_nearest(entries, wanted, self.slop_ns)
        if msg is None:
            return []
        info = self._info_of(wanted)
        return ([] if info is None else [(self.camera_info_topic, info)]) + [
            (self.depth_topic, msg)]

    def _warn_once(self, text: str) -> None:
        with self._warn_lock:
            if text in self._warned:
                return
            self._warned.add(text)
        self._node.get_logger().warning(text)

    def close(self) -> None:
        self.unsubscribe()
        self._infos.newest = None


class DepthStage:
    """
    What the node needs for 3D results: the depth input and the point/marker outputs.

    Created on configure when ``depth_enabled`` (publishers), subscribed on activate;
    ``pinning`` wraps each colour frame's decode, ``locate`` and ``publish`` run per outcome
    in the worker thread.
    """

    def __init__(self, node, settings, colour_topic: str = COLOUR_TOPIC):
        options = DepthOptions(max_range_m=float(settings.depth_max_range_m))
        self.input = DepthInput(
            node, float(settings.depth_slop_s), options, settings.depth_camera_model, colour_topic
        )
        self.outputs = TargetPublisher(node, cloud=bool(settings.publish_target_points))

    def subscribe(self, callback_group=None, colour_topic: str = "") -> None:
        self.input.subscribe(callback_group, colour_topic)

    def unsubscribe(self) -> None:
        self.input.unsubscribe()

    def pinning(self, decode: Callable, header) -> Callable:
        return self.input.pinning(decode, header)

    def locate(self, outcome) -> Target3D:
        """
        Locate a serving outcome's target (its colour frame's header and mask) in 3D.

        Never raises, so a 3D problem cannot cost the outcome its Detection.
        """
        result = outcome.result
        if result.error or not result.found:
            return Target3D.none("request failed" if result.error else "no target found")
        frame_header = getattr(outcome.frame, "header", None)
        if frame_header is None:
            return Target3D.none("no colour frame header")
        try:
            return self.input.locate(frame_header, result.mask)
        except Exception as exc:  # a bug here must not lose the Detection
            return Target3D.none(f"3D failed: {type(exc).__name__}: {exc}")

    def recorded_inputs(self, outcome) -> list:
        """``(topic, message)`` of the CameraInfo and depth of an outcome's colour frame."""
        header = getattr(outcome.frame, "header", None)
        return self.input.inputs_of(header) if header is not None else []

    def publish(self, detection, target: Target3D) -> None:
        """Publish point, markers (and cloud) with the Detection's header (the colour frame's)."""
        self.outputs.publish(detection.header, target, detection.instruction, detection.answer)

    def close(self) -> None:
        self.input.close()
        self.outputs.close()
