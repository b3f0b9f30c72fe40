"""
Episode recording: each answered instruction into a rosbag2 MCAP bag, off the hot path.

An episode is the messages of one answered instruction, written on the topics they came
from, so the bag reads (and ``ros2 bag play`` replays it) like one recorded with
``ros2 bag record``:

- the camera topic: the frame the instruction was answered on, exactly as the camera sent
  it (the message's own bytes: bayer, 16-bit, yuv or ``sensor_msgs/msg/CompressedImage`` on
  the ``.../compressed`` topic it came from). Only that frame: a 4K stream is 250 MB/s; once
  per bag when several instructions were answered on it. A frame without its message (the
  core's own callers) is written as rgb8 ``sensor_msgs/msg/Image`` on the camera topic;
- with depth on: the aligned depth image paired with that frame and the CameraInfo, as
  received, on their topics, so a 3D episode replays;
- the command topic: the instruction, ``std_msgs/msg/String`` (JSON with the request id);
- the detections topic: the node's ``finers_ros/msg/Detection``.

Log times are receive times on the node's clock (sim time with ``use_sim_time``): command,
then CameraInfo, depth and frame, then the outcome, as ``ros2 bag record`` stamps them. Each
topic's metadata carries the QoS profiles its publishers offered (as ``ros2 bag record``
writes them, so ``ros2 bag play`` offers the same). Bags are written with ``rosbags`` (its
MCAP writer embeds every message definition, including the Detection's, with the same RIHS01
hashes as rosidl).

Bounded: ``record()`` only enqueues (a bounded queue; a full queue drops the episode and
counts it), a writer thread serialises and writes, a bag that would pass ``max_bag_bytes``
is closed and a new one started, and recording stops with one warning when the disk has less
than ``min_free_bytes`` left after the next episode. A failing disk never reaches the node.
A bag is also finished after ``idle_finish_s`` (30 s) without episodes: rosbags reads an
MCAP file only once finished. An episode counts as written once it is on disk whole: its
frame (with depth and CameraInfo) ends an MCAP chunk, its command and Detection end the
next, and the file is flushed and fsynced. Of a bag whose writer was killed (power cut,
SIGKILL) or ran out of disk, ``finers-dataset export`` reads back every episode whose
Detection was written, with its frame; a cut inside an episode leaves at most its frame,
which alone is no episode.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from rclpy.serialization import serialize_message
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ..commands import command_text
from ..serving import Outcome
from .paths import share_dir

DETECTION_TYPE = "finers_ros/msg/Detection"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STRING_TYPE = "std_msgs/msg/String"
MB = 1 << 20


class RecorderError(RuntimeError):
    """The record directory cannot be used."""


def detection_msgdef_path() -> Path:
    """Detection.msg of the built interface that rclpy serialises (install prefix share/)."""
    import finers_ros.msg

    # <prefix>/lib/pythonX.Y/site-packages/finers_ros/msg/__init__.py
    prefix = Path(finers_ros.msg.__file__).resolve().parents[5]
    built = prefix / "share" / "finers_ros" / "msg" / "Detection.msg"
    return built if built.is_file() else share_dir() / "msg" / "Detection.msg"


def episode_typestore():
    """
    ROS 2 Kilted standard types plus ``finers_ros/msg/Detection`` from its .msg file.

    Raises RecorderError when that file does not describe the Detection rclpy serialises
    (msg/ edited but not rebuilt): the bag would be unreadable.
    """
    from finers_ros.msg import Detection

    store = get_typestore(Stores.ROS2_KILTED)
    path = detection_msgdef_path()
    store.register(get_types_from_msg(path.read_text(), DETECTION_TYPE))
    described = [name for name, _ in store.fielddefs[DETECTION_TYPE][1]]
    if described != list(Detection.get_fields_and_field_types()):
        raise RecorderError(f"{path} does not match the built finers_ros/msg/Detection "
                            f"(rebuild the interfaces: make interfaces)")
    return store


def msgtype_of(message) -> str:
    """Return the ROS type name of an rclpy message (``sensor_msgs/msg/Image``)."""
    module = type(message).__module__.split(".")  # sensor_msgs.msg._image
    return f"{module[0]}/msg/{type(message).__name__}"


INFINITE_S = 0x7FFFFFFF  # how rosbag2 writes an infinite duration: 2147483647 s 4294967295 ns


def _qos_time(duration) -> QosTime:
    nanoseconds = int(duration.nanoseconds)
    if nanoseconds <= 0:
        return QosTime(0, 0)
    sec, nsec = divmod(nanoseconds, 1_000_000_000)
    return QosTime(sec, nsec) if sec < INFINITE_S else QosTime(INFINITE_S, 0xFFFFFFFF)


def bag_qos(profile) -> Qos:
    """Return an rclpy QoSProfile as rosbags' ``Qos`` (the enums share rmw's numbers)."""
    return Qos(QosHistory(int(profile.history)), int(profile.depth),
               QosReliability(int(profile.reliability)), QosDurability(int(profile.durability)),
               _qos_time(profile.deadline), _qos_time(profile.lifespan),
               QosLiveliness(int(profile.liveliness)),
               _qos_time(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def offered_qos(node, topic: str) -> List[Qos]:
    """Return the QoS profiles the publishers of ``topic`` offer now (``ros2 bag record``'s)."""
    return [bag_qos(info.qos_profile) for info in node.get_publishers_info_by_topic(topic)]


@dataclass
class _Episode:
    command: str
    command_ns: int
    image: np.ndarray  # H x W x 3 uint8 RGB, the decoded frame
    frame_ns: int
    detection: object  # finers_ros.msg.Detection (rclpy), header = the frame's header
    detection_ns: int
    frame_source: Optional[Tuple[str, object]] = None  # (topic, message) the camera sent
    inputs: Sequence[Tuple[str, object]] = ()  # (topic, message): CameraInfo, depth


class EpisodeRecorder:
    """Writes episodes to ``directory/episodes_<UTC start>_<n>/`` rosbag2 MCAP bags."""

    def __init__(self, directory: str | Path, *, camera_topic: str, command_topic: str,
                 detections_topic: str, max_bag_bytes: int = 1024 * MB,
                 min_free_bytes: int = 1024 * MB, queue_limit: int = 4,
                 idle_finish_s: float = 30.0, warn: Optional[Callable[[str], None]] = None,
                 info: Optional[Callable[[str], None]] = None,
                 now_ns: Callable[[], int] = time.time_ns,
                 qos_of: Callable[[str], List[Qos]] = lambda topic: []):
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / ".finers-write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RecorderError(f"cannot record episodes into {self.directory}: {exc}") from exc
        if max_bag_bytes < MB or min_free_bytes < 0 or queue_limit < 1:
            raise RecorderError(f"bad recorder bounds: max_bag_bytes={max_bag_bytes} (>= 1 MiB), "
                                f"min_free_bytes={min_free_bytes}, queue_limit={queue_limit}")
        self.topics = {"camera": camera_topic, "command": command_topic,
                       "detections": detections_topic}
        self.max_bag_bytes = max_bag_bytes
        self.idle_finish_s = idle_finish_s
        self.min_free_bytes = min_free_bytes
        self._now_ns = now_ns  # the node's clock: sim time when the node uses it
        self._qos_of = qos_of
        self._warn = warn or logging.getLogger(__name__).warning
        self._info = info or logging.getLogger(__name__).info
        self._store = episode_typestore()
        self._session = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        self._queue: "queue.Queue[Optional[_Episode]]" = queue.Queue(maxsize=queue_limit)
        self._lock = threading.Lock()
        self._writer: Optional[Writer] = None
        self._connections: dict = {}
        self._bag_bytes = 0
        self._bag_frames: set = set()  # (topic, sec, nanosec, frame_id) of frames in the bag
        self.bags: list[Path] = []
        self.episodes = 0
        self.dropped = 0
        self.without_frame = 0
        self.stopped = ""  # why recording stopped, empty while it runs
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="episode-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- caller side (the node's worker thread): never blocks -----------------------------
    def record(self, outcome: Outcome, detection,
               inputs: Sequence[Tuple[str, object]] = ()) -> bool:
        """
        Queue one episode; False (and counted in ``dropped``) when it cannot be kept.

        ``inputs``: ``(topic, message)`` of what else the answer used (depth, CameraInfo).

        An outcome without a frame (empty instruction, no frame in time, ...) is no episode:
        nothing to learn from; it is counted in ``without_frame`` and not written.
        """
        if outcome.image is None or outcome.frame is None:
            with self._lock:
                self.without_frame += 1
            return False
        if self._closed or self.stopped:
            return self._drop()
        try:
            return self._enqueue(outcome, detection, inputs)
        except Exception as exc:  # whatever happens here must not reach the node's worker
            return self._drop(f"{type(exc).__name__}: {exc}")

    def _enqueue(self, outcome: Outcome, detection, inputs) -> bool:
        now_ns, now = int(self._now_ns()), time.monotonic()

        def wall(monotonic: float) -> int:  # a monotonic instant on the node's clock
            return max(0, now_ns - max(0, int((now - monotonic) * 1e9)))

        request = outcome.request
        episode = _Episode(
            command=command_text(request.instruction, request.question_type, request.options,
                                 request.request_id, request.track),
            command_ns=wall(request.received),
            image=outcome.image, frame_ns=wall(outcome.frame.received),
            detection=detection, detection_ns=now_ns,
            frame_source=getattr(outcome.frame, "source", None), inputs=tuple(inputs))
        try:
            self._queue.put_nowait(episode)
        except queue.Full:
            return self._drop("the writer is behind (queue full)")
        return True

    def _drop(self, reason: str = "") -> bool:
        with self._lock:
            self.dropped += 1
            dropped = self.dropped
        if reason and (dropped == 1 or dropped % 100 == 0):
            self._warn(f"episode recorder dropped an episode: {reason} ({dropped} dropped so far)")
        return False

    def stats(self) -> dict:
        with self._lock:
            return {"episodes": self.episodes, "dropped": self.dropped, "bags": len(self.bags),
                    "without_frame": self.without_frame,
                    "queued": self._queue.qsize(), "stopped": self.stopped}

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, finish the current bag (its index and metadata.yaml)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            self._warn("episode recorder: writer did not drain its queue; closing anyway")
        self._thread.join(timeout)
        stats = self.stats()
        self._info(f"episode recorder: {stats['episodes']} episode(s) in {stats['bags']} "
                   f"bag(s) under {self.directory}, {stats['dropped']} dropped, "
                   f"{stats['without_frame']} without a frame (not recorded)"
                   + (f"; stopped: {stats['stopped']}" if stats["stopped"] else ""))

    # -- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                episode = self._queue.get(timeout=self.idle_finish_s if self._writer else None)
            except queue.Empty:
                self._finish_bag()
                continue
            if episode is None:
                break
            if self.stopped:
                self._drop()
                continue
            try:
                self._write(episode)
            except Exception as exc:  # a full or failing disk must not reach the node
                self._stop(f"writing failed: {type(exc).__name__}: {exc}")
                self._drop()
        self._finish_bag()

    def _frame_parts(self, episode: _Episode) -> list:
        """``(topic, type, log ns, CDR)`` of the frame, then the inputs logged before it."""
        header = episode.detection.header
        if episode.frame_source is not None:
            topic, message = episode.frame_source
            frame = (topic, msgtype_of(message), episode.frame_ns, serialize_message(message))
        else:
            frame = (self.topics["camera"], IMAGE_TYPE, episode.frame_ns,
                     self._image_cdr(episode.image, header))
        inputs = [(topic, msgtype_of(message), episode.frame_ns - 1 - offset,
                   serialize_message(message))
                  for offset, (topic, message) in enumerate(reversed(episode.inputs))]
        return [frame] + inputs

    def _write(self, episode: _Episode) -> None:
        detection = episode.detection
        header = detection.header
        camera_topic = (episode.frame_source or (self.topics["camera"],))[0]
        frame_key = (camera_topic, header.stamp.sec, header.stamp.nanosec, header.frame_id)
        command = self._store.types[STRING_TYPE](data=episode.command)
        answer = [(self.topics["command"], STRING_TYPE, episode.command_ns,
                   self._serialize(command, STRING_TYPE)),
                  (self.topics["detections"], DETECTION_TYPE, episode.detection_ns,
                   serialize_message(detection))]
        frame_parts = self._frame_parts(episode)
        seen = frame_key in self._bag_frames  # a frame already in this bag is not repeated
        size = sum(len(data) for *_, data in answer + ([] if seen else frame_parts))
        free = shutil.disk_usage(self.directory).free
        if free - size < self.min_free_bytes:
            self._stop(f"only {free // MB} MiB free in {self.directory} (keeps at least "
                       f"{self.min_free_bytes // MB} MiB free)")
            self._drop()
            return
        if self._writer is not None and self._bag_bytes + size > self.max_bag_bytes:
            self._finish_bag()
        if self._writer is None:
            self._open_bag()
        if frame_key in self._bag_frames:
            frame_parts = []
        else:  # new, or in the bag just finished: this one needs it
            size = sum(len(data) for *_, data in answer + frame_parts)
            self._bag_frames.add(frame_key)
        self._write_chunk(sorted(frame_parts, key=lambda part: part[2]))
        self._write_chunk(answer)
        self._sync()
        self._bag_bytes += size
        with self._lock:
            self.episodes += 1

    def _write_chunk(self, parts: list) -> None:
        """
        Write ``(topic, type, log ns, CDR)`` parts and end the MCAP chunk they are in.

        rosbags ends a chunk only once it passes 1 MiB (``McapWriter.close_chunk``; its
        ``Writer`` has no flush): the chunk left open would hold this episode's last messages
        until the next episode filled it, and a killed writer loses an open chunk. An episode
        is written as its frame's chunk(s), then one chunk of its command and Detection, so a
        cut file gives back whole episodes only: a frame without its command is no episode.
        """
        for topic, msgtype, stamp_ns, data in parts:
            self._writer.write(self._connection(topic, msgtype), stamp_ns, data)
        storage = self._writer.storage
        if storage.chunk.bio.tell():  # a message over 1 MiB has already ended its chunk
            storage.close_chunk()

    def _sync(self) -> None:
        """Hand the episode's chunks to the OS (a SIGKILL keeps them), then to the disk."""
        stream = self._writer.storage.bio
        stream.flush()
        os.fsync(stream.fileno())  # a power cut keeps them too

    def _serialize(self, message, msgtype: str) -> memoryview:
        return self._store.serialize_cdr(message, msgtype)

    def _image_cdr(self, image: np.ndarray, header) -> memoryview:
        """rgb8 ``sensor_msgs/msg/Image`` of an ``H x W x 3 uint8`` frame, the frame's header."""
        types = self._store.types
        height, width = image.shape[:2]
        message = types[IMAGE_TYPE](
            header=types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=header.stamp.sec,
                                                           nanosec=header.stamp.nanosec),
                frame_id=header.frame_id),
            height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
            data=np.ascontiguousarray(image, dtype=np.uint8).reshape(-1))
        return self._serialize(message, IMAGE_TYPE)

    def _open_bag(self) -> None:
        path = self.directory / f"episodes_{self._session}_{len(self.bags):03d}"
        while path.exists():
            path = path.with_name(path.name + "_")
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        self._connections = {}
        self._writer = writer
        self._bag_bytes = 0
        self._bag_frames = set()
        with self._lock:
            self.bags.append(path)

    def _connection(self, topic: str, msgtype: str):
        """Return the connection of ``topic`` (added on its first message, with offered QoS)."""
        key = (topic, msgtype)
        if key not in self._connections:
            try:
                qos = list(self._qos_of(topic))
            except Exception as exc:  # the graph query failed: the bag is still usable
                self._warn(f"episode recorder: no offered QoS for {topic}: {exc}")
                qos = []
            self._connections[key] = self._writer.add_connection(
                topic, msgtype, typestore=self._store, offered_qos_profiles=qos)
        return self._connections[key]

    def _finish_bag(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as exc:
            self._warn(f"episode recorder: could not finish {writer.path}: {exc}")

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self.stopped:
                return
            self.stopped = reason
        self._warn(f"episode recording stopped: {reason}")
        self._finish_bag()


def start_recorder(node, camera_topic: str, command_topic: str,
                   detections_topic: str) -> Optional[EpisodeRecorder]:
    """
    Start the node's recorder when its ``record_dir`` parameter is set, else return None.

    Topic names are resolved (namespace, remapping) as the node uses them. A directory that
    cannot be used is logged as an error and the node serves without recording.
    """
    settings, logger = node.settings, node.get_logger()
    if not getattr(settings, "record_dir", ""):
        return None
    try:
        recorder = EpisodeRecorder(
            settings.record_dir, camera_topic=node.resolve_topic_name(camera_topic),
            command_topic=node.resolve_topic_name(command_topic),
            detections_topic=node.resolve_topic_name(detections_topic),
            max_bag_bytes=int(settings.record_max_bag_mb) * MB,
            min_free_bytes=int(settings.record_min_free_mb) * MB,
            queue_limit=int(settings.record_queue_limit), warn=logger.warning,
            info=logger.info, now_ns=lambda: node.get_clock().now().nanoseconds,
            qos_of=lambda topic: offered_qos(node, topic))
    except RecorderError as exc:
        logger.error(f"episodes are not recorded: {exc}")
        return None
    logger.info(f"recording episodes into {recorder.directory} (rosbag2 MCAP, "
                f"{settings.record_max_bag_mb} MiB per bag)")
    return recorder
