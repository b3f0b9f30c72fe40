"""Starting and stopping the node as a separate process, as `ros2 launch` would."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import yaml

from .paths import fastdds_profile


def ros_environment(domain_id: int, shared_memory: bool = True) -> dict:
    """Environment for a node or client: isolated domain, loopback discovery, SHM profile."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("RMW_IMPLEMENTATION", None)
    if shared_memory:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(fastdds_profile())
    return env


class NodeProcess:
    """
    ``finers-perception`` in its own process group, with parameter overrides.

    ``parameters`` go in one params file; the rest keep the node's defaults (those of
    config/perception.yaml).
    """

    def __init__(self, domain_id: int, parameters: Optional[dict] = None, ros_args: tuple = (),
                 log_path: Optional[Path] = None, env: Optional[dict] = None,
                 shared_memory: bool = True):
        self.env = ros_environment(domain_id, shared_memory)
        self.env.update(env or {})
        self._tmp = tempfile.TemporaryDirectory(prefix="finers-node-")
        command = [str(Path(sys.executable).parent / "finers-perception"), "--ros-args"]
        if parameters:
            override = Path(self._tmp.name) / "overrides.yaml"
            override.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
            command += ["--params-file", str(override)]
        command += list(ros_args)
        self.log_path = log_path or Path(self._tmp.name) / "node.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def log(self) -> str:
        """Everything the node printed so far."""
        if not self._log.closed:
            self._log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def alive(self) -> bool:
        """Tell whether the process still runs."""
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT, then SIGKILL of the whole group; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def clean_shared_memory() -> str:
    """
    Remove Fast DDS shared-memory segments left by killed processes; the tool's report.

    The venv's ``fastdds`` script runs ``python3`` from PATH, so the venv's bin directory goes
    first on PATH (the system Python lacks the tool's ``psutil``). Raises RuntimeError when
    the tool is missing or fails, so a cleanup that did nothing is not silent.
    """
    bin_dir = Path(sys.executable).parent
    fastdds = shutil.which("fastdds", path=str(bin_dir))
    if not fastdds:
        raise RuntimeError(f"fastdds not found in {bin_dir}")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([fastdds, "shm", "clean"], capture_output=True, text=True,
                          timeout=60, env=env)
    if done.returncode != 0 or "shm.clean:" not in done.stdout:
        raise RuntimeError(f"fastdds shm clean failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-300:]}")
    return " ".join(done.stdout.split())


def clean_shared_memory_or_say(tool: str) -> None:
    """
    Run ``clean_shared_memory`` at the end of a tool's run, printing a failure.

    The tool's own result (demo, smoke) stands either way; a cleanup that failed is said, not
    raised.
    """
    try:
        clean_shared_memory()
    except RuntimeError as exc:
        print(f"{tool}: {exc}")
