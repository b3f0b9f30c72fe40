"""
The node shuts down cleanly when the process that started it dies (``--exit-with-parent``).

A real process tree: a subreaper (as a container's init is) starts a launcher process, which
starts the node; the launcher is then killed without stopping its child, as ``ros2 launch``
does on SIGTERM. The orphaned node must notice, shut down in order (exit 0, its own
shared-memory segments removed) and say why; without the flag it runs on.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finers_ros.ros.command_line import EXIT_WITH_PARENT, read_command_line

HERE = Path(__file__).resolve().parent
WAIT_S = 20.0

# The launcher: starts the node (its output to the launcher's), then waits forever.
LAUNCHER = r"""
import subprocess, sys, time
subprocess.Popen(sys.argv[1:])
time.sleep(600)
"""


def test_flag_is_taken_from_the_program_arguments_only():
    assert read_command_line(["node", EXIT_WITH_PARENT, "--ros-args", "-p", "a:=1"]
                             ).exit_with_parent
    assert not read_command_line(["node", "--ros-args", "-r", "__ns:=/x"]).exit_with_parent
    assert read_command_line(["node", "--ros-args", "-r", "__ns:=/x", "--", EXIT_WITH_PARENT]
                             ).exit_with_parent
    with pytest.raises(SystemExit) as refused:  # rcl has no such argument
        read_command_line(["node", "--ros-args", EXIT_WITH_PARENT])
    assert refused.value.code == 2


def _orphan_run(domain: int, namespace: str, flag: list, tmp_path: Path,
                wait_s: float = WAIT_S) -> tuple:
    from finers_ros.ros.launcher import ros_environment

    node = [str(Path(sys.executable).parent / "finers-perception"), *flag,
            "--ros-args", "-r", f"__ns:=/{namespace}"]
    log = tmp_path / f"{namespace}.log"
    run = subprocess.run(
        [sys.executable, str(HERE / "orphan_supervisor.py"), str(log), "serving:", "SIGKILL",
         str(wait_s), "--", sys.executable, "-c", LAUNCHER, *node],
        env=ros_environment(domain), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr + log.read_text()
    return json.loads(run.stdout.strip().splitlines()[-1]), log.read_text()


def _in_use() -> set:
    in_use = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        in_use |= {line.split("/dev/shm/", 1)[1].strip() for line in text.splitlines()
                   if "/dev/shm/fastdds_" in line}
    return in_use


def test_orphaned_node_shuts_down_cleanly(domain, tmp_path):
    result, log = _orphan_run(domain, "orphan", [EXIT_WITH_PARENT], tmp_path)
    assert result["launcher"] == -9
    assert list(result["orphans"].values()) == [0], (result, log[-2000:])
    assert "exited (ros2 launch stopped by SIGTERM or killed): shutting down" in log, log[-2000:]
    assert "Traceback" not in log and "terminate called" not in log, log[-2000:]
    (node_pid,) = result["orphans"]
    own = set(result["segments"][node_pid])
    assert own, "the node mapped no shared-memory segment (is the SHM profile in use?)"
    left = own & set(os.listdir("/dev/shm"))
    assert left <= _in_use(), f"left behind: {sorted(left - _in_use())}"


def test_without_the_flag_an_orphaned_node_runs_on(domain, tmp_path):
    result, log = _orphan_run(domain, "stays", [], tmp_path, wait_s=5.0)
    assert list(result["orphans"].values()) == ["running"], (result, log[-2000:])
