"""
Removing the shared-memory segments a killed process left in /dev/shm, and only those.

Real files in /dev/shm, real processes holding them (one through a mapping whose descriptor
it closed, one through an open descriptor), a real process group killed with SIGKILL after
creating Python multiprocessing segments as vLLM's engine does, and the command a supervisor
runs after a crash.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from finers_ros.testing.shm_cleanup import (
    MB,
    SHM_DIR,
    holders,
    opened_anywhere,
    remove_new_unheld,
    remove_unheld,
    segment_names,
)
from finers_ros.testing.vllm_server import end_process_group

TOOL = Path(__file__).resolve().parents[1] / "tools" / "vllm_server.py"

# Maps ``argv[1]`` and closes its descriptor, keeps ``argv[2]`` open, then waits (with a third
# argument, not dumpable first).
HOLDER = r"""
import ctypes, mmap, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
if len(sys.argv) > 3:  # not dumpable: only root may read its /proc maps and fds
    assert libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
fd = os.open(sys.argv[1], os.O_RDWR)
address = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
assert address not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
os.close(fd)
held = os.open(sys.argv[2], os.O_RDONLY)
print("ready", flush=True)
time.sleep(600)
"""

# Creates what vLLM's engine leaves: a shared_memory segment and a spawn-context lock (a named
# semaphore, sem.mp-*), prints their /dev/shm names, then waits.
PYTHON_SEGMENTS = r"""
import multiprocessing, sys, time
from multiprocessing import shared_memory
segment = shared_memory.SharedMemory(create=True, size=int(sys.argv[1]))
segment.buf[:] = b"x" * segment.size
lock = multiprocessing.get_context("spawn").Lock()
print(segment.name, "sem." + lock._semlock.name.lstrip("/"), flush=True)
time.sleep(600)
"""


@pytest.fixture
def shm_files():
    """Return a maker of uniquely named files in /dev/shm; removes what is left afterwards."""
    made = []
    token = uuid.uuid4().hex[:8]

    def make(name: str, size: int = 4096, prefix: str = "psm_") -> Path:
        path = SHM_DIR / f"{prefix}finers_test_{token}_{name}"
        path.write_bytes(b"\1" * size)
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink(missing_ok=True)


def _started(command, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", *command], stdout=subprocess.PIPE, text=True, **kwargs
    )
    return process


def test_orphan_goes_and_segments_a_live_process_holds_stay(shm_files):
    orphan, mapped, opened = shm_files("orphan", MB), shm_files("mapped"), shm_files("opened")
    holder = _started([HOLDER, str(mapped), str(opened)])
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert opened_anywhere(mapped) is True  # only its mapping holds it
        assert opened_anywhere(orphan) is False
        done = remove_unheld([orphan, mapped, opened])
        assert not orphan.exists() and mapped.exists() and opened.exists()
        size, resident = done.removed[orphan.name]
        assert set(done.removed) == {orphan.name} and size == MB and resident >= MB
        assert done.kept == {
            mapped.name: f"held by pid {holder.pid}",
            opened.name: f"held by pid {holder.pid}",
        }
        assert done.line().startswith(
            "removed 1 shared-memory segment(s) from /dev/shm (1.0 MB, 1.0 MB of it in memory); "
            "kept 2 ("
        )
    finally:
        holder.kill()
        holder.wait(10)
    assert opened_anywhere(mapped) is False
    again = remove_unheld([orphan, mapped, opened])  # the orphan, already gone, is skipped
    assert set(again.removed) == {mapped.name, opened.name} and not again.kept
    assert not mapped.exists() and not opened.exists()


def _as_user(uid: int, work) -> dict:
    """Run ``work()`` in a forked child with user id ``uid``; return the dict it returns."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() != uid:
                os.setgid(pwd.getpwuid(uid).pw_gid)
                os.setuid(uid)
            os.write(write_end, json.dumps(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()
    assert os.waitpid(pid, 0)[1] == 0, "the child failed"
    return json.loads(text)


def test_a_holder_that_cannot_be_inspected_keeps_its_segment(shm_files):
    """
    Keep a segment whose holder's /proc entries this process may not read.

    A process of another user (or one not dumpable) hides its maps and fds unless the
    cleaner is root: the kernel's lease check then finds the segment still open.
    """
    cleaner = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
    hidden, orphan, unused = shm_files("hidden"), shm_files("orphan"), shm_files("unused")
    for path in (hidden, orphan, unused):
        os.chown(path, cleaner, -1)  # leases are for the file's owner
    holder = _started([HOLDER, str(hidden), str(unused), "not dumpable"])
    try:
        assert holder.stdout.readline().strip() == "ready"

        def clean() -> dict:
            scan = holders([hidden])
            done = remove_unheld([hidden, orphan])
            return {"uninspected": holder.pid in scan.uninspected, "kept": done.kept,
                    "removed": sorted(done.removed)}

        result = _as_user(cleaner, clean)
    finally:
        holder.kill()
        holder.wait(10)
    assert result["uninspected"], "the holder's /proc entries were readable: nothing to check"
    assert result["kept"] == {hidden.name: "open in a process not inspected"}
    assert result["removed"] == [orphan.name]
    assert hidden.exists() and not orphan.exists()


def test_killed_process_group_leaves_none_of_its_python_segments():
    before = segment_names(owner=os.geteuid())
    group = _started([PYTHON_SEGMENTS, str(2 * MB)], start_new_session=True)
    live = _started([PYTHON_SEGMENTS, str(MB)])  # another program's, made meanwhile
    names = []
    try:
        group_names = group.stdout.readline().split()
        names = group_names + live.stdout.readline().split()
        assert all((SHM_DIR / name).exists() for name in names), names
        os.killpg(group.pid, signal.SIGKILL)  # its resource tracker dies with it
        group.wait(10)
        assert end_process_group(group.pid) == set()
        done = remove_new_unheld(before, owner=os.geteuid())
        assert not any((SHM_DIR / name).exists() for name in group_names)
        assert set(group_names) <= set(done.removed)
        assert done.removed[group_names[0]][0] == 2 * MB
        live_segment = names[2]
        assert (SHM_DIR / live_segment).exists()
        assert done.kept[live_segment] == f"held by pid {live.pid}"
    finally:
        for process in (group, live):
            process.kill()
            process.wait(10)
        for name in names:
            (SHM_DIR / name).unlink(missing_ok=True)


def _tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120
    )


def test_clean_shm_command_removes_only_what_appeared_since_the_snapshot(shm_files, tmp_path):
    snapshot = tmp_path / "shm-before"
    earlier = shm_files("earlier")
    made = _tool("shm-snapshot", str(snapshot))
    assert made.returncode == 0, made.stderr
    assert earlier.name in snapshot.read_text().split()
    crashed, semaphore = shm_files("crashed"), shm_files("lock", 32, prefix="sem.mp-")
    not_python = shm_files("other", prefix="fastdds_")

    missing = _tool("clean-shm", "--since-file", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "no snapshot to compare with" in missing.stderr
    assert crashed.exists() and semaphore.exists()

    done = _tool("clean-shm", "--since-file", str(snapshot))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed ") and "segment(s) from /dev/shm (" in done.stdout
    assert not crashed.exists() and not semaphore.exists()
    assert earlier.exists() and not_python.exists()


# Maps ``argv[1]``, says so, and exits after ``argv[2]`` seconds (a process still finishing).
BRIEF_HOLDER = r"""
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
mapped = mmap.mmap(fd, 4096)
os.close(fd)
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_segment_let_go_a_moment_after_the_cleanup_started_is_removed_when_settling(
        shm_files):
    """A dying holder's segment: kept by a single pass, removed by one that settles."""
    before = segment_names(owner=os.geteuid())
    for settle_s, gone in ((0.0, False), (10.0, True)):
        segment = shm_files(f"brief_{settle_s:g}")
        holder = _started([BRIEF_HOLDER, str(segment), "1.0"])
        try:
            assert holder.stdout.readline().strip() == "ready"
            done = remove_new_unheld(before, owner=os.geteuid(), settle_s=settle_s)
        finally:
            holder.wait(20)
        assert (segment.name in done.removed) is gone and (segment.name in done.kept) is not gone
        assert segment.exists() is not gone
