"""
``track_reacquire: cascade`` over real topics: a lost target is asked for again until found.

The node in its own process; the camera pans over a scene, then the target leaves the view
for a few seconds (the cascade answers "not found" meanwhile), then comes back.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from finers_ros.ros.launcher import NodeProcess
import test_ros_tracking
from test_ros_tracking import ask_to_track, of, PanningCamera, TIMEOUT

wide_scene = test_ros_tracking.wide_scene  # the same module-scoped scene fixture


@pytest.fixture(scope="module")
def node(domain):
    node = NodeProcess(domain, parameters={"frame_wait_s": 10.0, "track_reacquire": "cascade"})
    yield node
    assert node.stop() == 0, node.log()[-3000:]


@pytest.fixture(scope="module")
def client(domain, node):
    from finers_ros.ros.client import PerceptionClient

    client = PerceptionClient(domain_id=domain)
    assert client.wait_for_node(TIMEOUT), node.log()[-2000:]
    yield client
    client.close()


def test_the_cascade_is_asked_again_while_the_target_stays_away(client, wide_scene, node):
    with PanningCamera(client, wide_scene) as camera:
        ask_to_track(client, camera.record["Q"], "away-1")
        assert client.wait_until(lambda: len(of(client, "away-1")) >= 2, TIMEOUT)
        track_id = of(client, "away-1")[0].track_id
        camera.image = np.full_like(camera.image, 127)  # the target is gone

        def asked():
            return node.log().count(f"{track_id} lost: asking the cascade again")
        assert client.wait_until(lambda: asked() >= 2, TIMEOUT), node.log()[-3000:]
        camera.image = wide_scene[0]  # back in view: a later ask finds it
        assert client.wait_until(lambda: of(client, "away-1")[-1].state == "tracking",
                                 TIMEOUT), node.log()[-3000:]
        client.send(json.dumps({"stop_track": track_id}))
        assert client.wait_until(lambda: of(client, "away-1")[-1].state == "ended", TIMEOUT)
    assert {m.track_id for m in of(client, "away-1")} == {track_id}  # the same track resumed
