"""
``finers-perception [--exit-with-parent] [--ros-args ...]``: the node, as ros2 launch starts it.

The program's own options and ``--help`` are read by command_line.py; the ROS arguments go to
rclpy as given. Parameters that no ``--params-file`` or ``-p`` sets keep the defaults of the
package's config/perception.yaml (the node declares them from it), as with the launch file.
That file is not passed to rcl: rcl merges every source of a parameter into one value per
type and rclpy then prefers bool, integer, double, string in that order, so the shipped
number would silently win over a later text and a wrong type would go unreported. Invalid
parameters, an unknown option and a params file that is missing or unreadable exit with
status 2 and one line.

Shutdown (SIGINT, SIGTERM, or the lifecycle ``shutdown`` transition) runs in order: stop
intake, cancel the request in flight, join the worker (bounded), stop the executor,
destroy the node, shut the context down. Further signals during shutdown are ignored
(``ros2 launch`` without a TTY sends SIGINT again).

``--exit-with-parent`` (before ``--ros-args``; the launch file passes it): shut down the same
way when the process that started the node is gone. ``ros2 launch`` that receives SIGTERM
(``docker stop``) or SIGKILL exits without stopping its children; the node, re-parented, would
otherwise run on unsupervised. The parent is polled (``os.getppid()`` changes when it dies),
which, unlike ``PR_SET_PDEATHSIG``, does not fire when only the thread that started the node
ends.
"""
from __future__ import annotations

import faulthandler
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from .command_line import read_command_line
from .memory import tune_malloc
from .spinning import spin_past_races

EXECUTOR_THREADS = 4
JOIN_S = 2.0
FINALIZED_GRACE_S = 1.0
SHUTDOWN_LIMIT_S = 15.0
RELEASE_S = 5.0
POLL_S = 0.1  # how often the main thread looks at signals, the executor and the parent


def parent_gone(parent: Optional[int]) -> bool:
    """Tell whether the process ``parent`` that started this one has exited (re-parented)."""
    return parent is not None and os.getppid() != parent


def params_file_problem(argv: List[str]) -> Optional[str]:
    """Why a ``--params-file`` argument cannot be used (missing, unreadable, not YAML)."""
    import yaml

    for index, arg in enumerate(argv[:-1]):
        if arg != "--params-file":
            continue
        path = Path(argv[index + 1])
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            return f"params file not found: {path}"
        except (OSError, UnicodeDecodeError) as exc:
            return f"params file unreadable: {path}: {exc}"
        except yaml.YAMLError as exc:
            return f"params file is not valid YAML: {path}: {' '.join(str(exc).split())}"
        if not isinstance(data, dict):
            return f"params file has no parameters mapping: {path}"
    return None


def release_context(context) -> None:
    """
    Delete the DDS participant (and its shared-memory segments) within a bound.

    The interpreter's teardown, which would otherwise do it, is skipped (see ``main``): the
    last handles that keep the context alive are collected, then the context is destroyed,
    in a thread so that a middleware destructor that hangs cannot hold the exit; segments it
    leaves behind are what ``fastdds shm clean`` removes.
    """
    faulthandler.cancel_dump_traceback_later()

    def release() -> None:
        gc.collect()
        context.destroy()

    releaser = threading.Thread(target=release, name="finers-release", daemon=True)
    releaser.start()
    releaser.join(RELEASE_S)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the node until a signal or the shutdown transition, then exit with its status."""
    tune_malloc()  # first: keep 25 MB frame buffers mapped (see memory.py)
    stop = threading.Event()  # set by the shutdown transition or a failed executor
    signalled: List[int] = []

    def on_signal(signum, frame) -> None:
        # no lock here (not even stop.set()): the handler runs in the main thread, which may
        # hold stop's lock inside stop.wait(), and would deadlock on it
        signalled.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    args = list(sys.argv if argv is None else argv)
    # first the params files (rcl's own parse of a missing one would say less), then the
    # options: --help exits 0, an unknown option 2, each with its one line
    problem = params_file_problem(args)
    if problem:
        print(f"finers-perception: {problem}", file=sys.stderr)
        return 2
    try:
        options = read_command_line(args)
    except SystemExit as exc:
        return exc.code
    parent = os.getppid() if options.exit_with_parent else None

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from .node import PerceptionNode
    from .params import ParameterError

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = PerceptionNode(on_finalized=stop.set)
    except ParameterError as exc:
        print(f"finers-perception: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    failure: list = []

    def race(exc: Exception) -> None:
        node.get_logger().debug(f"executor wait held a destroyed entity (spun past): {exc}")

    def spin() -> None:
        try:
            spin_past_races(executor, stop, race)
        except Exception as exc:  # a real failure: end the process with it
            if not stop.is_set():
                failure.append(exc)
        finally:
            stop.set()

    spinner = threading.Thread(target=spin, name="finers-executor", daemon=True)
    spinner.start()
    while not signalled and not stop.wait(POLL_S):
        if parent_gone(parent):
            node.get_logger().warning(
                f"parent process {parent} exited (ros2 launch stopped by SIGTERM or killed): "
                f"shutting down")
            break
    stop.set()  # what the executor raises from here on is the shutdown, not a failure
    # from here on signals are ignored by the OS: Python's own teardown would reinstate the
    # default SIGINT action and a repeated signal would kill the process (exit -2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # every step below is bounded; should one still hang, print where and leave
    faulthandler.dump_traceback_later(SHUTDOWN_LIMIT_S, exit=True)
    node.stop_serving("node shutting down")
    node.wait_goals_ended(JOIN_S)  # their results go out before the executor stops
    if node.state_name == "finalized":
        # ended by the shutdown transition: its reply must reach the lifecycle manager
        # before the node's endpoints go away
        time.sleep(FINALIZED_GRACE_S)
    executor.shutdown(timeout_sec=JOIN_S)
    spinner.join(JOIN_S)
    node.destroy_node()
    rclpy.try_shutdown()
    # the context's own teardown deletes the DDS participant and its shared-memory
    # segments; done here, not left to the interpreter's teardown (skipped below)
    node = executor = spinner = None  # drop the last Python handles on the context
    release_context(rclpy.utilities.get_default_context())
    code = 1 if failure else 0
    if failure:
        try:
            print(f"finers-perception: executor failed: {failure[0]!r}", file=sys.stderr)
        except OSError:  # stderr went with the parent
            pass
    # Leave without the interpreter's teardown. Everything above shut down in order; what
    # teardown adds is the middleware's native destructors, which were seen to hang past the
    # watchdog (main thread in native code, no Python frame left, about 1 in 60 SIGINT
    # restarts on a loaded machine), and an abandoned model run that may still be inside
    # native code could crash under it.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # the reader went with the parent (a broken pipe): nothing to tell
            pass
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
