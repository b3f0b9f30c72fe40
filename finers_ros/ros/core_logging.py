"""
The core library's Python log records on the node's ROS logger (console and ``/rosout``).

``finers_ros``'s core logs with Python's ``logging`` (it imports no ROS). In the node those
records would reach stderr bare (no level, time or node name, nothing on ``/rosout``); the
bridge hands them to the node's logger instead. A record repeated per frame (a camera that
keeps sending unreadable frames) is written once per ``repeat_s`` for each kind of line (its
text with the numbers left out: another reason is another kind), the next line of that kind
saying how many were held back; what is still held back when the bridge is removed is said
then.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable, Dict, Tuple

CORE_LOGGER = "finers_ros"
REPEAT_S = 10.0
MAX_KINDS = 256  # kinds of line remembered (the oldest forgotten first)
_NUMBERS = re.compile(r"\d+")


class CoreLogBridge(logging.Handler):
    """Forward records of the ``finers_ros`` loggers to a ROS logger, repeats held back."""

    def __init__(self, ros_logger, repeat_s: float = REPEAT_S,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._ros = ros_logger
        self._repeat_s = repeat_s
        self._clock = clock
        # kind (level, text without numbers) -> (last written, held back since, latest text)
        self._seen: Dict[Tuple[int, str], Tuple[float, int, str]] = {}
        self._seen_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` on the ROS logger unless its kind was written just now."""
        try:
            text = f"[{record.name}] {self.format(record)}"
        except Exception:  # a bad format string in a record: say so, do not raise
            text = f"[{record.name}] {record.msg!r} (unformattable arguments)"
        key, now = (record.levelno, _NUMBERS.sub("#", text)), self._clock()
        with self._seen_lock:
            last, held, _ = self._seen.pop(key, (None, 0, ""))
            if last is not None and now - last < self._repeat_s:
                self._seen[key] = (last, held + 1, text)
                return
            self._seen[key] = (now, 0, text)  # the newest kind last: the oldest dropped first
            while len(self._seen) > MAX_KINDS:
                del self._seen[next(iter(self._seen))]
        if held:
            text += f" ({held} more like it in the last {now - last:.0f} s)"
        self._write(record.levelno, text)

    def flush_held(self) -> None:
        """Say, per kind of line, how many were held back and not said yet."""
        with self._seen_lock:
            held = [(key[0], count, latest) for key, (_, count, latest) in self._seen.items()
                    if count]
            self._seen.clear()
        for level, count, latest in held:
            self._write(level, f"{latest} (the last of {count} like it held back)")

    def _write(self, level: int, text: str) -> None:
        # one call site per severity: rclpy refuses a call site that changes severity
        if level >= logging.ERROR:
            self._ros.error(text)
        elif level >= logging.WARNING:
            self._ros.warning(text)
        else:
            self._ros.info(text)


def bridge_core_logs(ros_logger, repeat_s: float = REPEAT_S) -> CoreLogBridge:
    """Send the core's records (INFO and above) to ``ros_logger``; returns the handler."""
    handler = CoreLogBridge(ros_logger, repeat_s)
    core = logging.getLogger(CORE_LOGGER)
    core.addHandler(handler)
    core.setLevel(logging.INFO)
    core.propagate = False  # not also bare on stderr
    return handler


def unbridge_core_logs(handler: CoreLogBridge) -> None:
    """Stop forwarding (the node is destroyed); the core logs to Python's handlers again."""
    core = logging.getLogger(CORE_LOGGER)
    core.removeHandler(handler)
    handler.flush_held()
    if not core.handlers:
        core.propagate = True
