"""The request/frame logic of the node, without ROS (the node tests cover it over topics)."""
import threading
import time

import numpy as np
import pytest

from finers_ros.result import FineRSResult
from finers_ros.serving import PerceptionServer, Request


class SlowPipeline:
    """Answers after ``delay`` seconds; records which image it saw."""

    def __init__(self, delay=0.0, fail=False):
        self.delay = delay
        self.fail = fail
        self.seen = []

    def run(self, image, instruction, question_type="referring", options=None, progress=None):
        progress("gse")
        if self.fail:
            raise RuntimeError("model exploded")
        time.sleep(self.delay)
        progress("lpr")
        self.seen.append(int(image[0, 0, 0]))
        return FineRSResult(instruction=instruction, found=True, answer="ok")


def frame(value):
    return lambda: np.full((32, 32, 3), value, np.uint8)


def submit(server, text="find the red screw", **kw):
    done = threading.Event()
    box = {}

    def on_done(outcome):
        box.setdefault("outcomes", []).append(outcome)
        done.set()

    server.submit(Request(text, on_done=on_done, **kw))
    return done, box


@pytest.fixture
def server():
    made = []

    def make(pipeline, **kw):
        kw.setdefault("frame_wait_s", 1.0)
        kw.setdefault("request_timeout_s", 2.0)
        srv = PerceptionServer(pipeline, **kw)
        srv.start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def test_answers_on_newest_frame_after_arrival(server):
    srv = server(SlowPipeline())
    srv.put_frame(frame(1))
    done, box = submit(srv)
    time.sleep(0.05)
    srv.put_frame(frame(2))
    srv.put_frame(frame(3))
    assert done.wait(2)
    outcome, = box["outcomes"]
    # never the frame that was there before the instruction; the newest one after it
    assert outcome.ok and outcome.frame.seq in (2, 3) and srv.pipeline.seen == [outcome.frame.seq]
    assert outcome.result.timings_ms["queue"] >= 0


def test_latest_policy_uses_existing_frame(server):
    srv = server(SlowPipeline(), frame_policy="latest")
    srv.put_frame(frame(5))
    done, box = submit(srv)
    assert done.wait(2) and srv.pipeline.seen == [5]


def test_no_frame_is_an_error_outcome(server):
    srv = server(SlowPipeline(), frame_wait_s=0.2)
    done, box = submit(srv)
    assert done.wait(2)
    assert box["outcomes"][0].result.error_stage == "frame"


def test_bad_frame_raising_pipeline_and_timeout_each_answer_once(server):
    srv = server(SlowPipeline(delay=1.0), request_timeout_s=0.3, frame_policy="latest")

    def broken():
        raise ValueError("step 10 too small for width 32 rgb8")

    srv.put_frame(broken)
    done, box = submit(srv)
    assert done.wait(2) and "bad camera frame" in box["outcomes"][0].result.error
    srv.put_frame(frame(1))
    done, box = submit(srv)
    assert done.wait(3) and box["outcomes"][0].result.error_stage == "timeout"
    srv.pipeline.delay = 0.0
    done, box = submit(srv)
    assert done.wait(3) and box["outcomes"][0].ok  # keeps serving after a timeout
    time.sleep(1.0)
    assert len(box["outcomes"]) == 1 and srv.abandoned_runs == 0


def test_raising_pipeline(server):
    srv = server(SlowPipeline(fail=True), frame_policy="latest")
    srv.put_frame(frame(1))
    done, box = submit(srv)
    assert done.wait(2) and "model exploded" in box["outcomes"][0].result.error


def test_queue_bound_and_input_checks(server):
    srv = server(SlowPipeline(delay=0.3), queue_limit=1, frame_policy="latest")
    srv.put_frame(frame(1))
    events = [submit(srv) for _ in range(3)]
    for done, _ in events:
        assert done.wait(5)
    stages = sorted(str(box["outcomes"][0].result.error_stage) for _, box in events)
    assert stages.count("queue") >= 1 and stages.count("None") >= 1
    for text, message in (("", "empty"), ("x" * 100_000, "too long")):
        done, box = submit(srv, text)
        assert done.is_set() and message in box["outcomes"][0].result.error


