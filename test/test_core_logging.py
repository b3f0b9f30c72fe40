"""
The core's Python log records reach the node's ROS logger on /rosout, repeats held back.

A real rclpy node in this process, in its own domain, subscribed to its own /rosout.
"""
from __future__ import annotations

import logging
import time

import pytest

from finers_ros.ros.core_logging import bridge_core_logs, unbridge_core_logs


@pytest.fixture
def ros_node(domain):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rcl_interfaces.msg import Log

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("core_log_test", context=context)
    received = []
    node.create_subscription(Log, "/rosout", received.append,
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, received, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def spin_until(executor, done, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    return done()


def test_core_records_reach_rosout_with_level_and_node_name_and_repeats_are_counted(ros_node):
    node, received, executor = ros_node
    now = [100.0]
    handler = bridge_core_logs(node.get_logger(), repeat_s=10.0)
    handler._clock = lambda: now[0]
    core = logging.getLogger("finers_ros.tracking.service")
    try:
        core.warning("frame %d not tracked: %s", 1, "unsupported encoding 'foo'")
        for seq in range(2, 6):  # the same template within 10 s: held back
            core.warning("frame %d not tracked: %s", seq, "unsupported encoding 'foo'")
        core.warning("frame %d not tracked: %s", 7, "data has 10 bytes")  # another kind
        core.error("tracking worker step failed")
        core.info("tracker ready")
        core.debug("not forwarded: below INFO")
        now[0] = 111.0
        core.warning("frame %d not tracked: %s", 8, "unsupported encoding 'foo'")
        core.warning("frame %d not tracked: %s", 9, "unsupported encoding 'foo'")  # held
    finally:
        unbridge_core_logs(handler)  # says what is still held back
    ours = lambda: [m for m in received if m.name == "core_log_test"]  # noqa: E731
    assert spin_until(executor, lambda: len(ours()) >= 6), [m.msg for m in received]
    lines = [(m.level, m.msg) for m in ours()]
    assert lines == [
        (30, "[finers_ros.tracking.service] frame 1 not tracked: unsupported encoding 'foo'"),
        (30, "[finers_ros.tracking.service] frame 7 not tracked: data has 10 bytes"),
        (40, "[finers_ros.tracking.service] tracking worker step failed"),
        (20, "[finers_ros.tracking.service] tracker ready"),
        (30, "[finers_ros.tracking.service] frame 8 not tracked: unsupported encoding 'foo' "
             "(4 more like it in the last 11 s)"),
        (30, "[finers_ros.tracking.service] frame 9 not tracked: unsupported encoding 'foo' "
             "(the last of 1 like it held back)"),
    ]
    assert logging.getLogger("finers_ros").propagate  # detached: back to Python's handlers


def test_a_record_that_cannot_be_formatted_is_still_one_line(ros_node):
    node, received, executor = ros_node
    handler = bridge_core_logs(node.get_logger())
    try:
        logging.getLogger("finers_ros.serving").warning("%d frames", "many")
        assert spin_until(executor, lambda: any(
            "unformattable" in m.msg for m in received if m.name == "core_log_test"))
    finally:
        unbridge_core_logs(handler)
