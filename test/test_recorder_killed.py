"""
A recording cut short keeps every episode whose Detection was written.

The recorder runs in its own process and is killed with SIGKILL (no close, no atexit, as a
power cut or the OOM killer leaves it) once it has written its episodes; the MCAP file it
leaves has no summary, and finers-dataset's reader must give back every episode with its
frame, command and Detection (and its depth and CameraInfo when recorded). A finished bag cut
at any chunk boundary (a disk that filled, ``head -c``) must never give back an episode
without its Detection.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import pytest
from rosbags.highlevel import AnyReader

from finers_ros.ros.recorder import EpisodeRecorder
from finers_ros.ros.launcher import NodeProcess
from finers_training.bags import (BagError, BagTopicsError, read_episodes,
                                  recover_unfinished_mcap)
from test_recorder import ROOT, TOPICS, episode

DEPTH_TOPIC = "/camera/aligned_depth/image_raw"
INFO_TYPE_TOPIC = "/camera/camera_info"

RECORD_THEN_WAIT = """
import sys, time
sys.path.insert(0, {test!r})
from sensor_msgs.msg import CameraInfo, Image
from test_recorder import TOPICS, episode
from finers_ros.ros.recorder import EpisodeRecorder
recorder = EpisodeRecorder({directory!r}, queue_limit=8, **TOPICS)
inputs = [({info!r}, CameraInfo(width=64, height=48)),
          ({depth!r}, Image(width=64, height=48, encoding="16UC1", step=128,
                            data=bytes(64 * 48 * 2)))]
for index, size in enumerate({sizes!r}):
    recorder.record(*episode(index, size=tuple(size)), inputs=inputs if index == 1 else ())
while recorder.stats()["episodes"] < {count}:
    time.sleep(0.01)
