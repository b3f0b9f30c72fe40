"""Serving FineRS requests against a live frame stream, ROS-free.

- Frames: only the latest is kept (``FrameSlot``); conversion to RGB is deferred to the
  worker, so frames nobody asks about cost nothing.
- Requests: a bounded FIFO. Each is answered on the newest frame received at or after its
  arrival (``frame_policy="after_request"``) or on the newest frame at all (``"latest"``).
- The pipeline runs in a worker thread, never in the caller's thread; each run gets its own
  thread so that a hung model can be abandoned after ``request_timeout_s``.
- Every request gets exactly one ``Outcome`` through its ``on_done`` callback: a result,
  or an error (queue full, no frame, bad frame, timeout, cancelled, pipeline failure).
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import numpy as np

from .pipeline import instruction_problem
from .result import FineRSResult

log = logging.getLogger(__name__)
FRAME_POLICIES = ("after_request", "latest")


class Cancelled(Exception):
    """Raised from a progress callback to stop a request between stages."""


@dataclass
class Frame:
    """One camera frame; ``decode()`` returns ``H x W x 3 uint8 RGB`` or raises ValueError."""

    decode: Callable[[], np.ndarray]
    header: Any = None  # the transport's header (stamp, frame_id), echoed in outcomes
    seq: int = 0
    received: float = 0.0  # time.monotonic()


@dataclass
class Request:
    instruction: str
    question_type: str = "referring"
    options: Optional[List[str]] = None
    request_id: str = ""
    on_done: Callable[["Outcome"], None] = lambda outcome: None
    on_stage: Callable[[str], None] = lambda stage: None
    cancel: threading.Event = field(default_factory=threading.Event)
    received: float = field(default_factory=time.monotonic)
    min_seq: int = 0  # set by the server: the first frame this request may use


@dataclass
class Outcome:
    request: Request
    result: FineRSResult
    frame: Optional[Frame] = None
    image: Optional[np.ndarray] = None  # the decoded frame the result refers to

    @property
    def ok(self) -> bool:
        return self.result.error is None


class FrameSlot:
    """The latest frame, and a condition to wait for a newer one."""

    def __init__(self):
        self._frame: Optional[Frame] = None
        self._seq = itertools.count(1)
        self._cond = threading.Condition()

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._frame.seq if self._frame else 0

    def put(self, decode: Callable[[], np.ndarray], header: Any = None) -> Frame:
        with self._cond:
            self._frame = Frame(decode, header, next(self._seq), time.monotonic())
            self._cond.notify_all()
            return self._frame

    def wait(self, min_seq: int, timeout: float, cancel: Optional[threading.Event] = None) -> Optional[Frame]:
        """The latest frame with ``seq >= min_seq``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None or self._frame.seq < min_seq:
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return None
                self._cond.wait(min(left, 0.1))
            return self._frame


def error_result(request: Request, stage: str, message: str) -> FineRSResult:
    return FineRSResult(instruction=request.instruction, error=message, error_stage=stage)


