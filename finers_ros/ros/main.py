"""``finers-perception [--ros-args ...]``: start the node as ``ros2 launch`` would.

Without ``--params-file`` in the ROS arguments, the package's config/perception.yaml is
used, as the launch file does. Invalid parameters exit with status 2 and one line.
"""
from __future__ import annotations

import sys
from typing import List, Optional

from .paths import default_params_file


def with_default_params(argv: List[str]) -> List[str]:
    if "--params-file" in argv:
        return argv
    extra = ["--params-file", str(default_params_file())]
    if "--ros-args" in argv:
        return argv + extra if argv[-1] != "--" else argv[:-1] + extra
    return argv + ["--ros-args"] + extra


def main(argv: Optional[List[str]] = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from .node import PerceptionNode
    from .params import ParameterError

    args = with_default_params(list(sys.argv if argv is None else argv))
    rclpy.init(args=args)
    try:
        node = PerceptionNode()
    except ParameterError as exc:
        print(f"finers-perception: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():  # a real failure, not the context going away under a signal
            raise
    finally:
        if node.server is not None:
            node.server.stop("node shutting down")
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
