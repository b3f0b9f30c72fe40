"""
The program's own options of ``finers-perception``; ROS arguments pass through untouched.

``finers-perception [--exit-with-parent] [--ros-args ...]``: what rcl reads (after
``--ros-args``, up to a ``--``) is split off by rclpy, which also refuses a malformed or
unknown ROS argument; argparse reads the rest. ``--help`` prints the usage and exits 0; an
unknown option exits 2 with one line naming it.
"""
from __future__ import annotations

import argparse
from typing import List

from .paths import default_params_file

PROG = "finers-perception"
EXIT_WITH_PARENT = "--exit-with-parent"


class CommandLineError(ValueError):
    """The command line cannot be used: one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (status 2), not the usage and the error."""

    def error(self, message: str) -> None:
        """Exit 2 with ``finers-perception: <message> (see --help)``."""
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def epilog() -> str:
    """How ROS arguments are given and where the parameters are described."""
    return (
        "ROS arguments go after --ros-args and reach ROS untouched, for example:\n"
        "  -p name:=value       set one parameter (-p track_stall_s:=5)\n"
        "  --params-file FILE   parameters from a YAML file (/**: ros__parameters: ...)\n"
        "  -r from:=to          remap a topic, the node name (__node:=) or namespace (__ns:=)\n"
        "  --log-level LEVEL    debug | info | warn | error\n"
        "\n"
        "Parameters not given keep the defaults of\n"
        f"  {default_params_file()}\n"
        "whose comments, docs/ros_interface.md (Parameters), docs/configuration.md and\n"
        "`ros2 param describe /finers_perception <name>` describe each one. A value of the\n"
        "wrong type or out of range stops the node with one line (exit status 2).\n")


def parser() -> OneLineParser:
    """Build the parser of the program's own options."""
    result = OneLineParser(
        prog=PROG, allow_abbrev=False,
        usage=f"{PROG} [--exit-with-parent] [--ros-args ROS_ARGUMENTS ...]",
        description="The FineRS perception node (finers_perception): an instruction about a "
                    "small object\nin the camera's frames (\"find the red screw\") gets a "
                    "mask, a box and an answer.\nThe same node `ros2 launch finers_ros "
                    "perception.launch.py` starts.",
        epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument(EXIT_WITH_PARENT, action="store_true",
                        help="shut down when the process that started the node exits (the "
                             "launch file passes it)")
    return result


def own_arguments(argv: List[str]) -> List[str]:
    """
    ``argv`` without the program name and the ROS arguments.

    Raises CommandLineError naming a malformed or unknown ROS argument (rcl would refuse it).
    """
    from rclpy.impl.implementation_singleton import rclpy_implementation
    from rclpy.utilities import remove_ros_args

    try:
        return remove_ros_args(argv)[1:]
    except rclpy_implementation.UnknownROSArgsError as exc:
        raise CommandLineError(f"unknown ROS arguments after --ros-args: {exc}") from None
    except rclpy_implementation.RCLInvalidROSArgsError as exc:
        reason = str(exc).split(", at ", 1)[0]  # without rcl's source location
        reason = reason.removeprefix("Failed to parse ROS arguments: ")
        raise CommandLineError(f"invalid ROS arguments: {reason}") from None


def read_command_line(argv: List[str]) -> argparse.Namespace:
    """
    Return the program's options from the full ``argv`` (program name first).

    Raises SystemExit: 0 after ``--help``, 2 after an unknown option or a bad ROS argument
    (one line on stderr).
    """
    command = parser()
    try:
        own = own_arguments(argv)
    except CommandLineError as exc:
        command.error(str(exc))
    return command.parse_args(own)
