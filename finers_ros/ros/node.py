"""The finers_perception lifecycle node: camera frames + instructions in, detections out.

Lifecycle phases follow cost: parameters are declared and validated in the constructor;
publishers, the action server and the pipeline (models) come up on configure; frame and
instruction subscriptions on activate; the worker stops on deactivate (queued instructions
get an error outcome); models are released on cleanup. With ``autostart`` the node
configures and activates itself.

A pipeline that cannot load (missing weights, ...) does not stop the node: it stays up,
reports the reason on the status topic and in the log, and answers every instruction with
that error.
"""
from __future__ import annotations

import importlib
import itertools
import json
import threading
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from finers_ros.action import Segment
from finers_ros.msg import Detection, Status

from ..config import load_config
from ..overlay import draw_overlay
from ..pipeline import FineRSPipeline
from ..serving import Outcome, PerceptionServer, Request, error_result
from .image_codec import compressed_to_rgb, image_to_rgb
from .messages import detection_message, mask_image, outcome_header, rgb_image
from .params import declare_and_read

NODE_NAME = "finers_perception"


def _logged(transition):
    """rclpy turns an exception in a transition into a silent ERROR: log it first."""

    def wrapper(self, state):
        try:
            return transition(self, state)
        except Exception as exc:
            self.get_logger().error(f"{transition.__name__} failed: {type(exc).__name__}: {exc}")
            self.last_error = f"{transition.__name__} failed: {exc}"
            raise

    wrapper.__name__ = transition.__name__
    wrapper.__doc__ = transition.__doc__
    return wrapper


