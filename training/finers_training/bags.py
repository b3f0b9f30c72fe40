"""
Episodes from rosbag2 recordings (MCAP or sqlite3), read with ``rosbags``: no ROS needed.

Two kinds of bag read the same way: the node's own episode bags (``record_dir``) and bags a
user recorded with ``ros2 bag record`` of the camera topic, ``finers/command`` and
``finers/detections``. Each instruction becomes one ``BagEpisode``:

- with a Detection: the Detection's header echoes the stamp of the frame it was answered on,
  and that frame (the last one logged with that stamp before the Detection, else the first
  logged after it) is the episode's;
  its command is the one with the Detection's request id, else the oldest unanswered command
  with the same instruction text;
- a command without a Detection gets the first frame logged at or after it.

Bags are read twice (stamps first, then only the frames episodes need), so a long 4K
recording never sits in memory. Episodes that cannot be used carry a one-line ``problem``
instead of being left out, so callers count them; the text before its first colon is
a stable kind to count by.
"""
from __future__ import annotations

import bisect
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from finers_ros.commands import parse_command
from finers_ros.ros.image_codec import ImageFormatError, compressed_to_rgb, image_to_rgb
from finers_ros.ros.paths import share_dir

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
STRING_TYPE = "std_msgs/msg/String"
DETECTION_TYPE = "finers_ros/msg/Detection"
NODE_IMAGE_OUTPUTS = ("finers/mask", "finers/overlay")


def is_depth_topic(topic: str) -> bool:
    """Tell a depth image topic (``camera/aligned_depth/image_raw``, ``depth/image_rect``)."""
    return any(part == "depth" or part.startswith(("depth_", "aligned_depth"))
               or part.endswith("_depth") for part in topic.split("/"))


def _one_camera(topics: Sequence[str]) -> bool:
    """Tell whether topics are one camera: a raw topic and its ``/compressed`` transport."""
    return len(topics) == 2 and topics[1] == topics[0] + "/compressed"


class BagError(ValueError):
    """A bag that cannot be read, or whose topics are ambiguous; one line."""


class BagTopicsError(BagError):
    """A readable bag without the topics wanted (a topic named that it lacks, or several)."""


@dataclass
class BagDetection:
    """What the node answered (native pixels of the frame, XYXY inclusive boxes)."""

    found: bool
    answer: str
    error: str
    error_stage: str
    box: Tuple[float, float, float, float]
    points: List[Tuple[float, float]]
    region: Tuple[float, float, float, float]
    score: float
    backend: str
    mask: Optional[np.ndarray]  # H x W bool, the full frame; None when the node sent none


@dataclass
class BagEpisode:
    """One instruction and the frame it belongs to; ``problem`` says why it is unusable."""

    bag: Path
    instruction: str
    question_type: str = "referring"  # as sent on the command topic (referring|open|option|...)
    options: Optional[List[str]] = None
    request_id: str = ""
    stamp_ns: int = 0  # the frame's header stamp
    frame_id: str = ""
    image: Optional[np.ndarray] = None  # H x W x 3 uint8 RGB
    detection: Optional[BagDetection] = None
    problem: str = ""


@dataclass
class _Index:
    """Pass one: what the bag holds, without pixels."""

    commands: List[Tuple[int, dict]] = field(default_factory=list)  # (log ns, parsed command)
    detections: List[Tuple[int, object]] = field(default_factory=list)  # (log ns, message)
    # (log ns, header stamp ns, frame_id) of every camera frame
    frames: List[Tuple[int, int, str]] = field(default_factory=list)


def default_typestore():
    """Kilted standard types and the Detection, for bags without embedded definitions."""
    store = get_typestore(Stores.ROS2_KILTED)
    msg = share_dir() / "msg" / "Detection.msg"
    if msg.is_file():
        store.register(get_types_from_msg(msg.read_text(), DETECTION_TYPE))
    return store


def _starts_as_mcap(path: Path) -> bool:
    """Tell whether the file begins with the MCAP magic (a recording, finished or not)."""
    try:
        with path.open("rb") as stream:
            return stream.read(5) == b"\x89MCAP"
    except OSError:
        return False


