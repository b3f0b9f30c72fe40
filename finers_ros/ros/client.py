"""
The other end of the node's topics: publish frames and instructions, collect outcomes.

Used by the main job (``finers-demo``) and the integration tests; usable from any robot
script that wants "ask and wait" over topics (the action is the other way).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from typing import Callable, List, Optional

import numpy as np
import rclpy
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from unique_identifier_msgs.msg import UUID

from finers_ros.action import Segment
from finers_ros.msg import Detection, Status, Track

from .image_codec import rgb_fields

PING_PREFIX = "finers-client-ping-"
JOIN_S = 2.0  # bound on each thread join in ``close``


class PerceptionClient:
    """A ROS participant of its own (own context) that plays camera and robot for the node."""

    def __init__(self, domain_id: Optional[int] = None, namespace: str = "",
                 camera_topic: Optional[str] = None, name: str = "finers_client"):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._camera_topic = camera_topic or f"{prefix}/camera/image_raw"
        self._camera = None  # created on first use (see ``camera``)
        self._camera_lock = threading.Lock()
        self.commands = self.node.create_publisher(String, f"{prefix}/finers/command", reliable)
        self.detections: List[Detection] = []
        self.masks: List[Image] = []
        self.overlays: List[Image] = []
        self.tracks: List[Track] = []  # finers/tracks, in arrival order
        self.status: Optional[Status] = None
        self._cond = threading.Condition()
        images = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._detections_sub = self.node.create_subscription(
            Detection, f"{prefix}/finers/detections", self._on_detection, reliable)
        self.node.create_subscription(Image, f"{prefix}/finers/mask", self._keep(self.masks),
                                      images)
        self.node.create_subscription(Image, f"{prefix}/finers/overlay",
                                      self._keep(self.overlays), images)
        self.node.create_subscription(Track, f"{prefix}/finers/tracks",
                                      self._keep(self.tracks), reliable)
        self.node.create_subscription(
            Status, f"{prefix}/finers/status", self._on_status,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._prefix = prefix
        self._probes: set = set()  # request ids of action probes (kept out of ``detections``)
        self.topics = {"detections": f"{prefix}/finers/detections",
                       "command": f"{prefix}/finers/command"}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, name="finers-client-executor",
                                         daemon=True)
        self._spinner.start()
        self._streaming: Optional[threading.Event] = None
        self._streamer: Optional[threading.Thread] = None
        self._pings = itertools.count(1)
        self._pongs: set = set()  # answered pings (kept out of ``detections``)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass  # context shut down

    def _keep(self, store: list) -> Callable:
        def callback(msg) -> None:
            with self._cond:
                store.append(msg)
                self._cond.notify_all()
        return callback

    def _on_detection(self, msg: Detection) -> None:
        with self._cond:
            if msg.request_id in self._probes:
                pass
            elif msg.request_id.startswith(PING_PREFIX):
                self._pongs.add(msg.request_id)
            else:
                self.detections.append(msg)
            self._cond.notify_all()

    def _on_status(self, msg: Status) -> None:
        with self._cond:
            self.status = msg
            self._cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked as messages arrive); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    @property
    def camera(self):
        """
        Return the camera publisher (``sensor_msgs/Image``), created on first use.

        A client that only sends commands offers no camera: the node warns about a camera
        that matched and sends nothing (a 4K camera on default Fast DDS).
        """
        with self._camera_lock:
            if self._camera is None:
                self._camera = self.node.create_publisher(Image, self._camera_topic,
                                                          qos_profile_sensor_data)
            return self._camera

    def wait_for_node(self, timeout: float = 30.0, camera: bool = True) -> bool:
        """
        Until the node answers over the real endpoints, both ways.

        Waits for matched endpoints (not graph discovery): the node's command subscription
        (and frame subscription when ``camera``) matched our publishers and its detection
        publisher matched our subscription; then sends a ping until its answer comes back
        (a volatile message sent before the reverse match would be lost, so one send is not
        enough). The ping answers are kept out of ``detections``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ((not camera or self.camera.get_subscription_count() > 0)
                    and self.commands.get_subscription_count() > 0
                    and self._detections_sub.get_publisher_count() > 0):
                break
            time.sleep(0.05)
        else:
            return False
        ping = f"{PING_PREFIX}{next(self._pings)}"
        text = json.dumps({"ping": True, "id": ping})  # older nodes: an empty instruction
        while time.monotonic() < deadline:
            self.send(text)
            if self.wait_until(lambda: ping in self._pongs,
                               min(1.0, max(0.0, deadline - time.monotonic()))):
                return True
        return False

    def frame_message(self, image: np.ndarray, stamp_ns: Optional[int] = None,
                      frame_id: str = "camera") -> Image:
        """Build an rgb8 Image of ``H x W x 3 uint8 RGB`` ``image`` (stamped now by default)."""
        stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        return Image(header=header, **rgb_fields(image))

    def publish_frame(self, image_or_msg) -> Image:
        """Publish one frame (an Image, or an RGB array made into one); returns the message."""
        msg = image_or_msg if isinstance(image_or_msg, Image) else self.frame_message(image_or_msg)
        self.camera.publish(msg)
        return msg

    def stream(self, msg: Image, hz: float = 5.0, restamp: bool = True) -> None:
        """Publish ``msg`` repeatedly from a thread, as a camera driver would (restamped)."""
        self.stop_stream()
        stop = threading.Event()
        self._streaming = stop

        def loop() -> None:
            while not stop.is_set():
                if restamp:
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(),
                                                                            1_000_000_000)
                self.camera.publish(msg)
                stop.wait(1.0 / hz)

        self._streamer = threading.Thread(target=loop, name="finers-client-stream", daemon=True)
        self._streamer.start()

    def stop_stream(self) -> None:
        """Stop the stream started by ``stream`` and wait for its last publish to end."""
        if self._streaming is not None:
            self._streaming.set()
            self._streaming = None
        if self._streamer is not None:
            self._streamer.join(JOIN_S)
            self._streamer = None

    def send(self, text: str) -> None:
        """Publish one command (plain instruction or JSON) on the node's command topic."""
        self.commands.publish(String(data=text))

    def next_detection(self, after: int, timeout: float) -> Optional[Detection]:
        """Return the first detection received after ``after`` detections were already there."""
        if self.wait_until(lambda: len(self.detections) > after, timeout):
            return self.detections[after]
        return None

    def action_client(self, timeout: float = 30.0) -> ActionClient:
        """
        Return an ActionClient of the node's ``finers/segment``.

        Its goal and result services answer both ways.

        ``wait_for_server`` sees the services in the graph, but a reply sent before the
        node's reply writer matched this client is lost. So empty-instruction goals (which
        the node ends at once, or rejects while inactive) are sent until one makes the full
        round trip. Their outcomes are kept out of ``detections``. The services keep 100
        requests, as the node's do.
        """
        backlog = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        action = ActionClient(self.node, Segment, f"{self._prefix}/finers/segment",
                              goal_service_qos_profile=backlog,
                              result_service_qos_profile=backlog,
                              cancel_service_qos_profile=backlog)
        deadline = time.monotonic() + timeout
        if action.wait_for_server(timeout_sec=timeout):
            while time.monotonic() < deadline:
                probe = uuid.uuid4()
                with self._cond:
                    self._probes.add(probe.hex)
                sent = action.send_goal_async(Segment.Goal(instruction=""),
                                              goal_uuid=UUID(uuid=list(probe.bytes)))
                if not _wait_done(sent, 2.0):
                    continue
                handle = sent.result()
                if not handle.accepted or _wait_done(handle.get_result_async(), 2.0):
                    return action
        action.destroy()
        raise TimeoutError(f"{self._prefix}/finers/segment did not answer within {timeout:g} s")

    def close(self) -> None:
        """
        Stop streaming and spinning, destroy the node, shut down and release the context.

        In that order, each thread joined before what it uses goes away; the context (its
        DDS participant, threads and shared-memory segments) is released here, not left to
        the interpreter's exit, where the middleware's threads were destroyed still running
        (``terminate called without an active exception``, exit 134, segments left behind).
        """
        self.stop_stream()
        self.executor.shutdown(timeout_sec=JOIN_S)
        self._spinner.join(JOIN_S)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.context.destroy()


def _wait_done(future, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
