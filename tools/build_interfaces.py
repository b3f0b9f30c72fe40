#!/usr/bin/env python3
"""
Build the ROS 2 interfaces (msg/, action/) with colcon inside the project's venv.

The PyPI message wheels export CMake files that name the wheel build machine's Python and
numpy include directories; they are rewritten to this venv's first. The core is installed
by pip, so CMake's FINERS_INSTALL_CORE is OFF. The interface libraries are linked into the
venv's lib/, which the ROS wheels' bootstrapper already puts on LD_LIBRARY_PATH (the RMW
loads type support libraries by name). A ``.pth`` file puts the install prefix's
site-packages on the venv's path, where ``finers_ros.msg`` / ``finers_ros.action`` live.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
WHEEL_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
WHEEL_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def fix_wheel_cmake_paths() -> int:
    fixed = 0
    for path in (VENV / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/cp311-cp311" not in text:
            continue
        text = text.replace(WHEEL_NUMPY_INCLUDE, numpy.get_include())
        text = text.replace(WHEEL_PY_INCLUDE, sysconfig.get_paths()["include"])
        path.write_text(text)
        fixed += 1
    return fixed


def stage_sources() -> Path:
    """
    Stage a source tree of links beside the repository's files.

    CMake refuses exported include directories inside the source directory, and the venv
    (with numpy's headers) lives in the repository root; the staged tree avoids that.
    """
    stage = ROOT / "build" / "interfaces_src" / "finers_ros"
    stage.mkdir(parents=True, exist_ok=True)
    for name in (
        "CMakeLists.txt", "package.xml", "msg", "action", "launch", "config", "rviz", "tools",
        "finers_ros",
    ):
        link = stage / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / name)
    return stage.parent


def colcon_build(sources: Path, build_base: Path, install_base: Path, log_base: Path,
                 cmake_args: tuple = (), **run) -> subprocess.CompletedProcess:
    """
    Build the interface packages under ``sources`` with colcon against the venv's ROS wheels.

    Merged install into ``install_base``; ``run`` goes to ``subprocess.run`` (output capture).
    """
    fix_wheel_cmake_paths()
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    env.pop("RMW_IMPLEMENTATION", None)
    command = [
        str(VENV / "bin" / "colcon"), "--log-base", str(log_base), "build",
        "--base-paths", str(sources), "--build-base", str(build_base),
        "--install-base", str(install_base), "--merge-install",
        "--cmake-args", f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}", "-DBUILD_TESTING=OFF",
        *cmake_args,
    ]
    return subprocess.run(command, check=True, env=env, cwd=ROOT, **run)


def main() -> int:
    fixed = fix_wheel_cmake_paths()
    sources = stage_sources()
    print(f"build_interfaces: rewrote {fixed} wheel CMake file(s); running colcon", flush=True)
    colcon_build(sources, ROOT / "build" / "colcon", ROOT / "install",
                 ROOT / "build" / "colcon-log", ("-DFINERS_INSTALL_CORE=OFF",))
    for library in (ROOT / "install" / "lib").glob("lib*.so"):
        link = VENV / "lib" / library.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(library)
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = ROOT / "install" / "lib" / python / "site-packages"
    pth = Path(sysconfig.get_paths()["purelib"]) / "finers_ros_interfaces.pth"
    pth.write_text(f"{site}\n")
    print(f"build_interfaces: interfaces installed under {site} (added to the venv by {pth.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