def recover_unfinished_mcap(path: Path, into: Path) -> int:
    """
    Rewrite what a killed writer left in ``path`` as a finished MCAP bag at ``into``.

    Such a file has no summary or footer, so rosbags cannot open it; its complete records
    (schemas, channels, and every chunk written before the cut) are read in order with the
    ``mcap`` stream reader up to the first cut record. Returns the messages kept.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    store = get_typestore(Stores.EMPTY)
    schemas: dict = {}
    connections: dict = {}
    kept = 0
    writer = Writer(into, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    try:
        with path.open("rb") as stream:
            try:
                for record in StreamReader(stream, emit_chunks=False).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel) and record.schema_id in schemas:
                        schema = schemas[record.schema_id]
                        if schema.encoding != "ros2msg" or record.topic in writer.connections:
                            continue
                        store.register(get_types_from_msg(schema.data.decode(), schema.name))
                        connections[record.id] = writer.add_connection(
                            record.topic, schema.name, typestore=store)
                    elif isinstance(record, Message) and record.channel_id in connections:
                        writer.write(connections[record.channel_id], record.log_time,
                                     record.data)
                        kept += 1
            except (McapError, ValueError, KeyError, struct.error):
                pass  # the cut: a record the killed writer had not finished
    finally:
        writer.close()
    return kept


def bag_paths(paths: Iterable[str | Path]) -> List[Path]:
    """
    Bags named by ``paths``: bag folders, .mcap/.db3 files, or folders of bags.

    A folder whose bag has no metadata.yaml (a recorder that was killed) is read through
    its .mcap and .db3 files directly.
    """
    found: List[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise BagError(f"{path}: no such bag")
        if path.is_file() or (path / "metadata.yaml").is_file():
            found.append(path)
            continue
        inner = sorted(p for p in path.iterdir()
                       if p.is_dir() and (p / "metadata.yaml").is_file())
        files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
        orphans = sorted(p for p in path.iterdir()
                         if p.is_dir() and not (p / "metadata.yaml").exists())
        here = inner + files + [f for o in orphans for pattern in ("*.mcap", "*.db3")
                                for f in sorted(o.glob(pattern))]
        if not inner and not files and not orphans:
            raise BagError(f"{path}: neither a rosbag2 bag nor a folder of bags")
        if not here:
            below = ", ".join(str(o) for o in orphans[:3])
            raise BagError(f"{path}: no rosbag2 bag in it or in its folders ({below}); bags "
                           "are looked for one folder down: name the folder that holds them")
        found += here
    return found


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _pick(connections, msgtypes: Sequence[str], topic: Optional[str], option: str,
          suffix: str = "", exclude: Sequence[str] = ()) -> list:
    """
    Pick the connections of the wanted topic.

    The one named, else the one of that type (whose name ends with ``suffix`` when given),
    never one whose name ends with ``exclude``.
    """
    typed = [c for c in connections if c.msgtype in msgtypes]
    if topic:
        named = [c for c in typed if c.topic == topic]
        if not named:  # a mistyped name must not read as "no detections"
            have = ", ".join(sorted({c.topic for c in connections})) or "no topics"
            raise BagTopicsError(f"no topic {topic!r} of type {'/'.join(msgtypes)} "
                                 f"({option}); the bag has: {have}")
        return named
    chosen = [c for c in typed if c.topic.endswith(suffix)
              and not any(c.topic.endswith(e) for e in exclude)]
    if COMPRESSED_TYPE in msgtypes:  # the camera: never a depth image
        chosen = [c for c in chosen if not is_depth_topic(c.topic)]
    topics = sorted({c.topic for c in chosen})
    if len(topics) > 1 and not _one_camera(topics):
        raise BagTopicsError(f"several {'/'.join(msgtypes)} topics ({', '.join(topics)}): "
                             f"name one ({option})")
    return chosen


def _detection(msg) -> BagDetection:
    """Return the Detection's fields; raise ValueError when its mask does not fit its ROI/frame."""
    mask = None
    roi, width, height = msg.mask_roi, msg.image_width, msg.image_height
    if roi.width and roi.height:
        pixels = np.asarray(msg.mask, np.uint8)
        if (pixels.size != roi.width * roi.height or roi.x_offset + roi.width > width
                or roi.y_offset + roi.height > height):
            raise ValueError(f"mask of {pixels.size} bytes, mask_roi {roi.width}x{roi.height} "
                             f"at ({roi.x_offset}, {roi.y_offset}) in a {width}x{height} frame")
        mask = np.zeros((height, width), bool)
        mask[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width] = (
            pixels.reshape(roi.height, roi.width) > 0)
    return BagDetection(
        found=bool(msg.found), answer=msg.answer, error=msg.error, error_stage=msg.error_stage,
        box=tuple(float(v) for v in msg.box), region=tuple(float(v) for v in msg.region),
        points=[(float(p.x), float(p.y)) for p in msg.points], score=float(msg.score),
        backend=msg.backend, mask=mask)