class PerceptionServer:
    """Bounded request queue + worker around an object with FineRSPipeline's ``run``."""

    def __init__(self, pipeline, queue_limit: int = 8, frame_policy: str = "after_request",
                 frame_wait_s: float = 5.0, request_timeout_s: float = 60.0, max_instruction_chars: int = 2000):
        if frame_policy not in FRAME_POLICIES:
            raise ValueError(f"frame_policy={frame_policy!r}: expected one of {FRAME_POLICIES}")
        if queue_limit < 1 or frame_wait_s <= 0 or request_timeout_s <= 0:
            raise ValueError("queue_limit, frame_wait_s and request_timeout_s must be positive")
        self.pipeline = pipeline
        self.frames = FrameSlot()
        self.frame_policy = frame_policy
        self.frame_wait_s = frame_wait_s
        self.request_timeout_s = request_timeout_s
        self.max_instruction_chars = max_instruction_chars
        self.queue_limit = queue_limit
        self._queue: "queue.Queue[Optional[Request]]" = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._worker: Optional[threading.Thread] = None
        self._running = False
        self.busy = False
        self.abandoned_runs = 0  # runs still going after their timeout

    # -- intake (any thread) --------------------------------------------------------
    def put_frame(self, decode: Callable[[], np.ndarray], header: Any = None) -> Frame:
        return self.frames.put(decode, header)

    @property
    def queue_depth(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, request: Request) -> bool:
        """Queue a request; False (and an error outcome already delivered) if refused."""
        problem = self._check(request)
        if problem:
            self._finish(Outcome(request, error_result(request, *problem)))
            return False
        request.min_seq = self.frames.last_seq + 1 if self.frame_policy == "after_request" else 1
        with self._lock:
            if self._pending >= self.queue_limit:
                refused = True
            else:
                refused = False
                self._pending += 1
        if refused:
            self._finish(Outcome(request, error_result(request, "queue", f"queue full ({self.queue_limit} waiting)")))
            return False
        request.on_stage("queued")
        self._queue.put(request)
        return True

    def _check(self, request: Request):
        problem = instruction_problem(request.instruction, self.max_instruction_chars)
        if problem:
            return ("input", problem)
        if not self._running:
            return ("node", "not serving (inactive)")
        return None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._worker = threading.Thread(target=self._loop, name="finers-worker", daemon=True)
        self._worker.start()

    def stop(self, reason: str = "server stopped") -> None:
        """Stop the worker; queued requests get an error outcome."""
        if not self._running:
            return
        self._running = False
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is not None:
                self._dequeued()
                self._finish(Outcome(request, error_result(request, "node", reason)))
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=self.request_timeout_s + 1)

    # -- worker -------------------------------------------------------------------
    def _dequeued(self) -> None:
        with self._lock:
            self._pending -= 1

    def _loop(self) -> None:
        while self._running:
            request = self._queue.get()
            if request is None:
                break
            self._dequeued()
            self.busy = True
            try:
                self._finish(self._serve(request))
            except Exception as exc:  # never let the worker die: the next request must be served
                log.exception("worker failed")
                self._finish(Outcome(request, error_result(request, "node", f"internal error: {exc}")))
            finally:
                self.busy = False

    def _serve(self, request: Request) -> Outcome:
        queued_ms = (time.monotonic() - request.received) * 1000.0
        if request.cancel.is_set():
            return Outcome(request, error_result(request, "cancelled", "cancelled"))
        request.on_stage("waiting_for_frame")
        waited = time.monotonic()
        frame = self.frames.wait(request.min_seq, self.frame_wait_s, request.cancel)
        waited_ms = (time.monotonic() - waited) * 1000.0
        if request.cancel.is_set():
            return Outcome(request, error_result(request, "cancelled", "cancelled"))
        if frame is None:
            return Outcome(request, error_result(
                request, "frame", f"no camera frame received within {self.frame_wait_s:g} s of the instruction"))
        try:
            image = frame.decode()
        except Exception as exc:
            return Outcome(request, error_result(request, "frame", f"bad camera frame: {exc}"), frame)
        outcome = self._run_with_timeout(request, image)
        outcome.frame = frame
        outcome.image = image
        outcome.result.timings_ms["queue"] = queued_ms  # arrival -> dequeued by the worker
        outcome.result.timings_ms["frame_wait"] = waited_ms  # dequeued -> its frame arrived
        return outcome

    def _run_with_timeout(self, request: Request, image: np.ndarray) -> Outcome:
        box: dict = {}

        def progress(stage: str) -> None:
            if request.cancel.is_set() or box.get("abandoned"):
                raise Cancelled()
            request.on_stage(stage)

        def target() -> None:
            try:
                box["result"] = self.pipeline.run(image, request.instruction, request.question_type,
                                                  request.options, progress=progress)
            except Cancelled:
                box["cancelled"] = True
            except Exception as exc:  # a pipeline that breaks its own contract
                box["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    box["done"] = True
                    if box.get("abandoned"):
                        self.abandoned_runs -= 1

        runner = threading.Thread(target=target, name="finers-run", daemon=True)
        runner.start()
        runner.join(self.request_timeout_s)
        with self._lock:
            timed_out = not box.get("done")
            if timed_out:
                box["abandoned"] = True
                self.abandoned_runs += 1
        if timed_out:
            return Outcome(request, error_result(
                request, "timeout", f"pipeline did not finish within {self.request_timeout_s:g} s"))
        if box.get("cancelled"):
            return Outcome(request, error_result(request, "cancelled", "cancelled"))
        if "error" in box:
            return Outcome(request, error_result(request, "pipeline", f"pipeline raised {box['error']}"))
        return Outcome(request, box["result"])

    @staticmethod
    def _finish(outcome: Outcome) -> None:
        try:
            outcome.request.on_done(outcome)
        except Exception:
            log.exception("on_done callback failed")
