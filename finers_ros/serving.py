"""
Serving FineRS requests against a live frame stream, ROS-free.

- Frames: only the latest is kept (``FrameSlot``); conversion to RGB is deferred to the
  worker, so frames nobody asks about cost nothing.
- Requests: a bounded FIFO. Each is answered on the newest frame received at or after its
  arrival (``frame_policy="after_request"``) or on the newest frame at all (``"latest"``).
- The pipeline runs in a worker thread, never in the caller's thread; each run gets its own
  thread so that a hung model can be abandoned after ``request_timeout_s``.
- Every request gets exactly one ``Outcome`` through its ``on_done`` callback: a result,
  or an error (queue full, not active, no frame, bad frame, timeout, cancelled, pipeline
  failure, pipeline busy after a timeout).
- ``stop()`` cancels the request in flight between stages and returns within about a
  second; ``start()`` after ``stop()`` brings up a fresh worker (one generation number per
  worker, so a worker of an earlier generation can never take requests of a later one).
- A run abandoned after its timeout (or a cancel) may still be inside the model: the
  pipeline object is stateful, so no new run starts while it lives. The next request waits
  up to ``abandoned_wait_s`` for it to stop at its next stage boundary, and otherwise ends
  with ``error_stage="busy"`` ("pipeline busy after timeout").
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
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
    source: Any = None  # what the transport delivered, e.g. (topic, message): recorded as is


@dataclass(eq=False)  # identity: the same text may be asked twice
class Request:
    """One instruction and the callbacks that report its stages and its one outcome."""

    instruction: str
    question_type: str = "referring"
    options: Optional[List[str]] = None
    request_id: str = ""
    track: bool = False  # follow the found target after the answer (the node's tracking)
    on_done: Callable[["Outcome"], None] = lambda outcome: None
    on_stage: Callable[[str], None] = lambda stage: None
    cancel: threading.Event = field(default_factory=threading.Event)
    received: float = field(default_factory=time.monotonic)
    min_seq: int = 0  # set by the server: the first frame this request may use
    cancel_reason: str = ""  # why the server cancelled it ("" = cancelled by its client)
    problem: str = ""  # why the command itself is malformed (answered as an input error)


@dataclass
class Outcome:
    """What a request ended with: a result (maybe an error) and the frame it used."""

    request: Request
    result: FineRSResult
    frame: Optional[Frame] = None
    image: Optional[np.ndarray] = None  # the decoded frame the result refers to

    @property
    def ok(self) -> bool:
        """Return True when the request was answered without an error."""
        return self.result.error is None


class FrameSlot:
    """The latest frame, and a condition to wait for a newer one."""

    def __init__(self):
        self._frame: Optional[Frame] = None
        self._seq = itertools.count(1)
        self._cond = threading.Condition()

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest frame (0 before any)."""
        with self._cond:
            return self._frame.seq if self._frame else 0

    def put(self, decode: Callable[[], np.ndarray], header: Any = None,
            source: Any = None) -> Frame:
        """Make ``decode`` the newest frame and wake waiting requests."""
        with self._cond:
            self._frame = Frame(decode, header, next(self._seq), time.monotonic(), source)
            self._cond.notify_all()
            return self._frame

    def wait(self, min_seq: int, timeout: float,
             cancel: Optional[threading.Event] = None) -> Optional[Frame]:
        """Return the latest frame with ``seq >= min_seq``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None or self._frame.seq < min_seq:
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return None
                self._cond.wait(min(left, 0.1))
            return self._frame


def error_result(request: Request, stage: str, message: str) -> FineRSResult:
    """Return a result that only reports ``message`` as the failure of ``stage``."""
    return FineRSResult(instruction=request.instruction, error=message, error_stage=stage)


class PerceptionServer:
    """
    Bounded request queue + worker around an object with FineRSPipeline's ``run``.

    One condition (``_cond``) guards the queue, the running flag, the worker generation
    and the request in flight, so that ``submit``, ``stop`` and ``start`` never interleave.
    """

    def __init__(self, pipeline, queue_limit: int = 8, frame_policy: str = "after_request",
                 frame_wait_s: float = 5.0, request_timeout_s: float = 60.0,
                 max_instruction_chars: int = 2000, abandoned_wait_s: float = 2.0):
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
        self.abandoned_wait_s = abandoned_wait_s
        self._cond = threading.Condition()
        self._queue: "deque[Request]" = deque()
        self._running = False
        self._generation = 0
        self._current: Optional[Request] = None
        self._worker: Optional[threading.Thread] = None
        self._runner: Optional[threading.Thread] = None  # the last pipeline run (may be abandoned)
        self.busy = False
        self.abandoned_runs = 0  # runs still going after their timeout or cancel

    # -- intake (any thread) --------------------------------------------------------
    def put_frame(self, decode: Callable[[], np.ndarray], header: Any = None,
                  source: Any = None) -> Frame:
        """Keep ``decode`` as the newest frame (decoded only if a request uses it)."""
        return self.frames.put(decode, header, source)

    @property
    def queue_depth(self) -> int:
        """Count the requests waiting (not counting the one in flight)."""
        with self._cond:
            return len(self._queue)

    @property
    def running(self) -> bool:
        """Return True between ``start()`` and ``stop()``."""
        with self._cond:
            return self._running

    def accepts(self) -> Optional[str]:
        """Why a new request would be refused now (not active, queue full), or None."""
        with self._cond:
            return self._refusal()

    def _refusal(self) -> Optional[str]:
        if not self._running:
            return "not active (node inactive)"
        if len(self._queue) >= self.queue_limit:
            return f"queue full ({self.queue_limit} waiting)"
        return None

    def submit(self, request: Request) -> bool:
        """Queue a request; False (and an error outcome already delivered) if refused."""
        problem = request.problem or instruction_problem(request.instruction,
                                                         self.max_instruction_chars)
        refusal = ("input", problem) if problem else None
        if refusal is None:
            with self._cond:
                why = self._refusal()
                if why:
                    refusal = ("queue" if why.startswith("queue") else "node", why)
                else:
                    after = self.frame_policy == "after_request"
                    request.min_seq = self.frames.last_seq + 1 if after else 1
                    request.on_stage("queued")
                    self._queue.append(request)
                    self._cond.notify_all()
        if refusal:
            self._finish(Outcome(request, error_result(request, *refusal)))
            return False
        return True

    def cancel(self, request: Request, reason: str = "") -> None:
        """Cancel ``request``: answered at once if still queued, else at its next stage."""
        with self._cond:
            queued = request in self._queue
            if queued:
                self._queue.remove(request)
            request.cancel_reason = request.cancel_reason or reason
            request.cancel.set()
        if queued:
            self._finish(self._cancelled(request))

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Start a fresh worker (a worker left from an earlier start exits on its own)."""
        with self._cond:
            if self._running:
                return
            self._running = True
            self._generation += 1
            self._worker = threading.Thread(target=self._loop, args=(self._generation,),
                                            name=f"finers-worker-{self._generation}", daemon=True)
            self._worker.start()

    def stop(self, reason: str = "server stopped", join_s: float = 2.0) -> bool:
        """
        Stop taking requests, cancel the one in flight, answer the queued ones.

        Returns once the worker has finished (True) or after ``join_s`` seconds (False);
        a run that does not stop at its next stage boundary is abandoned, not waited for.
        """
        with self._cond:
            was_running = self._running
            self._running = False
            self._generation += 1
            drained = list(self._queue)
            self._queue.clear()
            current = self._current
            if current is not None:
                current.cancel_reason = current.cancel_reason or reason
                current.cancel.set()
            worker = self._worker
            self._cond.notify_all()
        for request in drained:
            self._finish(Outcome(request, error_result(request, "node", reason)))
        if not was_running or worker is None or worker is threading.current_thread():
            return True
        worker.join(join_s)
        return not worker.is_alive()

    # -- worker -------------------------------------------------------------------
    def _loop(self, generation: int) -> None:
        while True:
            with self._cond:
                while self._running and self._generation == generation and not self._queue:
                    self._cond.wait()
                if not self._running or self._generation != generation:
                    return
                request = self._queue.popleft()
                self._current = request
                self.busy = True
            try:
                outcome = self._serve(request)
            except Exception as exc:  # never let the worker die: the next request must be served
                log.exception("worker failed")
                outcome = Outcome(request, error_result(request, "node", f"internal error: {exc}"))
            finally:
                with self._cond:
                    if self._current is request:
                        self._current = None
                    self.busy = False
            self._finish(outcome)

    @staticmethod
    def _cancelled(request: Request) -> Outcome:
        why = f"cancelled: {request.cancel_reason}" if request.cancel_reason else "cancelled"
        return Outcome(request, error_result(request, "cancelled", why))

    def _serve(self, request: Request) -> Outcome:
        queued_ms = (time.monotonic() - request.received) * 1000.0
        if request.cancel.is_set():
            return self._cancelled(request)
        request.on_stage("waiting_for_frame")
        waited = time.monotonic()
        frame = self.frames.wait(request.min_seq, self.frame_wait_s, request.cancel)
        waited_ms = (time.monotonic() - waited) * 1000.0
        if request.cancel.is_set():
            return self._cancelled(request)
        if frame is None:
            return Outcome(request, error_result(
                request, "frame",
                f"no camera frame received within {self.frame_wait_s:g} s of the instruction"))
        try:
            image = frame.decode()
        except Exception as exc:
            return Outcome(request, error_result(request, "frame", f"bad camera frame: {exc}"),
                           frame)
        if not self._wait_for_abandoned_run(request):
            if request.cancel.is_set():
                return self._cancelled(request)
            return Outcome(request, error_result(
                request, "busy", "pipeline busy after timeout: an abandoned run is still inside "
                "the model; retry later"), frame)
        outcome = self._run_with_timeout(request, image)
        outcome.frame = frame
        outcome.image = image
        outcome.result.timings_ms["queue"] = queued_ms  # arrival -> dequeued by the worker
        outcome.result.timings_ms["frame_wait"] = waited_ms  # dequeued -> its frame arrived
        return outcome

    def _wait_for_abandoned_run(self, request: Request) -> bool:
        """Return True once no earlier run is alive (waits up to ``abandoned_wait_s``)."""
        runner = self._runner
        deadline = time.monotonic() + self.abandoned_wait_s
        while runner is not None and runner.is_alive():
            if time.monotonic() >= deadline or request.cancel.is_set():
                return False
            runner.join(0.05)
        return True

    def _run_with_timeout(self, request: Request, image: np.ndarray) -> Outcome:
        box: dict = {}

        def progress(stage: str) -> None:
            if request.cancel.is_set() or box.get("abandoned"):
                raise Cancelled()
            request.on_stage(stage)

        def target() -> None:
            try:
                box["result"] = self.pipeline.run(image, request.instruction,
                                                  request.question_type, request.options,
                                                  progress=progress)
            except Cancelled:
                box["cancelled"] = True
            except Exception as exc:  # a pipeline that breaks its own contract
                box["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                with self._cond:
                    box["done"] = True
                    if box.get("abandoned"):
                        self.abandoned_runs -= 1

        runner = threading.Thread(target=target, name="finers-run", daemon=True)
        self._runner = runner
        runner.start()
        deadline = time.monotonic() + self.request_timeout_s
        while runner.is_alive() and time.monotonic() < deadline:
            if request.cancel.is_set():
                runner.join(0.2)  # a run at a stage boundary stops now; others are abandoned
                break
            runner.join(min(0.05, max(0.0, deadline - time.monotonic())))
        with self._cond:
            unfinished = not box.get("done")
            if unfinished:
                box["abandoned"] = True
                self.abandoned_runs += 1
        if request.cancel.is_set() and (unfinished or box.get("cancelled")):
            return self._cancelled(request)
        if unfinished:
            return Outcome(request, error_result(
                request, "timeout",
                f"pipeline did not finish within {self.request_timeout_s:g} s"))
        if box.get("cancelled"):
            return self._cancelled(request)
        if "error" in box:
            return Outcome(request, error_result(request, "pipeline",
                                                 f"pipeline raised {box['error']}"))
        return Outcome(request, box["result"])

    @staticmethod
    def _finish(outcome: Outcome) -> None:
        try:
            outcome.request.on_done(outcome)
        except Exception:
            log.exception("on_done callback failed")
