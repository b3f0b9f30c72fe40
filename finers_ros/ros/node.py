"""
The finers_perception lifecycle node: camera frames + instructions in, detections out.

Lifecycle phases follow cost: parameters are declared and validated in the constructor;
publishers, the command subscription, the action server and the pipeline (models) come up
on configure (parameters are re-read there); frame subscriptions and the worker on
activate; deactivate cancels the request in flight and answers the queued ones; cleanup
releases the models; the ``shutdown`` transition ends the process (``on_finalized``).

A pipeline that cannot load fails ``configure`` (a lifecycle manager sees FAILURE), unless
``allow_degraded`` or ``autostart``: then the node stays up, reports the reason on the
status topic and answers every instruction with it.

Where to hook in: frames arrive in ``_frame``; every outcome, of topic instructions and of
action goals alike, passes through ``_publish_outcome``.
"""
from __future__ import annotations

import importlib
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from finers_ros.action import Segment
from finers_ros.msg import Status

from ..commands import parse_command
from ..config import load_config
from ..pipeline import FineRSPipeline
from ..result import FineRSResult
from ..serving import Outcome, PerceptionServer, Request, error_result
from ..stages.openai_server import ServerError
from . import params
from .core_logging import bridge_core_logs, unbridge_core_logs
from .depth_input import DepthStage
from .diagnostics import Counters, FrameFlowWatch, diagnostic_array, status_message
from .frame_intake import ArrivalCounter, FrameIntake, transport_topics
from ..tracking.frames import FrameView
from .image_codec import compressed_to_rgb, image_to_rgb, image_view
from .messages import detection_message, outcome_header
from .outcomes import DETECTIONS_TOPIC, OutcomePublisher
from .paths import fastdds_profile
from .recorder import start_recorder
from .standard_outputs import StandardOutputs
from .tracks import NodeTracking

NODE_NAME = "finers_perception"
CAMERA_TOPIC = "camera/image_raw"
COMPRESSED_TOPIC = "camera/image_raw/compressed"
COMMAND_TOPIC = "finers/command"
STATUS_TOPIC = "finers/status"
ACTION_NAME = "finers/segment"
WATCH_PERIOD_S = 0.5
ACTION_BACKLOG = 100


def _logged(transition):
    """Rclpy turns an exception in a transition into a silent ERROR: log it first."""

    def wrapper(self, state):
        try:
            return transition(self, state)
        except Exception as exc:
            self.get_logger().error(f"{transition.__name__} failed: {type(exc).__name__}: {exc}")
            self.counters.last_error = f"{transition.__name__} failed: {exc}"
            raise

    wrapper.__name__ = transition.__name__
    wrapper.__doc__ = transition.__doc__
    return wrapper


@dataclass
class _Goal:
    """An accepted action goal waiting for its outcome."""

    request: Request
    deadline: float  # time.monotonic() after which the goal is cancelled by the node
    cancel_requested: bool = False


