"""
Tracking after the answer, over real topics: the node in its own process, a moving 4K camera.

The camera pans across a larger synthetic scene, so the target moves in the frame; the node
answers "track": true instructions and then publishes one Track per processed frame with
that frame's stamp, until the track is stopped, the frames change size, or the node is
deactivated (each an "ended" message with its reason).
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from finers_ros.geometry import polygon_to_mask
from finers_ros.ros.launcher import NodeProcess
from ros_services import Services

TIMEOUT = 60.0
SCENE = (4400, 2700)
FRAME = (3840, 2160)
STAMP0 = 1_800_000_000_000_000_000


@pytest.fixture(scope="module")
def node(domain):
    node = NodeProcess(domain, parameters={"frame_wait_s": 10.0, "track_max_tracks": 8})
    yield node
    assert node.stop() == 0, node.log()[-3000:]


@pytest.fixture(scope="module")
def client(domain, node):
    from finers_ros.ros.client import PerceptionClient

    client = PerceptionClient(domain_id=domain)
    assert client.wait_for_node(TIMEOUT), node.log()[-2000:]
    yield client
    client.close()


@pytest.fixture(scope="module")
def wide_scene():
    """Return a scene larger than the frame (the camera pans over it) and its target mask."""
    from finers_ros.data.synthetic import SceneConfig, SceneGenerator

    image, record = SceneGenerator(SceneConfig(width=SCENE[0], height=SCENE[1]),
                                   seed=3).scene(0, kind="colour")
    return image, polygon_to_mask(record["points"], SCENE), record


class PanningCamera:
    """Publishes frames of ``wide_scene`` panning 8 px right and 7 px up per frame."""

    clock = 0  # frames sent by every camera of this module: stamps never go backwards

    def __init__(self, client, wide_scene, hz: float = 10.0):
        self.client, self.hz = client, hz
        self.image, self.mask, self.record = wide_scene
        self.sent = {}  # stamp ns -> frame index
        self.index = 0
        self.size = FRAME
        self.encoding = ""  # set: the frames' encoding field says this instead (unreadable)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def window(self, index: int):
        step = index % 80
        step = step if step < 40 else 80 - step  # back and forth, never a jump
        return 200 + 8 * step, 300 - 7 * step

    def truth(self, index: int) -> np.ndarray:
        x0, y0 = self.window(index)
        return self.mask[y0:y0 + FRAME[1], x0:x0 + FRAME[0]]

    def _loop(self) -> None:
        while not self._stop.is_set():
            x0, y0 = self.window(self.index)
            width, height = self.size
            pixels = np.ascontiguousarray(self.image[y0:y0 + height, x0:x0 + width])
            PanningCamera.clock += 1
            stamp = STAMP0 + PanningCamera.clock * 100_000_000
            self.sent[stamp] = self.index
            message = self.client.frame_message(pixels, stamp, "cam")
            message.encoding = self.encoding or message.encoding
            self.client.publish_frame(message)
            self.index += 1
            self._stop.wait(1.0 / self.hz)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def track_mask(msg) -> np.ndarray:
    full = np.zeros((msg.image_height, msg.image_width), bool)
    roi = msg.mask_roi
    if roi.width and roi.height:
        full[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width] = \
            np.frombuffer(bytes(msg.mask), np.uint8).reshape(roi.height, roi.width) > 0
    return full


def of(client, request_id):
    return [m for m in list(client.tracks) if m.request_id == request_id]


def ask_to_track(client, instruction: str, request_id: str) -> None:
    client.send(json.dumps({"instruction": instruction, "track": True, "id": request_id}))


def test_track_follows_the_moving_target_on_every_frame(client, wide_scene, node):
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, camera.record["Q"], "pan-1")
        assert client.wait_until(lambda: len(of(client, "pan-1")) >= 12, TIMEOUT), \
            node.log()[-3000:]
        client.send(json.dumps({"stop_track": "all"}))
        assert client.wait_until(
            lambda: any(m.state == "ended" for m in of(client, "pan-1")), TIMEOUT)
    messages = of(client, "pan-1")
    detection = [d for d in client.detections if d.request_id == "pan-1"][0]
    assert detection.found
    live = [m for m in messages if m.state != "ended"]
    assert all(m.state == "tracking" for m in live), [(m.state, m.reason) for m in live]
    assert len({m.track_id for m in messages}) == 1 and messages[0].track_id.startswith("track")
    # the first track message is already at or after the answered frame (caught up)
    assert stamp_ns(live[0]) >= stamp_ns(detection)
    stamps = [stamp_ns(m) for m in live]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # one per frame
    for msg in live:
        index = camera.sent[stamp_ns(msg)]  # the stamp of a frame the camera sent
        truth, mask = camera.truth(index), track_mask(msg)
        assert (truth & mask).sum() / (truth | mask).sum() > 0.8
        assert msg.header.frame_id == "cam" and (msg.image_width, msg.image_height) == FRAME
    assert [m.frames_tracked for m in live] == sorted(m.frames_tracked for m in live)
    ended = messages[-1]
    assert ended.state == "ended" and "stopped by client" in ended.reason
    assert client.wait_until(lambda: client.status is not None
                             and client.status.tracks_started >= 1
                             and client.status.tracks_active == 0, 10)


def test_track_request_on_a_not_found_answer_ends_with_the_reason(client, wide_scene):
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, "find the magenta unicorn", "nothing-1")
        assert client.wait_until(lambda: of(client, "nothing-1"), TIMEOUT)
    (msg,) = of(client, "nothing-1")
    assert msg.state == "ended" and msg.track_id == ""
    assert "not found" in msg.reason
    detection = [d for d in client.detections if d.request_id == "nothing-1"][0]
    assert stamp_ns(msg) == stamp_ns(detection) and stamp_ns(msg) in camera.sent
    assert msg.header.frame_id == "cam"  # the frame the answer was given on


def test_track_request_that_fails_ends_with_the_error_not_as_not_found(client):
    client.send(json.dumps({"track": True, "id": "no-instruction"}))
    assert client.wait_until(lambda: of(client, "no-instruction"), TIMEOUT)
    (msg,) = of(client, "no-instruction")
    assert msg.state == "ended" and "empty instruction" in msg.reason, msg.reason


def test_a_track_field_that_is_not_a_boolean_is_an_input_error_not_a_silent_snapshot(client):
    client.send(json.dumps({"instruction": "find it", "track": "yes", "id": "loose-track"}))
    assert client.wait_until(
        lambda: [d for d in client.detections if d.request_id == "loose-track"], TIMEOUT)
    (detection,) = [d for d in client.detections if d.request_id == "loose-track"]
    assert not detection.found and detection.error_stage == "input"
    assert 'track must be true or false, got "yes"' in detection.error, detection.error
    assert not of(client, "loose-track")  # no track was started


def test_a_huge_stop_track_id_is_refused_in_one_short_log_line(client, node):
    client.send(json.dumps({"stop_track": "x" * 100_000}))
    assert client.wait_until(lambda: "stop_track 'xxx" in node.log(), TIMEOUT)
    line = [ln for ln in node.log().splitlines() if "stop_track 'xxx" in ln][0]
    assert "no such track" in line and len(line) < 1000, len(line)


def test_several_tracks_and_frames_that_change_size(client, wide_scene):
    with PanningCamera(client, wide_scene) as camera:
        for n in range(3):
            ask_to_track(client, camera.record["Q"], f"multi-{n}")
        assert client.wait_until(
            lambda: all(len(of(client, f"multi-{n}")) >= 3 for n in range(3)), TIMEOUT)
        ids = {of(client, f"multi-{n}")[0].track_id for n in range(3)}
        assert len(ids) == 3
        camera.size = (1920, 1080)  # a camera reconfigured mid-track
        assert client.wait_until(
            lambda: all(of(client, f"multi-{n}")[-1].state == "ended" for n in range(3)),
            TIMEOUT)
    for n in range(3):
        assert "frame size changed" in of(client, f"multi-{n}")[-1].reason


def test_deactivate_mid_track_ends_it_and_says_why(client, wide_scene, node):
    from lifecycle_msgs.msg import Transition

    services = Services(client.node)
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, camera.record["Q"], "deact-1")
        assert client.wait_until(lambda: len(of(client, "deact-1")) >= 2, TIMEOUT)
        assert services.change_state("/finers_perception", Transition.TRANSITION_DEACTIVATE)
        assert client.wait_until(lambda: of(client, "deact-1")[-1].state == "ended", TIMEOUT)
        assert "deactivated" in of(client, "deact-1")[-1].reason
        assert services.change_state("/finers_perception", Transition.TRANSITION_ACTIVATE)
        time.sleep(1.0)
        count = len(of(client, "deact-1"))
        time.sleep(1.0)
        assert len(of(client, "deact-1")) == count  # nothing left running after the end


def test_stop_all_also_stops_a_track_whose_answer_is_still_coming(client, wide_scene):
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, camera.record["Q"], "early-stop")
        client.send(json.dumps({"stop_track": "all"}))  # before the cascade answered
        assert client.wait_until(lambda: of(client, "early-stop"), TIMEOUT)
        time.sleep(1.0)  # frames keep coming: no track may start
    (msg,) = of(client, "early-stop")
    assert msg.state == "ended" and msg.track_id == ""
    assert "stopped by client (stop_track all)" in msg.reason, msg.reason


def test_a_lost_target_is_logged_once_not_on_every_frame(client, wide_scene, node):
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, camera.record["Q"], "gone-1")
        assert client.wait_until(lambda: len(of(client, "gone-1")) >= 2, TIMEOUT)
        camera.image = np.full_like(camera.image, 127)  # the target is gone from the view
        assert client.wait_until(
            lambda: sum(m.state == "lost" for m in of(client, "gone-1")) >= 6, TIMEOUT)
        track_id = of(client, "gone-1")[0].track_id
        client.send(json.dumps({"stop_track": track_id}))
        assert client.wait_until(lambda: of(client, "gone-1")[-1].state == "ended", TIMEOUT)
    lines = [line for line in node.log().splitlines() if f"{track_id} lost:" in line]
    assert len(lines) == 1, lines


def test_unreadable_frames_while_tracking_are_one_warning_in_the_node_log(
        client, wide_scene, node):
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, camera.record["Q"], "bad-frames")
        assert client.wait_until(lambda: len(of(client, "bad-frames")) >= 2, TIMEOUT)
        camera.encoding = "foo"
        assert client.wait_until(lambda: sum(
            "not readable" in m.reason for m in of(client, "bad-frames")) >= 4, TIMEOUT)
        client.send(json.dumps({"stop_track": "all"}))
        assert client.wait_until(
            lambda: any(m.state == "ended" for m in of(client, "bad-frames")), TIMEOUT)
    lines = [line for line in node.log().splitlines() if "not tracked:" in line]
    assert len(lines) == 1, lines  # one per 10 s, not one per frame
    assert "[WARN]" in lines[0] and "[finers_ros.tracking.service]" in lines[0], lines[0]
    assert "'foo'" in lines[0]
