"""
Stop a launcher as ``docker stop`` does and report what became of the processes it started.

    python orphan_supervisor.py LOG READY SIGNAL WAIT_S -- COMMAND...

Runs as a child subreaper (what a container's init is), starts COMMAND (the launcher) with its
output in LOG, waits until READY appears there, then sends SIGNAL to the launcher only. The
launcher's children that outlive it are re-parented to this process, so their exit statuses
can be collected here; any still running after WAIT_S seconds is killed and reported as
"running". Prints one JSON line: the launcher's exit status, each orphan's status (a signal as
its negative number) and the Fast DDS segments each descendant had mapped when the signal
was sent.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def _children(pid: int) -> list:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _descendants(pid: int) -> list:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _segments(pid: int) -> list:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return sorted({line.split("/dev/shm/", 1)[1].strip() for line in maps.splitlines()
                   if "/dev/shm/fastdds_" in line and "port" not in line.split("/dev/shm/", 1)[1]})


def main(argv: list) -> int:
    log, ready, signame, wait_s = argv[1], argv[2], argv[3], float(argv[4])
    command = argv[argv.index("--") + 1:]
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, ctypes.get_errno()
    with open(log, "w") as out:
        launcher = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while ready not in Path(log).read_text(errors="replace"):
        if launcher.poll() is not None or time.monotonic() > deadline:
            launcher.kill()
            print(json.dumps({"error": "never ready", "launcher": launcher.wait()}))
            return 1
        time.sleep(0.2)
    started = {pid: _segments(pid) for pid in [launcher.pid, *_descendants(launcher.pid)]}
    launcher.send_signal(getattr(signal, signame))
    result = {"launcher": launcher.wait(30), "orphans": {}, "segments": started}
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # none left
        if pid:
            result["orphans"][pid] = os.waitstatus_to_exitcode(status)
        else:
            time.sleep(0.05)
    for pid in _children(os.getpid()):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        result["orphans"][pid] = "running"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
