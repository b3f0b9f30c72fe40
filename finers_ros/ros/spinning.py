"""
The node's executor loop: spin until stopped, past rclpy's destroy-while-waiting race.

A lifecycle transition destroys the node's subscriptions, timers and publishers from an
executor thread while another thread of the ``MultiThreadedExecutor`` may hold them in its
wait set; rclpy then raises ``InvalidHandle`` ("cannot use Destroyable because destruction
was requested") out of ``spin`` (ros2/rclpy#1355, open). The entity is gone by the next
wait, so the loop counts the race and spins on instead of ending the process.
"""
from __future__ import annotations

import threading
from typing import Callable

SPIN_STEP_S = 0.1


def spin_past_races(executor, stop: threading.Event,
                    on_race: Callable[[Exception], None] = lambda exc: None) -> int:
    """
    Spin ``executor`` until ``stop`` is set or its context shuts down; return the races seen.

    ``InvalidHandle`` from a wait that held a destroyed entity goes to ``on_race`` and the
    loop goes on; any other exception ends it (raised to the caller).
    """
    from rclpy.exceptions import InvalidHandle

    races = 0
    while not stop.is_set() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=SPIN_STEP_S)
        except InvalidHandle as exc:
            races += 1
            on_race(exc)
    return races