class PerceptionNode(LifecycleNode):
    """FineRS perception as a ROS 2 lifecycle node (topics, action, status, diagnostics)."""

    def __init__(self, on_finalized: Optional[Callable[[], None]] = None, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._core_logs = bridge_core_logs(self.get_logger())  # the core's records on /rosout
        self.settings = params.declare(self)  # raises ParameterError: refuse to start
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._on_finalized = on_finalized or (lambda: None)
        self.pipeline = None
        self.pipeline_error = ""
        self.server: Optional[PerceptionServer] = None
        self.state_name = "unconfigured"
        self._ids = itertools.count(1)
        self._stats_lock = threading.Lock()
        self.counters = Counters()
        self._outcomes: Optional[OutcomePublisher] = None
        self._recorder = None  # episodes into bags when record_dir is set
        self._depth: Optional[DepthStage] = None  # 3D positions, with depth_enabled
        self._tracking: Optional[NodeTracking] = None  # "track": true instructions
        self._standard: Optional[StandardOutputs] = None  # vision_msgs, target_frame
        self._status_lock = threading.Lock()
        self._status_pub = None
        self._diagnostics_pub = None
        self._command_sub = None
        self._frame_subs: list = []
        self._intake: Optional[FrameIntake] = None  # frames taken only when needed
        self._arrivals = ArrivalCounter()
        self._frame_watch: Optional[FrameFlowWatch] = None
        self._action_server: Optional[ActionServer] = None
        self._goals: Dict[bytes, _Goal] = {}
        self._ended: Dict[bytes, tuple] = {}  # goal id -> (outcome, Detection, cancel asked)
        self._goals_lock = threading.Lock()
        self._timers: list = []
        self._watch_timer = None
        self._outputs_group = MutuallyExclusiveCallbackGroup()
        self._action_group = ReentrantCallbackGroup()
        if self.settings.autostart:
            # Transitions run from the executor, after construction finished.
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # -- parameters -------------------------------------------------------------------
    def destroy_node(self):
        """Destroy the node; the core's log records go back to Python's own handlers."""
        unbridge_core_logs(self._core_logs)
        return super().destroy_node()

    def _on_set_parameters(self, changes) -> SetParametersResult:
        values = {p.name: p.value for p in changes if p.name in params.SETTING_NAMES}
        if not values:
            return SetParametersResult(successful=True)
        try:
            settings = params.changed(self.settings, values, self.state_name != "unconfigured")
        except params.ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.settings = settings
        server = self.server
        if server is not None:  # live values: the worker reads them per request
            server.frame_policy = settings.frame_policy
            server.frame_wait_s = settings.frame_wait_s
            server.request_timeout_s = settings.request_timeout_s
            server.queue_limit = settings.queue_limit
            server.max_instruction_chars = settings.max_instruction_chars
        if self._frame_watch is not None:
            self._frame_watch.warn_after_s = settings.no_frames_warning_s
        return SetParametersResult(successful=True)

    # -- lifecycle ----------------------------------------------------------------
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @_logged
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Re-read parameters, load the pipeline, open outputs, commands and the action."""
        try:
            self.settings = params.read(self)
        except params.ParameterError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        s = self.settings
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             history=HistoryPolicy.KEEP_LAST)
        self._outcomes = OutcomePublisher(self)
        self._depth = DepthStage(self, s, CAMERA_TOPIC) if s.depth_enabled else None
        self._standard = StandardOutputs(self, s)
        self._tracking = NodeTracking(self, s, self._depth, reacquire=self._reacquire_track,
                                      outputs=self._standard)
        with self._status_lock:
            self._status_pub = self.create_publisher(Status, STATUS_TOPIC, latched)
            self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._load_pipeline()
        self._recorder = start_recorder(self, CAMERA_TOPIC, COMMAND_TOPIC, DETECTIONS_TOPIC)
        if self.pipeline is None and not s.degraded_ok:
            self.get_logger().error("configure failed: the model did not load (set "
                                    "allow_degraded:=true to stay up and report instead)")
            self._release()
            return TransitionCallbackReturn.FAILURE
        # without a pipeline the server is never handed a request: _submit answers the reason
        self.server = PerceptionServer(
            self.pipeline, queue_limit=s.queue_limit, frame_policy=s.frame_policy,
            frame_wait_s=s.frame_wait_s, request_timeout_s=s.request_timeout_s,
            max_instruction_chars=s.max_instruction_chars)
        self._command_sub = self.create_subscription(
            String, COMMAND_TOPIC, self._on_command,
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        # services keep ACTION_BACKLOG requests: a burst of goals (or result requests) larger
        # than the default depth of 10 would otherwise lose the oldest before they are taken
        backlog = QoSProfile(depth=ACTION_BACKLOG, reliability=ReliabilityPolicy.RELIABLE)
        self._action_server = ActionServer(
            self, Segment, ACTION_NAME, execute_callback=self._end_goal,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_goal_accepted,
            cancel_callback=self._on_goal_cancel, callback_group=self._action_group,
            goal_service_qos_profile=backlog, result_service_qos_profile=backlog,
            cancel_service_qos_profile=backlog)
        self._timers = [self.create_timer(s.status_period_s, self._publish_status,
                                          callback_group=self._outputs_group),
                        self.create_timer(WATCH_PERIOD_S, self._watch,
                                          callback_group=self._outputs_group)]
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
            self._warm_up()
            backend = getattr(self.pipeline, "backend_name", type(self.pipeline).__name__)
            note = (" (bring-up backend: weight-free colour/size/position grounding)"
                    if "bringup" in backend else "")
            self.get_logger().info(f"pipeline loaded: {backend}{note}")
        except Exception as exc:  # missing weights, bad checkpoint, import error in a factory
            self.pipeline = None
            self.pipeline_error = f"model not loaded: {type(exc).__name__}: {exc}"
            self.counters.last_error = self.pipeline_error
            self.get_logger().error(self.pipeline_error)

    def _warm_up(self) -> None:
        """
        Warm the pipeline up; a remote model server that is down only degrades the node.

        The pipeline itself loaded, so it stays: requests are tried and fail with the
        server's error while it is away and are served once it is back (no reconfigure).
        """
        if not hasattr(self.pipeline, "warmup"):
            return
        try:
            self.get_logger().info(f"pipeline warm-up took {self.pipeline.warmup():.2f} s")
        except ServerError as exc:
            self.counters.last_error = f"warm-up failed: {exc}"
            self.get_logger().warning(f"pipeline warm-up failed, serving anyway (requests fail "
                                      f"until the model server answers): {exc}")

    @_logged
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to frames and start the worker."""
        s = self.settings
        reliability = (ReliabilityPolicy.BEST_EFFORT if s.frame_reliability == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        frames = QoSProfile(depth=s.frame_depth, history=HistoryPolicy.KEEP_LAST,
                            reliability=reliability)
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        if s.subscribe_compressed:
            self.get_logger().warning(
                "subscribe_compressed is deprecated: set image_transport to compressed (only "
                "CompressedImage) or raw" + (" (both are taken, as before)"
                                             if s.image_transport == "raw" else ""))
        self._intake = FrameIntake(
            self, transport_topics(self, s.image_transport,
                                   s.subscribe_compressed and s.image_transport == "raw"),
            frames, self._on_transport_frame, s.frame_intake, self._frames_wanted, events)
        self._frame_subs = list(self._intake.subscriptions)
        camera = self._frame_subs[0].topic_name
        self._frame_watch = FrameFlowWatch(camera, s.no_frames_warning_s, str(fastdds_profile()),
                                           time.monotonic())
        if self._depth is not None:
            self._depth.subscribe(self._intake.group, camera)  # taken when colour frames are
        self._tracking.service.start_worker()
        self.server.start()
        self.state_name = "active"
        self.get_logger().info(f"serving: frames on {camera} ({s.frame_reliability}), "
                               f"instructions on {self._command_sub.topic_name}")
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop frames; cancel the request in flight, answer the queued ones, end tracks."""
        self._stop_frames()
        if self.server is not None:
            self.server.stop("node deactivated")
        if self._tracking is not None:
            self._tracking.service.stop_worker("node deactivated")
        self.state_name = "inactive"
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release outputs, subscriptions, the action server and the models."""
        self._release()
        self.state_name = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything; the process then exits (``on_finalized``)."""
        self._release()
        self.state_name = "finalized"
        self._on_finalized()
        return TransitionCallbackReturn.SUCCESS

    def stop_serving(self, reason: str = "node shutting down") -> None:
        """First steps of a clean exit: stop intake, cancel the request in flight."""
        self._stop_frames()
        if self._command_sub is not None:
            self.destroy_subscription(self._command_sub)
            self._command_sub = None
        if self.server is not None:
            self.server.stop(reason)
        if self._tracking is not None:  # every track ends with a message saying why
            self._tracking.service.stop_worker(reason)
        recorder, self._recorder = self._recorder, None
        if recorder is not None:  # finish the bag now: the process may end without atexit
            recorder.close()

    def wait_goals_ended(self, timeout_s: float) -> bool:
        """Wait until every answered goal has been ended by the executor (at shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._goals_lock:
                if not self._ended:
                    return True
            time.sleep(0.02)
        return False

    def _stop_frames(self) -> None:
        intake, self._intake = self._intake, None
        if intake is not None:
            intake.close()
        self._frame_subs = []
        self._frame_watch = None
        if self._depth is not None:
            self._depth.unsubscribe()

    def _release(self) -> None:
        self.stop_serving("node cleaned up")
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        if self._action_server is not None:
            self._action_server.destroy()
            self._action_server = None
        if self._outcomes is not None:
            self._outcomes.close()
            self._outcomes = None
        if self._tracking is not None:
            self._tracking.close("node cleaned up")
            self._tracking = None
        if self._depth is not None:
            self._depth.close()
            self._depth = None
        if self._standard is not None:
            self._standard.close()
            self._standard = None
        with self._status_lock:
            for publisher in (self._status_pub, self._diagnostics_pub):
                if publisher is not None:
                    self.destroy_publisher(publisher)
            self._status_pub = self._diagnostics_pub = None
        if self.pipeline is not None and hasattr(self.pipeline, "close"):
            self.pipeline.close()
        self.pipeline = None
        self.server = None

    # -- intake ---------------------------------------------------------------------
    def _frames_wanted(self) -> bool:
        """Tell whether frames are needed now: requests queued or running, or tracks."""
        server, tracking = self.server, self._tracking
        if server is not None and (server.busy or server.queue_depth):
            return True
        return tracking is not None and (tracking.service.active > 0
                                         or getattr(tracking.service, "_pending", 0) > 0)

    def _on_transport_frame(self, msg, info, topic: str) -> None:
        """Take in one frame of the intake: its message, rmw message info, resolved topic."""
        source = (topic, msg)  # what the camera sent, for the recorder
        with self._stats_lock:
            arrived = self._arrivals.count(info)
            self.counters.frames_taken += 1
        if isinstance(msg, CompressedImage):
            self._on_compressed(msg, source, arrived)
        else:
            self._on_image(msg, source, arrived)

    def _on_image(self, msg: Image, source=None, arrived: int = 1) -> None:
        self._frame(lambda: image_to_rgb(msg.encoding, msg.width, msg.height, msg.step,
                                         msg.data, bool(msg.is_bigendian)), msg.header,
                    lambda: image_view(msg.encoding, msg.width, msg.height, msg.step,
                                       msg.data, bool(msg.is_bigendian)), len(msg.data),
                    source, arrived)

    def _on_compressed(self, msg: CompressedImage, source=None, arrived: int = 1) -> None:
        self._frame(lambda: compressed_to_rgb(msg.format, msg.data), msg.header,
                    lambda: FrameView(compressed_to_rgb(msg.format, msg.data)), len(msg.data),
                    source, arrived)

    def _frame(self, decode, header, view=None, nbytes: int = 0, source=None,
               arrived: int = 1) -> None:
        """Every camera frame taken arrives here (decoded later, only if a request uses it)."""
        depth = self._depth
        if depth is not None:  # the worker's decode also pins the frame's depth
            decode = depth.pinning(decode, header)

        def counted(convert):
            def run():
                with self._stats_lock:
                    self.counters.frames_decoded += 1
                try:
                    return convert()
                except Exception:
                    with self._stats_lock:
                        self.counters.frames_rejected += 1
                    raise
            return run

        with self._stats_lock:
            self.counters.frames_received += arrived
            self.counters.last_frame_stamp = header.stamp
        server = self.server
        if server is not None:
            frame = server.put_frame(counted(decode), header, source)
            tracking = self._tracking
            if tracking is not None and view is not None:
                tracking.put_frame(counted(view), header, frame.seq, nbytes)

    def _on_command(self, msg: String) -> None:
        command = parse_command(msg.data)
        if "stop_track" in command:
            self._stop_track(command["stop_track"])
            return
        if "ping" in command:
            self._answer_ping(command["request_id"])
            return
        request_id = command.pop("request_id") or f"cmd-{next(self._ids)}"
        self._submit(Request(request_id=request_id, on_done=self._publish_outcome, **command))

    def _answer_ping(self, request_id: str) -> None:
        """
        Answer a client's ping on finers/detections under its id: nothing found, no error.

        Not a request: not counted, not recorded, no error on the status, logged at debug.
        """
        outcomes = self._outcomes
        if outcomes is None:  # not active: no detections publisher to answer on
            return
        request = Request(instruction="", request_id=request_id)
        try:
            outcomes.publish(Outcome(request, FineRSResult(instruction="")), self.settings)
        except Exception as exc:  # publishing while shutting down, for example
            self.get_logger().debug(f"ping {request_id[:64]!r} not answered: {exc}")
            return
        self.get_logger().debug(f"ping {request_id[:64]!r} answered")

    def _submit(self, request: Request) -> None:
        """Queue a request; when it cannot be served its outcome is delivered at once."""
        server = self.server
        refusal = None
        if server is None:
            refusal = ("node", "node is not configured")
        elif self.pipeline is None:  # fail fast: no need to wait for a frame
            refusal = ("model", self.pipeline_error)
        tracking = self._tracking
        if request.track and tracking is not None:
            tracking.service.expect()  # keep frames for its catch-up (settled on its outcome)
        if refusal:
            request.on_done(Outcome(request, error_result(request, *refusal)))
            return
        intake = self._intake
        if intake is not None and request.instruction.strip():  # frames from now on
            intake.demand(lambda: server.submit(request),
                          take_held=server.frame_policy == "latest")
        else:
            server.submit(request)
        self._publish_status()

    # -- action: goals never hold an executor thread while they wait --------------------
    def _on_goal(self, goal) -> GoalResponse:
        server = self.server
        why = server.accepts() if server is not None and self.state_name == "active" else \
            f"node is {self.state_name}, not active"
        if why:
            self.get_logger().warning(f"goal {goal.instruction[:80]!r} rejected: {why}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_goal_accepted(self, goal_handle) -> None:
        """Queue the goal's request; its outcome ends the goal (``_goal_done``)."""
        goal = goal_handle.request
        key = bytes(goal_handle.goal_id.uuid)
        s = self.settings
        request = Request(goal.instruction, goal.question_type or "referring",
                          list(goal.options) or None, request_id=key.hex(), track=goal.track,
                          on_done=lambda outcome: self._goal_done(goal_handle, outcome),
                          on_stage=lambda stage: self._goal_feedback(goal_handle, stage))
        # a safety net: the server answers every request, this bounds a goal regardless
        budget = (s.queue_limit + 1) * (s.frame_wait_s + s.request_timeout_s + 2.0) + 5.0
        with self._goals_lock:
            self._goals[key] = _Goal(request, time.monotonic() + budget)
        self._submit(request)

    def _on_goal_cancel(self, goal_handle) -> CancelResponse:
        with self._goals_lock:
            entry = self._goals.get(bytes(goal_handle.goal_id.uuid))
            if entry is not None:
                entry.cancel_requested = True
        if entry is None:
            return CancelResponse.REJECT
        server = self.server
        if server is not None:
            server.cancel(entry.request)
        else:
            entry.request.cancel.set()
        return CancelResponse.ACCEPT

    @staticmethod
    def _goal_feedback(goal_handle, stage: str) -> None:
        try:
            goal_handle.publish_feedback(Segment.Feedback(stage=stage))
        except Exception:  # the action server is going away
            pass

    def _goal_done(self, goal_handle, outcome: Outcome) -> None:
        """Publish the goal's outcome, then end the goal from the executor (exactly once)."""
        detection = self._publish_outcome(outcome)
        with self._goals_lock:
            entry = self._goals.pop(bytes(goal_handle.goal_id.uuid), None)
        if entry is None:
            return
        with self._goals_lock:
            self._ended[bytes(goal_handle.goal_id.uuid)] = (outcome, detection,
                                                            entry.cancel_requested)
        try:
            goal_handle.execute()  # schedules _end_goal on the executor
        except Exception as exc:  # the action server was destroyed meanwhile
            with self._goals_lock:
                self._ended.pop(bytes(goal_handle.goal_id.uuid), None)
            self.get_logger().warning(f"goal {entry.request.request_id} not ended: {exc}")

    def _end_goal(self, goal_handle) -> Segment.Result:
        """Succeeded with a result; aborted with the error in the result; or canceled."""
        with self._goals_lock:
            outcome, detection, cancel_requested = self._ended.pop(
                bytes(goal_handle.goal_id.uuid))
        error_stage = outcome.result.error_stage
        if error_stage == "cancelled" and cancel_requested and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif outcome.result.error:
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return Segment.Result(detection=detection)

    def _expire_goals(self) -> None:
        now = time.monotonic()
        with self._goals_lock:
            late = [entry for entry in self._goals.values() if entry.deadline < now]
        for entry in late:
            entry.deadline = float("inf")
            entry.request.cancel_reason = "no outcome within the goal's deadline"
            if self.server is not None:
                self.server.cancel(entry.request)

    # -- outputs ----------------------------------------------------------------------
    def _publish_outcome(self, outcome: Outcome):
        """Every outcome ends here (worker thread): count, log, publish; its Detection."""
        result = outcome.result
        request = outcome.request
        with self._stats_lock:
            self.counters.requests_done += 1
            if result.error:
                self.counters.requests_failed += 1
                self.counters.last_error = f"[{result.error_stage}] {result.error}"
            self.counters.last_timings = dict(result.timings_ms)
        if result.error:  # a client's bad input is a warning, a failed stage an error
            shown = request.request_id  # up to 256 characters: the log line stays short
            shown = shown if len(shown) <= 64 else shown[:61] + "..."
            text = (f"instruction {shown} {request.instruction[:80]!r} failed "
                    f"[{result.error_stage}]: {result.error}")
            # one call site per severity: rclpy refuses a severity change at the same line
            if result.error_stage == "input":
                self.get_logger().warning(text)
            else:
                self.get_logger().error(text)
        else:
            self.get_logger().info(
                f"instruction {request.request_id} {request.instruction[:80]!r}: "
                f"{'found' if result.found else 'not found'}; "
                + result.timings_text())
        outcomes = self._outcomes
        depth = self._depth
        target = depth.locate(outcome) if depth is not None else None
        detection = None
        try:
            if outcomes is not None:
                detection = outcomes.publish(outcome, self.settings, target)
            if depth is not None and detection is not None:
                depth.publish(detection, target)
            standard = self._standard
            if standard is not None and detection is not None:
                standard.publish_answer(detection, target)
        except Exception as exc:  # publishing after shutdown began, for example
            self.get_logger().warning(f"could not publish outcome: {exc}")
        if detection is None:
            detection = detection_message(outcome, outcome_header(
                outcome, self.get_clock().now().to_msg()))
        recorder = self._recorder
        if recorder is not None:  # with depth: the frame's depth and CameraInfo too
            recorder.record(outcome, detection,
                            depth.recorded_inputs(outcome) if depth is not None else ())
        tracking = self._tracking
        if request.track and tracking is not None:
            tracking.start_from(outcome)
        self._publish_status()
        return detection

    # -- tracking -----------------------------------------------------------------------
    def _stop_track(self, which: str) -> None:
        tracking = self._tracking
        shown = repr(which[:80]) + ("..." if len(which) > 80 else "")  # one short line
        if tracking is None:
            self.get_logger().warning(f"stop_track {shown}: node is not configured")
            return
        count = tracking.stop(None if which == "all" else which)
        if not count and which != "all":
            self.get_logger().warning(f"stop_track {shown}: no such track running "
                                      f"(running: {', '.join(tracking.service.track_ids())})")

    def _reacquire_track(self, track_id: str, request_id: str, instruction: str) -> None:
        """Ask the cascade again for a lost track (track_reacquire: cascade)."""
        tracking = self._tracking
        if tracking is None:
            return
        self.get_logger().info(f"{track_id} lost: asking the cascade again")
        self._submit(Request(instruction, request_id=f"{request_id}/reacquire",
                             on_done=lambda outcome: self._reacquired(track_id, outcome)))

    def _reacquired(self, track_id: str, outcome: Outcome) -> None:
        self._publish_outcome(outcome)
        tracking = self._tracking
        if tracking is not None:
            tracking.resume_from(track_id, outcome)

    def _publish_status(self) -> None:
        with self._stats_lock:
            counters = Counters(**vars(self.counters))
        tracking = self._tracking
        msg = status_message(self.state_name, self.pipeline, self.server,
                             self.settings.queue_limit, counters,
                             self.get_clock().now().to_msg(),
                             tracking.service if tracking is not None else None)
        with self._status_lock:
            if self._status_pub is None:
                return
            try:
                self._status_pub.publish(msg)
                self._diagnostics_pub.publish(diagnostic_array(msg, self.get_name()))
            except Exception as exc:
                self.get_logger().debug(f"status not published: {exc}")

    def _on_incompatible_qos(self, event) -> None:
        self.get_logger().warning(
            f"a camera publisher has incompatible QoS (policy {event.last_policy_kind}); frames "
            f"use reliability={self.settings.frame_reliability}: set frame_reliability to match "
            f"the camera")

    def _watch(self) -> None:
        """Periodic checks: goal deadlines, idle frame intake, frames from matched cameras."""
        self._expire_goals()
        watch = self._frame_watch
        subscriptions = list(self._frame_subs)
        if watch is None or not subscriptions:
            return
        try:
            matched = sum(sub.get_publisher_count() for sub in subscriptions)
        except Exception:  # destroyed meanwhile
            return
        with self._stats_lock:
            frames = self.counters.frames_received
        warning = watch.update(matched, frames, time.monotonic())
        if warning:
            self.get_logger().warning(warning)
        intake = self._intake  # after the watch: a frame it takes counts as after the match
        if intake is not None and intake.settle():  # idle: a look at the newest frame now and then
            intake.peek(matched)
