"""
Checks the launch file runs before it starts anything (no ROS imports).

A launch that fails half-way leaves a node running without the rest (or orphaned when the
terminal is gone), so every reason not to start is found first and reported in one line.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional

RVIZ_INSTALL = "sudo apt install ros-$ROS_DISTRO-rviz2"
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def launch_flag(name: str, text: str) -> Optional[bool]:
    """
    Read a true/false launch argument; ``""`` is None (the params file decides).

    Raises ValueError naming the argument for any other word, so a typo such as
    ``depth_enabled:=ture`` stops the launch instead of quietly meaning false.
    """
    word = text.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"{name}:={text}: expected true or false")


def read_flags(values: Dict[str, str]) -> tuple:
    """Return ``({name: True | False | None}, [problem, ...])`` for true/false arguments."""
    flags, problems = {}, []
    for name, text in values.items():
        try:
            flags[name] = launch_flag(name, text)
        except ValueError as exc:
            problems.append(str(exc))
    return flags, problems


def rviz_available(which: Callable[[str], Optional[str]] = shutil.which) -> bool:
    """Tell whether an ``rviz2`` executable or ament package is installed."""
    if which("rviz2"):
        return True
    try:
        from ament_index_python.packages import get_package_prefix

        get_package_prefix("rviz2")
        return True
    except Exception:  # not installed, or no ament index at all
        return False


def launch_problems(config: str, use_rviz: bool,
                    which: Callable[[str], Optional[str]] = shutil.which) -> List[str]:
    """Why the launch must not start: missing params file, RViz asked for but absent."""
    problems = []
    path = Path(config)
    if not path.is_file():
        problems.append(f"config:={config}: params file not found")
    else:
        try:
            path.read_text()
        except OSError as exc:
            problems.append(f"config:={config}: params file unreadable: {exc}")
    if use_rviz and not rviz_available(which):
        problems.append(f"use_rviz:=true but rviz2 is not installed: {RVIZ_INSTALL} "
                        f"(or launch without use_rviz)")
    return problems