def parse_command(text: str) -> dict:
    """A command string: plain instruction text, or a JSON object with ``instruction``,
    ``question_type``, ``options`` and ``id``. Malformed JSON is treated as plain text."""
    stripped = text.strip()
    if stripped.startswith("{") and len(stripped) < 1_000_000:
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("instruction"), str):
            options = data.get("options")
            return {"instruction": data["instruction"], "question_type": str(data.get("question_type") or "referring"),
                    "options": [str(o) for o in options] if isinstance(options, list) else None,
                    "request_id": str(data.get("id", ""))}
    return {"instruction": text, "question_type": "referring", "options": None, "request_id": ""}


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.settings = declare_and_read(self)  # raises ParameterError: refuse to start
        self.pipeline = None
        self.pipeline_error = ""
        self.server: Optional[PerceptionServer] = None
        self.state_name = "unconfigured"
        self._ids = itertools.count(1)
        self._stats_lock = threading.Lock()
        self.frames_received = 0
        self.frames_rejected = 0
        self.last_frame_stamp = None
        self.requests_done = 0
        self.requests_failed = 0
        self.last_timings: dict = {}
        self.last_error = ""
        self._warned_no_frames = False
        self._inputs = []
        self._outputs = {}
        self._action_server = None
        self._own_timers = []
        self._outputs_group = MutuallyExclusiveCallbackGroup()
        self._action_group = ReentrantCallbackGroup()
        if self.settings.autostart:
            # Transitions run from the executor, after construction finished.
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # -- lifecycle ----------------------------------------------------------------
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @_logged
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        s = self.settings
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
        images = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self._outputs = {
            "detections": self.create_publisher(Detection, s.detections_topic, reliable),
            "mask": self.create_publisher(Image, s.mask_topic, images),
            "overlay": self.create_publisher(Image, s.overlay_topic, images),
            "status": self.create_publisher(Status, s.status_topic, latched),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", reliable),
        }
        self._load_pipeline()
        # without a pipeline the server is never handed a request: _submit answers with the reason
        self.server = PerceptionServer(
            self.pipeline,
            queue_limit=s.queue_limit, frame_policy=s.frame_policy, frame_wait_s=s.frame_wait_s,
            request_timeout_s=s.request_timeout_s, max_instruction_chars=s.max_instruction_chars)
        self._action_server = ActionServer(
            self, Segment, s.action_name, execute_callback=self._execute_goal,
            goal_callback=lambda goal: GoalResponse.ACCEPT, cancel_callback=lambda goal: CancelResponse.ACCEPT,
            callback_group=self._action_group)
        self._own_timers = [self.create_timer(s.status_period_s, self._publish_status, callback_group=self._outputs_group)]
        self.state_name = "inactive"
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _load_pipeline(self) -> None:
        s = self.settings
        try:
            if s.pipeline_factory:
                module, _, function = s.pipeline_factory.partition(":")
                self.pipeline = getattr(importlib.import_module(module), function)()
            else:
                self.pipeline = FineRSPipeline.from_config(load_config(s.pipeline_config_path))
            self.pipeline_error = ""
            if hasattr(self.pipeline, "warmup"):
                self.get_logger().info(f"pipeline warm-up took {self.pipeline.warmup():.2f} s")
            backend = getattr(self.pipeline, "backend_name", type(self.pipeline).__name__)
            note = " (bring-up backend: weight-free colour/size/position grounding)" if "bringup" in backend else ""
            self.get_logger().info(f"pipeline loaded: {backend}{note}")
        except Exception as exc:  # missing weights, bad checkpoint, import error in a factory
            self.pipeline = None
            self.pipeline_error = f"model not loaded: {type(exc).__name__}: {exc}"
            self.last_error = self.pipeline_error
            self.get_logger().error(self.pipeline_error)

    @_logged
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        s = self.settings
        frames = QoSProfile(
            depth=s.frame_depth, history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.BEST_EFFORT if s.frame_reliability == "best_effort" else ReliabilityPolicy.RELIABLE)
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        self._inputs = [
            self.create_subscription(Image, s.camera_topic, self._on_image, frames, event_callbacks=events),
            self.create_subscription(String, s.command_topic, self._on_command,
                                     QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)),
        ]
        if s.compressed_topic:
            self._inputs.append(self.create_subscription(
                CompressedImage, s.compressed_topic, self._on_compressed, frames, event_callbacks=events))
        self._own_timers.append(self.create_timer(s.no_frames_warning_s, self._check_frames_flow,
                                              callback_group=self._outputs_group))
        self.server.start()
        self.state_name = "active"
        self.get_logger().info(f"serving: frames on {self.resolve_topic_name(s.camera_topic)} "
                               f"({s.frame_reliability}), instructions on {self.resolve_topic_name(s.command_topic)}")
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self.server is not None:
            self.server.stop("node deactivated")
        self.state_name = "inactive"
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state_name = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.server is not None:
            self.server.stop("node shutting down")
        self._release()
        self.state_name = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for timer in self._own_timers:
            self.destroy_timer(timer)
        self._own_timers = []
        if self._action_server is not None:
            self._action_server.destroy()
            self._action_server = None
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        if self.pipeline is not None and hasattr(self.pipeline, "close"):
            self.pipeline.close()
        self.pipeline = None
        self.server = None

    # -- intake ---------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._frame(lambda: image_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                                         bool(msg.is_bigendian)), msg.header)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._frame(lambda: compressed_to_rgb(msg.format, msg.data), msg.header)

    def _frame(self, decode, header) -> None:
        def counted():
            try:
                return decode()
            except Exception:
                with self._stats_lock:
                    self.frames_rejected += 1
                raise

        with self._stats_lock:
            self.frames_received += 1
            self.last_frame_stamp = header.stamp
        if self.server is not None:
            self.server.put_frame(counted, header)

    def _on_command(self, msg: String) -> None:
        command = parse_command(msg.data)
        request_id = command.pop("request_id") or f"cmd-{next(self._ids)}"
        self._submit(Request(request_id=request_id, on_done=self._publish_outcome, **command))

    def _submit(self, request: Request) -> None:
        """Queue a request; when it cannot be served its outcome is delivered at once."""
        refusal = None
        if self.server is None:
            refusal = ("node", "node is not configured")
        elif self.pipeline is None:  # fail fast: no need to wait for a frame
            refusal = ("model", self.pipeline_error)
        if refusal:
            request.on_done(Outcome(request, error_result(request, *refusal)))
            return
        self.server.submit(request)
        self._publish_status()

    def _execute_goal(self, goal_handle):
        goal = goal_handle.request
        done = threading.Event()
        holder = {}

        def on_done(outcome: Outcome) -> None:
            holder["detection"] = self._publish_outcome(outcome)
            holder["outcome"] = outcome
            done.set()

        def on_stage(stage: str) -> None:
            goal_handle.publish_feedback(Segment.Feedback(stage=stage))

        request = Request(goal.instruction, goal.question_type or "referring", list(goal.options) or None,
                          request_id=bytes(goal_handle.goal_id.uuid).hex(), on_done=on_done, on_stage=on_stage)
        self._submit(request)
        while not done.wait(0.05):
            if goal_handle.is_cancel_requested:
                request.cancel.set()
        outcome = holder["outcome"]
        if goal_handle.is_cancel_requested and outcome.result.error_stage == "cancelled":
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        return Segment.Result(detection=holder["detection"])

    # -- outputs ----------------------------------------------------------------------
    def _publish_outcome(self, outcome: Outcome) -> Detection:
        """Publish one outcome (runs in the worker thread); returns its Detection."""
        result = outcome.result
        header = outcome_header(outcome, self.get_clock().now().to_msg())
        detection = detection_message(outcome, header)
        with self._stats_lock:
            self.requests_done += 1
            if result.error:
                self.requests_failed += 1
                self.last_error = f"[{result.error_stage}] {result.error}"
            self.last_timings = dict(result.timings_ms)
        if result.error:
            self.get_logger().error(f"instruction {outcome.request.request_id} "
                                    f"{outcome.request.instruction[:80]!r} failed [{result.error_stage}]: {result.error}")
        else:
            self.get_logger().info(
                f"instruction {outcome.request.request_id} {outcome.request.instruction[:80]!r}: "
                f"{'found' if result.found else 'not found'}; "
                + ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items()))
        publishers = self._outputs
        try:
            if "detections" in publishers:
                publishers["detections"].publish(detection)
            if outcome.image is not None and self.settings.publish_mask and "mask" in publishers:
                publishers["mask"].publish(mask_image(result.mask, outcome.image.shape, header))
            if outcome.image is not None and self.settings.publish_overlay and "overlay" in publishers:
                label = "bring-up backend" if "bringup" in (result.backend or "") else result.backend
                overlay = draw_overlay(outcome.image, result, self.settings.overlay_max_width, label)
                publishers["overlay"].publish(rgb_image(overlay, header))
        except Exception as exc:  # publishing after shutdown began, for example
            self.get_logger().warning(f"could not publish outcome: {exc}")
        self._publish_status()
        return detection

    def _status_message(self) -> Status:
        server = self.server
        with self._stats_lock:
            msg = Status(state=self.state_name, model_loaded=self.pipeline is not None,
                         backend=str(getattr(self.pipeline, "backend_name", "") or ""),
                         queue_depth=server.queue_depth if server else 0,
                         queue_limit=self.settings.queue_limit, busy=bool(server and server.busy),
                         abandoned_runs=server.abandoned_runs if server else 0,
                         frames_received=self.frames_received, frames_rejected=self.frames_rejected,
                         requests_done=self.requests_done, requests_failed=self.requests_failed,
                         last_error=self.last_error[:2000])
            if self.last_frame_stamp is not None:
                msg.last_frame_stamp = self.last_frame_stamp
            msg.timing_names = list(self.last_timings)
            msg.timings_ms = [float(v) for v in self.last_timings.values()]
        msg.stamp = self.get_clock().now().to_msg()
        return msg

    def _publish_status(self) -> None:
        if "status" not in self._outputs:
            return
        msg = self._status_message()
        try:
            self._outputs["status"].publish(msg)
            level = DiagnosticStatus.OK if msg.model_loaded and not msg.last_error else (
                DiagnosticStatus.WARN if msg.model_loaded else DiagnosticStatus.ERROR)
            values = [KeyValue(key=k, value=str(v)) for k, v in (
                ("state", msg.state), ("backend", msg.backend), ("queue_depth", msg.queue_depth),
                ("frames_received", msg.frames_received), ("frames_rejected", msg.frames_rejected),
                ("requests_done", msg.requests_done), ("requests_failed", msg.requests_failed))]
            values += [KeyValue(key=f"latency_ms/{k}", value=f"{v:.1f}") for k, v in zip(msg.timing_names, msg.timings_ms)]
            self._outputs["diagnostics"].publish(DiagnosticArray(header=Header(stamp=msg.stamp), status=[DiagnosticStatus(
                level=level, name=f"{self.get_name()}: FineRS perception", hardware_id="finers_ros",
                message=msg.last_error[:200] or ("ok" if msg.model_loaded else "model not loaded"), values=values)]))
        except Exception as exc:
            self.get_logger().debug(f"status not published: {exc}")

    def _on_incompatible_qos(self, event) -> None:
        self.get_logger().warning(
            f"a camera publisher has incompatible QoS (policy {event.last_policy_kind}); frames use "
            f"reliability={self.settings.frame_reliability}: set frame_reliability to match the camera")

    def _check_frames_flow(self) -> None:
        if self._warned_no_frames or self.frames_received:
            return
        topic = self.resolve_topic_name(self.settings.camera_topic)
        publishers = self.count_publishers(topic)
        if publishers == 0:
            self.get_logger().warning(f"no publisher on {topic} after {self.settings.no_frames_warning_s:g} s")
        else:
            self.get_logger().warning(
                f"{publishers} publisher(s) on {topic} but no frame arrived: for large best-effort frames use the "
                f"shared-memory Fast DDS profile (config/fastdds_shm.xml) in both processes, or reliable QoS")
        self._warned_no_frames = True