print("written", flush=True)
time.sleep(60)
"""


def record_and_kill(directory: Path, sizes) -> Path:
    """Record one episode per ``(width, height)`` in another process, SIGKILL it; the .mcap."""
    script = RECORD_THEN_WAIT.format(test=str(ROOT / "test"), directory=str(directory),
                                     info=INFO_TYPE_TOPIC, depth=DEPTH_TOPIC,
                                     sizes=[list(size) for size in sizes], count=len(sizes))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout.readline().strip() == "written"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        process.stdout.close()
    (bag,) = directory.glob("episodes_*")
    assert not (bag / "metadata.yaml").exists()  # killed: the bag was never finished
    (mcap,) = bag.glob("*.mcap")
    return mcap


def topic_counts(mcap: Path, scratch: Path) -> dict:
    """Messages per topic that a reader gets back from an unfinished MCAP file."""
    recover_unfinished_mcap(mcap, scratch)
    with AnyReader([scratch]) as reader:
        counts: dict = {}
        for connection, _, _ in reader.messages():
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
        return counts


@pytest.mark.parametrize("sizes", [[(64, 48), (64, 48)],  # small: no chunk fills
                                   [(1280, 720), (64, 48), (1280, 720)]],  # 2.7 MB frames
                         ids=["small-frames", "mixed-frames"])
def test_a_killed_recorder_gives_back_every_written_episode_with_its_detection(tmp_path,
                                                                               sizes):
    mcap = record_and_kill(tmp_path / "rec", sizes)

    episodes = list(read_episodes([tmp_path / "rec"]))
    assert [(e.request_id, e.problem) for e in episodes] == [
        (f"cmd-{index}", "") for index in range(len(sizes))]
    for index, (size, read) in enumerate(zip(sizes, episodes)):
        assert read.image.shape == (size[1], size[0], 3) and read.image[1, 1, 0] == index
        assert read.detection is not None and read.detection.found
        assert read.detection.mask.shape == read.image.shape[:2]
    # the second episode was answered with depth and CameraInfo: they are kept too
    assert topic_counts(mcap, tmp_path / "recovered") == {
        TOPICS["camera_topic"]: len(sizes), TOPICS["command_topic"]: len(sizes),
        TOPICS["detections_topic"]: len(sizes), INFO_TYPE_TOPIC: 1, DEPTH_TOPIC: 1}


def chunk_ends(mcap: Path) -> list:
    """Byte offsets where each chunk of a finished MCAP file ends (with its message index)."""
    from mcap.reader import make_reader

    with mcap.open("rb") as stream:
        summary = make_reader(stream).get_summary()
    return sorted(index.chunk_start_offset + index.chunk_length + index.message_index_length
                  for index in summary.chunk_indexes)


def test_a_bag_cut_at_any_chunk_end_never_gives_an_episode_without_its_detection(tmp_path):
    """
    Cut a finished bag after each chunk: the episodes read back are whole, in order.

    Each cut keeps a prefix of the recorded episodes, every one of them with its frame and
    its Detection (none comes back as "no Detection" to label); the last cut keeps them all.
    """
    recorder = EpisodeRecorder(tmp_path / "rec", **TOPICS)
    sizes = [(1280, 720), (64, 48), (1280, 720), (64, 48)]
    for index, size in enumerate(sizes):
        assert recorder.record(*episode(index, size=size))
    recorder.close()
    (mcap,) = recorder.bags[0].glob("*.mcap")
    data = mcap.read_bytes()
    kept_per_cut = []
    for number, end in enumerate(chunk_ends(mcap)):
        cut = tmp_path / f"cut{number}" / "cut.mcap"
        cut.parent.mkdir()
        cut.write_bytes(data[:end])
        try:
            episodes = list(read_episodes([cut]))
        except BagTopicsError:  # cut before the first command: a frame alone is no episode
            episodes = []
        assert all(e.problem == "" and e.detection is not None for e in episodes), (
            f"cut after chunk {number + 1}: "
            f"{[(e.request_id, e.problem or 'no Detection') for e in episodes]}")
        kept = [e.request_id for e in episodes]
        assert kept == [f"cmd-{index}" for index in range(len(kept))]
        kept_per_cut.append(len(kept))
    # each episode's answer ends a chunk: every prefix of the episodes is a cut's reading
    assert sorted(set(kept_per_cut)) == list(range(len(sizes) + 1))
    assert kept_per_cut == sorted(kept_per_cut)


def answered(directory: Path) -> list:
    """Request ids of the episodes read back with their Detection; [] while none is."""
    try:
        return [e.request_id for e in read_episodes([directory])
                if e.problem == "" and e.detection is not None]
    except BagError:  # nothing complete on disk yet
        return []


def test_a_killed_node_keeps_every_answered_instruction_of_its_recording(domain, tmp_path,
                                                                         capsys):
    """
    The node (its own process) answers three instructions and is killed with SIGKILL.

    Each answer is on disk soon after its Detection is published, and all three come back
    from ``finers-dataset export`` with their Detection, none "to label" for want of it.
    """
    from finers_ros.ros.client import PerceptionClient
    from finers_training.dataset_cli import main

    record_dir = tmp_path / "episodes"
    node = NodeProcess(domain, parameters={"record_dir": str(record_dir),
                                           "frame_policy": "latest", "frame_wait_s": 10.0})
    client = PerceptionClient(domain_id=domain, name="killed_recording_client")
    image = np.full((240, 320, 3), 110, np.uint8)
    image[100:130, 200:230] = (230, 20, 20)
    streaming = threading.Event()

    def stream() -> None:
        while not streaming.is_set():
            client.publish_frame(client.frame_message(image, time.time_ns()))
            streaming.wait(0.05)

    camera = threading.Thread(target=stream, daemon=True)
    ids = [f"job-{index}" for index in range(3)]
    try:
        assert client.wait_for_node(60.0), node.log()[-2000:]
        camera.start()
        time.sleep(1.0)
        for index, request_id in enumerate(ids):
            client.send(json.dumps({"instruction": "find the red square", "id": request_id}))
            detection = client.next_detection(index, 60.0)
            assert detection is not None and detection.request_id == request_id
        deadline = time.monotonic() + 10.0
        while answered(record_dir) != ids:  # the last answer reaches the disk soon after
            assert time.monotonic() < deadline, f"on disk: {answered(record_dir)}"
            time.sleep(0.1)
    finally:
        streaming.set()
        camera.join(5)
        client.close()
        os.killpg(node.process.pid, signal.SIGKILL)
        node.stop()
    assert not list(record_dir.glob("*/metadata.yaml"))  # killed: the bag was never finished
    assert answered(record_dir) == ids
    assert main(["export", str(record_dir), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "no Detection" not in out and out.splitlines()[-1].startswith("exported 3 episode")