def test_cancel_between_stages(server):
    srv = server(SlowPipeline(delay=0.5), frame_policy="latest")
    srv.put_frame(frame(1))
    cancel = threading.Event()
    stages = []
    done, box = submit(srv, on_stage=lambda s: (stages.append(s), s == "gse" and cancel.set()),
                       cancel=cancel)
    assert done.wait(3)
    assert box["outcomes"][0].result.error_stage == "cancelled"
    assert stages[:3] == ["queued", "waiting_for_frame", "gse"]


def test_stop_answers_queued_requests(server):
    srv = server(SlowPipeline(delay=0.3), frame_policy="latest")
    srv.put_frame(frame(1))
    events = [submit(srv) for _ in range(3)]
    srv.stop("deactivated")
    for done, box in events:
        assert done.wait(3) and len(box["outcomes"]) == 1


class BlockingPipeline:
    """Stays inside ``run`` until ``release`` is set, without stage boundaries (a hung model)."""

    def __init__(self):
        self.release = threading.Event()
        self.runs = 0

    def run(self, image, instruction, question_type="referring", options=None, progress=None):
        self.runs += 1
        self.release.wait(30)
        return FineRSResult(instruction=instruction, found=True, answer="ok")


def test_stop_cancels_the_request_in_flight_within_a_second(server):
    srv = server(BlockingPipeline(), frame_policy="latest", request_timeout_s=60.0)
    srv.put_frame(frame(1))
    done, box = submit(srv)
    assert _wait(lambda: srv.busy, 2)
    started = time.monotonic()
    srv.stop("node deactivated")
    assert time.monotonic() - started < 1.5
    assert done.wait(1)
    result = box["outcomes"][0].result
    assert result.error_stage == "cancelled" and "node deactivated" in result.error
    srv.pipeline.release.set()


def test_start_stop_cycles_with_a_slow_request_never_lose_the_worker(server):
    srv = server(SlowPipeline(delay=0.3), frame_policy="latest")
    srv.put_frame(frame(1))
    for _ in range(10):
        events = [submit(srv) for _ in range(2)]
        time.sleep(0.05)
        srv.stop("node deactivated")
        srv.start()
        for done, box in events:
            assert done.wait(3) and len(box["outcomes"]) == 1
    done, box = submit(srv)
    assert done.wait(5) and box["outcomes"][0].ok  # a live worker serves after the cycles


def test_submit_after_stop_is_answered_at_once(server):
    srv = server(SlowPipeline(), frame_policy="latest")
    srv.stop("node deactivated")
    done, box = submit(srv)
    assert done.is_set() and "not active" in box["outcomes"][0].result.error


def test_concurrent_submit_and_stop_answer_every_request(server):
    srv = server(SlowPipeline(delay=0.01), frame_policy="latest", queue_limit=1000)
    srv.put_frame(frame(1))
    results = []

    def flood():
        for _ in range(200):
            results.append(submit(srv))

    threads = [threading.Thread(target=flood) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.02)
    srv.stop("node deactivated")
    for thread in threads:
        thread.join()
    assert all(done.wait(3) and len(box["outcomes"]) == 1 for done, box in results)


def test_cancel_of_a_queued_request_answers_at_once(server):
    srv = server(SlowPipeline(delay=0.5), frame_policy="latest")
    srv.put_frame(frame(1))
    submit(srv)
    request = Request("find the blue screw")
    box = []
    request.on_done = box.append
    srv.submit(request)
    srv.cancel(request)
    assert len(box) == 1 and box[0].result.error_stage == "cancelled"


def test_no_run_starts_while_an_abandoned_run_lives(server):
    pipeline = BlockingPipeline()
    srv = server(pipeline, frame_policy="latest", request_timeout_s=0.3, abandoned_wait_s=0.3)
    srv.put_frame(frame(1))
    done, box = submit(srv)
    assert done.wait(3) and box["outcomes"][0].result.error_stage == "timeout"
    done, box = submit(srv)
    assert done.wait(3)
    result = box["outcomes"][0].result
    assert result.error_stage == "busy" and "pipeline busy after timeout" in result.error
    assert pipeline.runs == 1  # the stateful model never ran twice at once
    pipeline.release.set()
    done, box = submit(srv)
    assert done.wait(3) and box["outcomes"][0].ok and pipeline.runs == 2


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