class BagEpisodes:
    """The episodes of one bag; iterate to get them in frame order (pixels decoded lazily)."""

    def __init__(self, path: str | Path, camera_topic: Optional[str] = None,
                 command_topic: Optional[str] = None, detections_topic: Optional[str] = None):
        self.path = Path(path)
        self.topics = {"camera": camera_topic, "command": command_topic,
                       "detections": detections_topic}
        self.note = ""  # set when the bag was an unfinished recording read back in part
        self.held = ""  # what the first pass found (frames, instructions, Detections by topic)
        self._scratch: Optional[tempfile.TemporaryDirectory] = None

    def _open(self) -> AnyReader:
        try:
            return self._reader(self.path)
        except (AnyReaderError, OSError, ValueError, KeyError) as exc:
            unfinished = (self.path.suffix == ".mcap" and _starts_as_mcap(self.path)
                          and not (self.path.parent / "metadata.yaml").exists())
            if not unfinished:
                raise BagError(f"{self.path}: cannot read the bag: {exc}") from exc
            why = exc
        self._scratch = tempfile.TemporaryDirectory(prefix="finers-recovered-")
        recovered = Path(self._scratch.name) / "bag"
        try:
            kept = recover_unfinished_mcap(self.path, recovered)
            reader = self._reader(recovered) if kept else None
        except (AnyReaderError, OSError, ValueError, KeyError) as exc:
            why, reader = exc, None
        if reader is None:
            self._cleanup()
            raise BagError(f"{self.path}: cannot read the bag (an unfinished recording: its "
                           f"writer was killed, nothing complete in it): {why}")
        self.note = (f"{self.path}: an unfinished recording (its writer was killed): read "
                     f"{kept} complete message(s) back")
        return reader

    @staticmethod
    def _reader(path: Path) -> AnyReader:
        reader = AnyReader([path], default_typestore=default_typestore())
        reader.open()
        return reader

    def _cleanup(self) -> None:
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            scratch.cleanup()

    def _connections(self, reader: AnyReader) -> Dict[str, list]:
        try:
            return self._pick_all(reader.connections)
        except BagError as exc:
            if str(exc).startswith(str(self.path)):
                raise
            raise type(exc)(f"{self.path}: {exc}") from None

    def _pick_all(self, conns) -> Dict[str, list]:
        picked = {
            "camera": _pick(conns, (IMAGE_TYPE, COMPRESSED_TYPE), self.topics["camera"],
                            "camera_topic", exclude=NODE_IMAGE_OUTPUTS),
            "command": _pick(conns, (STRING_TYPE,), self.topics["command"], "command_topic",
                             suffix="finers/command"),
            "detections": _pick(conns, (DETECTION_TYPE,), self.topics["detections"],
                                "detections_topic"),
        }
        if not picked["camera"]:
            raise BagTopicsError(f"{self.path}: no camera topic (sensor_msgs Image or "
                                 "CompressedImage)")
        if not picked["command"] and not picked["detections"]:
            raise BagTopicsError(f"{self.path}: neither a finers/command nor a Detection topic")
        return picked

    def _index(self, reader: AnyReader, picked: Dict[str, list]) -> _Index:
        index = _Index()
        kinds = {c.id: kind for kind, cs in picked.items() for c in cs}
        wanted = [c for cs in picked.values() for c in cs]
        for conn, log_ns, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            kind = kinds[conn.id]
            if kind == "command":
                command = parse_command(msg.data)
                if "instruction" in command:  # not a stop_track command
                    index.commands.append((log_ns, command))
            elif kind == "detections":
                index.detections.append((log_ns, msg))
            else:
                index.frames.append((log_ns, _stamp_ns(msg.header), msg.header.frame_id))
        return index

    def _pair(self, index: _Index) -> Tuple[List[BagEpisode], Dict[int, List[BagEpisode]]]:
        """Episodes without a frame, and episodes by the index of the frame they need."""
        used: set = set()
        loose: List[BagEpisode] = []
        by_frame: Dict[int, List[BagEpisode]] = {}

        def command_for(log_ns: int, msg) -> dict:
            """
            Find the Detection's command.

            The oldest unanswered one with its request id and the instruction it echoes, else
            with that instruction (an id reused by two clients is not enough), else with that
            id.
            """
            waiting = [i for i, (t, _) in enumerate(index.commands)
                       if i not in used and t <= log_ns]
            same_id = [i for i in waiting
                       if msg.request_id and index.commands[i][1]["request_id"] == msg.request_id]
            same_text = [i for i in waiting
                         if index.commands[i][1]["instruction"][:4096] == msg.instruction]
            both = [i for i in same_id if i in same_text]
            chosen = (both or same_text or same_id or [None])[0]
            if chosen is None:  # the command was not recorded: the Detection repeats its text
                return {"instruction": msg.instruction, "question_type": "referring",
                        "options": None}
            used.add(chosen)
            return index.commands[chosen][1]

        by_stamp: Dict[Tuple[int, str], List[int]] = {}
        for number, (_, stamp_ns, frame_id) in enumerate(index.frames):
            by_stamp.setdefault((stamp_ns, frame_id), []).append(number)
        frame_times = [frame[0] for frame in index.frames]  # log order: sorted
        for log_ns, msg in index.detections:
            command = command_for(log_ns, msg)
            stamp = _stamp_ns(msg.header)
            episode = BagEpisode(self.path, command["instruction"], command["question_type"],
                                 command["options"], msg.request_id, stamp, msg.header.frame_id)
            try:
                episode.detection = _detection(msg)
            except ValueError as exc:
                episode.problem = f"malformed Detection: {exc}"
            stamped = by_stamp.get((stamp, msg.header.frame_id), [])
            # the newest frame with that stamp logged before the Detection (the one the node
            # had), else the first logged after it (a recorder may log a 4K frame late)
            matches = [n for n in stamped if index.frames[n][0] <= log_ns][-1:] or stamped[:1]
            if episode.detection and episode.detection.error:
                episode.problem = (f"the node answered with an error: [{msg.error_stage}] "
                                   f"{msg.error}")
            elif not matches and not episode.problem:
                episode.problem = (f"its frame is not in the bag: none on the camera topic is "
                                   f"stamped {stamp // 10**9}.{stamp % 10**9:09d} s "
                                   f"({msg.header.frame_id!r})")
            if episode.problem:
                loose.append(episode)
            else:
                by_frame.setdefault(matches[-1], []).append(episode)
        for i, (log_ns, command) in enumerate(index.commands):
            if i in used:
                continue
            episode = BagEpisode(self.path, command["instruction"], command["question_type"],
                                 command["options"], command["request_id"])
            after = bisect.bisect_left(frame_times, log_ns)
            if after == len(frame_times):
                episode.problem = "no camera frame after the instruction"
                loose.append(episode)
            else:
                episode.stamp_ns, episode.frame_id = index.frames[after][1:]
                by_frame.setdefault(after, []).append(episode)
        return loose, by_frame

    def __iter__(self) -> Iterator[BagEpisode]:
        reader = self._open()
        try:
            yield from self._episodes(reader)
        except AnyReaderError as exc:  # a message that does not deserialize
            raise BagError(f"{self.path}: {exc}") from exc
        finally:
            reader.close()
            self._cleanup()

    def _episodes(self, reader: AnyReader) -> Iterator[BagEpisode]:
        picked = self._connections(reader)
        index = self._index(reader, picked)
        self.held = _held(index, picked)
        loose, by_frame = self._pair(index)
        yield from loose
        frames = reader.messages(connections=picked["camera"]) if by_frame else ()
        for number, (conn, _, raw) in enumerate(frames):
            if number not in by_frame:
                continue
            try:
                image, problem = _decode(reader.deserialize(raw, conn.msgtype)), ""
            except ImageFormatError as exc:
                image, problem = None, f"unreadable frame: {exc}"
            for episode in by_frame.pop(number):
                episode.image, episode.problem = image, problem
                yield episode
            if not by_frame:
                break


def _held(index: _Index, picked: Dict[str, list]) -> str:
    """Say what a bag's first pass found, by topic (why a bag gave no episode)."""
    def topics(kind: str) -> str:
        return ", ".join(sorted({c.topic for c in picked[kind]})) or "no topic"

    return (f"{len(index.frames)} frame(s) on {topics('camera')}, {len(index.commands)} "
            f"instruction(s) on {topics('command')}, {len(index.detections)} Detection(s)")


def _decode(msg) -> np.ndarray:
    """``H x W x 3 uint8 RGB`` of an Image or CompressedImage (the node's own decoders)."""
    if hasattr(msg, "encoding"):
        return image_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                            bool(msg.is_bigendian))
    return compressed_to_rgb(msg.format, msg.data)


def read_episodes(paths: Iterable[str | Path], **topics) -> Iterator[BagEpisode]:
    """Episodes of every bag under ``paths`` (see ``bag_paths``), bag by bag."""
    for path in bag_paths(paths):
        yield from BagEpisodes(path, **topics)
