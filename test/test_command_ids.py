"""
A command's ``id``: a string (or a number, as its JSON text), at most 256 characters.

Anything else is an input error answered under what the client can match: an object or list
under its JSON text, a longer id under its first 256 characters; the node logs one short
line. Parsed here directly, then answered by the node in its own process over real topics.
"""
from __future__ import annotations

import json
import time

import pytest

from finers_ros.commands import MAX_ID_CHARS, parse_command
from finers_ros.ros.launcher import NodeProcess

TIMEOUT = 60.0


@pytest.mark.parametrize("given, request_id, problem", [
    ("frame-7", "frame-7", ""),
    (7, "7", ""),
    (2.5, "2.5", ""),
    (None, "", ""),
    ({"a": 1}, '{"a":1}', 'id must be a string or a number, got {"a":1}'),
    ([1, 2], "[1,2]", "id must be a string or a number, got [1,2]"),
    (True, "true", "id must be a string or a number, got true"),
    ("i" * 256, "i" * 256, ""),
    ("i" * 100_000, "i" * 256, "id is 100000 characters long (at most 256)"),
])
def test_command_ids(given, request_id, problem):
    command = parse_command(json.dumps({"instruction": "find it", "id": given}))
    assert command["request_id"] == request_id and command.get("problem", "") == problem
    assert MAX_ID_CHARS == 256


def test_a_stop_track_id_is_cut_too():
    stop = parse_command(json.dumps({"stop_track": "all", "id": {"a": 1}}))
    assert stop == {"stop_track": "all", "request_id": '{"a":1}'}


def test_the_node_answers_a_bad_id_as_an_input_error_in_one_short_line(domain):
    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={"frame_wait_s": 2.0})
    client = PerceptionClient(domain_id=domain, name="command_ids_client")
    answers = {}
    try:
        assert client.wait_for_node(TIMEOUT, camera=False), node.log()[-2000:]
        for name, given in (("object", {"a": 1}), ("long", "i" * 100_000)):
            count = len(client.detections)
            client.send(json.dumps({"instruction": "find the red square", "id": given}))
            answers[name] = client.next_detection(count, TIMEOUT)
    finally:
        client.close()
        code = node.stop()
    log = node.log()
    assert code == 0, log[-2000:]
    assert answers["object"].request_id == '{"a":1}'
    assert answers["long"].request_id == "i" * 256
    for detection in answers.values():
        assert not detection.found and detection.error_stage == "input", detection.error
    assert "id must be a string or a number" in answers["object"].error
    assert answers["long"].error == "id is 100000 characters long (at most 256)"
    lines = [line for line in log.splitlines() if "'find the red square' failed" in line]
    assert len(lines) == 2 and all(len(line) < 300 for line in lines), lines


@pytest.mark.parametrize("given, expected", [
    ({"ping": True, "id": "p-1"}, {"ping": True, "request_id": "p-1"}),
    ({"ping": True, "id": 3}, {"ping": True, "request_id": "3"}),
    ({"ping": True}, {"ping": True, "request_id": ""}),
])
def test_a_ping_is_its_own_command(given, expected):
    assert parse_command(json.dumps(given)) == expected


def test_a_ping_that_is_not_true_is_an_instruction_like_any_other_object():
    command = parse_command(json.dumps({"ping": "yes", "id": "p"}))
    assert "ping" not in command and command["instruction"] == "" and command["request_id"] == "p"


def test_a_client_waiting_for_the_node_is_answered_without_an_error_or_a_warning(domain):
    """
    A healthy client's ping is no failed instruction: no WARN, no last_error, not counted.

    A client that only sends commands offers no camera either (a matched camera that sends
    nothing makes the node warn).
    """
    from finers_ros.ros.client import PerceptionClient

    node = NodeProcess(domain, parameters={"frame_wait_s": 2.0, "no_frames_warning_s": 0.5})
    clients = [PerceptionClient(domain_id=domain, name=f"ping_client_{n}") for n in range(2)]
    try:
        assert all(c.wait_for_node(TIMEOUT, camera=False) for c in clients), node.log()[-2000:]
        first = clients[0]
        count = len(first.detections)
        first.send(json.dumps({"ping": True, "id": "mine"}))
        assert first.wait_until(lambda: any(
            d.request_id == "mine" for d in first.detections[count:]), TIMEOUT)
        (pong,) = [d for d in first.detections[count:] if d.request_id == "mine"]
        assert not pong.found and pong.error == "" and pong.error_stage == ""
        assert first.wait_until(lambda: first.status is not None, TIMEOUT)
        status = first.status
        assert status.last_error == "" and status.requests_failed == 0, status
        assert status.requests_done == 0, status
        time.sleep(1.5)  # three times the no-frames warning's delay
    finally:
        for client in clients:
            client.close()
        code = node.stop()
    log = node.log()
    assert code == 0, log[-2000:]
    assert "failed [input]" not in log and "empty instruction" not in log, log[-2000:]
    assert "no frame arrived" not in log, log[-2000:]
