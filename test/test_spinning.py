"""
The node's executor loop goes on past rclpy's destroy-while-waiting race, and only past it.

A real ``MultiThreadedExecutor`` whose next ``spin_once`` raises rclpy's own ``InvalidHandle``
(the race cannot be provoked at will), serving a real timer in its own domain.
"""
from __future__ import annotations

import threading

import pytest

from finers_ros.ros.spinning import spin_past_races


@pytest.fixture
def ros(domain):
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("spinning_test", context=context)
    try:
        yield node, context
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def executor_raising(context, errors):
    """Return a real executor whose ``spin_once`` first raises each of ``errors`` once."""
    from rclpy.executors import MultiThreadedExecutor

    class Raising(MultiThreadedExecutor):
        def spin_once(self, timeout_sec=None):
            if errors:
                raise errors.pop(0)
            super().spin_once(timeout_sec)

    return Raising(num_threads=2, context=context)


def test_a_destroyed_entity_in_a_wait_is_spun_past_and_callbacks_go_on(ros):
    from rclpy.exceptions import InvalidHandle

    node, context = ros
    stop, ticks, seen = threading.Event(), [], []

    def tick():
        ticks.append(1)
        if len(ticks) >= 5:
            stop.set()

    node.create_timer(0.01, tick)
    executor = executor_raising(context, [InvalidHandle("cannot use Destroyable because "
                                                        "destruction was requested")] * 2)
    executor.add_node(node)
    try:
        assert spin_past_races(executor, stop, seen.append) == 2
    finally:
        executor.shutdown()
    assert len(ticks) >= 5 and [str(e)[:18] for e in seen] == ["cannot use Destroy"] * 2


def test_any_other_error_ends_the_loop(ros):
    node, context = ros
    executor = executor_raising(context, [RuntimeError("a callback failed")])
    executor.add_node(node)
    try:
        with pytest.raises(RuntimeError, match="a callback failed"):
            spin_past_races(executor, threading.Event())
    finally:
        executor.shutdown()


def test_the_loop_ends_when_stopped_or_the_context_shuts_down(ros):
    import rclpy

    node, context = ros
    executor = executor_raising(context, [])
    executor.add_node(node)
    stop = threading.Event()
    stop.set()
    assert spin_past_races(executor, stop) == 0
    rclpy.try_shutdown(context=context)
    assert spin_past_races(executor, threading.Event()) == 0  # returns: nothing to spin
    executor.shutdown()
