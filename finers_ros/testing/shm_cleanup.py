"""
Remove shared-memory segments in ``/dev/shm`` that a dead process left and no live one holds.

``/dev/shm`` is RAM. A process killed with SIGKILL (a crash, the OOM killer) cannot unlink
the segments it created, and nothing else does until a reboot: a vLLM server leaves its
engine message queues (Python ``multiprocessing.shared_memory``, ``psm_*``, 240 + 160 MB)
and a named semaphore (``sem.mp-*``). Who created a segment is not recorded anywhere, so the
caller names the candidates (what appeared in ``/dev/shm`` while its server ran:
``segment_names`` before and after) and ``remove_unheld`` removes those no live process holds.

A candidate is held when a process maps it (``/proc/PID/maps``) or has it open
(``/proc/PID/fd``), or when the kernel refuses a write lease on it (some open file or
mapping exists anywhere, including processes this one may not inspect or cannot see).
Standard library only, Linux only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Optional, Set

SHM_DIR = Path("/dev/shm")
PROC = Path("/proc")
# Python's multiprocessing: shared_memory segments and named semaphores (what vLLM leaves).
PYTHON_SEGMENT_PREFIXES = ("psm_", "sem.mp-")
MB = 1024 * 1024


def segment_names(
    directory: Path = SHM_DIR,
    prefixes: Iterable[str] = PYTHON_SEGMENT_PREFIXES,
    owner: Optional[int] = None,
) -> Set[str]:
    """
    Return the names of the regular files in ``directory`` with one of ``prefixes``.

    ``owner``: only files of this uid (None: any).
    """
    prefixes = tuple(prefixes)
    names = set()
    for entry in os.scandir(directory):
        if not entry.name.startswith(prefixes):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if entry.is_file(follow_symlinks=False) and (owner is None or info.st_uid == owner):
            names.add(entry.name)
    return names


@dataclass
class Holders:
    """What a scan of ``/proc`` found: candidate path -> pids, and pids it could not read."""

    pids: Dict[str, Set[int]] = field(default_factory=dict)
    uninspected: Set[int] = field(default_factory=set)


def _mapped_paths(pid_dir: Path) -> Set[str]:
    paths = set()
    with open(pid_dir / "maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
            if len(fields) == 6:
                paths.add(fields[5].rstrip("\n").removesuffix(" (deleted)"))
    return paths


def _open_paths(pid_dir: Path) -> Set[str]:
    paths = set()
    for entry in os.scandir(pid_dir / "fd"):
        try:
            paths.add(os.readlink(entry.path).removesuffix(" (deleted)"))
        except FileNotFoundError:
            pass  # closed meanwhile
    return paths


def holders(paths: Iterable[Path], proc: Path = PROC) -> Holders:
    """Scan every process's maps and fds for ``paths`` (compared as absolute path strings)."""
    wanted = {str(path) for path in paths}
    found = Holders()
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            seen = _mapped_paths(pid_dir) | _open_paths(pid_dir)
        except PermissionError:
            found.uninspected.add(int(pid_dir.name))
            continue
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        for path in wanted & seen:
            found.pids.setdefault(path, set()).add(int(pid_dir.name))
    return found


def opened_anywhere(path: Path) -> Optional[bool]:
    """
    Ask the kernel whether any open file or mapping of ``path`` exists, in any process.

    A write lease is granted only when the caller's own descriptor is the file's only open
    one (an mmap keeps its file open after its descriptor is closed). True: held; False:
    nobody holds it; None: no lease possible here (not the file's owner without
    CAP_LEASE, leases disabled, or a file system without them).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return False
    except OSError as exc:
        return True if exc.errno == errno.EWOULDBLOCK else None  # someone's lease on it
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


@dataclass
class Cleanup:
    """What ``remove_unheld`` did: removed name -> (size, bytes in memory); names kept, why."""

    removed: Dict[str, tuple] = field(default_factory=dict)
    kept: Dict[str, str] = field(default_factory=dict)

    @property
    def removed_mb(self) -> float:
        return sum(size for size, _ in self.removed.values()) / MB

    @property
    def resident_mb(self) -> float:
        return sum(resident for _, resident in self.removed.values()) / MB

    def line(self) -> str:
        """One line: how many segments were removed, their size, what was kept and why."""
        text = (
            f"removed {len(self.removed)} shared-memory segment(s) from /dev/shm "
            f"({self.removed_mb:.1f} MB, {self.resident_mb:.1f} MB of it in memory)"
        )
        if self.kept:
            reasons = ", ".join(f"{name}: {why}" for name, why in sorted(self.kept.items()))
            text += f"; kept {len(self.kept)} ({reasons})"
        return text


def remove_unheld(candidates: Iterable[Path], proc: Path = PROC) -> Cleanup:
    """
    Unlink each candidate file that no live process maps or holds open.

    A candidate already gone is skipped. One the scan cannot prove free (a process it could
    not inspect, and the kernel's lease check not available) is kept.
    """
    candidates = [Path(path) for path in candidates]
    found = holders(candidates, proc)
    done = Cleanup()
    for path in candidates:
        pids = found.pids.get(str(path))
        if pids:
            done.kept[path.name] = "held by pid " + " ".join(map(str, sorted(pids)))
            continue
        elsewhere = opened_anywhere(path)
        if elsewhere:
            done.kept[path.name] = "open in a process not inspected"
            continue
        if elsewhere is None and found.uninspected:
            done.kept[path.name] = f"{len(found.uninspected)} process(es) could not be inspected"
            continue
        try:
            info = path.stat()
            path.unlink()
        except FileNotFoundError:
            continue
        done.removed[path.name] = (info.st_size, info.st_blocks * 512)
    return done


def read_snapshot(path: Path) -> Set[str]:
    """Return the names a ``write_snapshot`` file lists."""
    return {line for line in Path(path).read_text().splitlines() if line}


def write_snapshot(path: Path, names: Iterable[str]) -> Path:
    """Write ``names`` one a line (what ``/dev/shm`` held before a server started)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in sorted(names)))
    return path


def remove_new_unheld(
    before: Set[str],
    directory: Path = SHM_DIR,
    owner: Optional[int] = None,
    settle_s: float = 0.0,
) -> Cleanup:
    """
    Remove the Python segments of ``owner`` in ``directory`` not in ``before`` and unheld.

    ``settle_s``: how long to keep trying the ones still held. A killed process lets go of
    its files only once the kernel has finished its exit (on a loaded machine the last close
    is deferred), and an engine process outside the killed group notices its parent's death
    a moment later; a segment still held after ``settle_s`` is kept.
    """
    names = segment_names(directory, owner=owner) - set(before)
    done = remove_unheld(directory / name for name in sorted(names))
    deadline = time.monotonic() + settle_s
    while done.kept and time.monotonic() < deadline:
        time.sleep(0.1)
        again = remove_unheld(directory / name for name in sorted(done.kept))
        done.removed.update(again.removed)
        done.kept = again.kept
    return done
