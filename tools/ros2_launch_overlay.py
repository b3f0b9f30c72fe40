#!/usr/bin/env python3
"""
Build the real ``ros2 launch`` and ``ros2`` CLI over the project's venv, in build/ only.

``launch``, ``launch_ros``, ``ros2launch`` and ``ros2cli`` are not on PyPI; they are pure
Python and run on the venv's ROS wheels when installed from their source repositories
(ros2/launch, ros2/launch_ros, ros2/ros2cli, ros2/rosidl_runtime_py and ros2/rcl_interfaces
for ``composition_interfaces``, which ``launch_ros`` imports and must be built with CMake).
Nothing goes into the venv: the Python packages go to ``build/ros2_launch/site`` (pip
``--target``), ``composition_interfaces`` to ``build/ros2_launch/prefix``, the project itself
is built by colcon into ``build/ros2_launch/install`` (its launch/, config/ and rviz/ are links
to the working tree; the Python core is the venv's), and ``ros2_launch_environment`` gives the
environment that puts all of them in front of the venv.

    tools/ros2_launch_overlay.py --sources DIR   (DIR holds launch/, launch_ros/, ros2cli/,
                                                  rosidl_runtime_py/ and rcl_interfaces/)

test/test_launch_real.py runs the launch file under it when it has been built.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "build" / "ros2_launch"
VENV = Path(sys.prefix)
PYTHON_PACKAGES = [
    "launch/launch", "launch/launch_xml", "launch/launch_yaml", "rosidl_runtime_py",
    "launch_ros/launch_ros", "launch_ros/ros2launch", "ros2cli/ros2cli", "ros2cli/ros2pkg",
    "ros2cli/ros2topic", "ros2cli/ros2node", "ros2cli/ros2run", "ros2cli/ros2interface",
    "ros2cli/ros2param", "ros2cli/ros2service", "ros2cli/ros2lifecycle", "ros2cli/ros2action",
]
PYPI_NEEDS = ["osrf-pycommon", "importlib-metadata", "lark"]


def site_dir(overlay: Path = OVERLAY) -> Path:
    """Return where the launch and CLI Python packages are installed (``pip --target``)."""
    return overlay / "site"


def prefix_dir(overlay: Path = OVERLAY) -> Path:
    """Return the CMake install prefix of ``composition_interfaces``."""
    return overlay / "prefix"


def ros2_launch_environment(base: dict, overlay: Path = OVERLAY) -> dict:
    """
    Return ``base`` with the overlay first on the search paths.

    PYTHONPATH, LD_LIBRARY_PATH, AMENT_PREFIX_PATH and PATH. The project's colcon install
    (launch file, config, rviz, node executable) comes first on AMENT_PREFIX_PATH, so
    ``ros2 launch finers_ros ...`` finds the package there.
    """
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix = prefix_dir(overlay)
    env = dict(base)

    def front(name: str, *paths) -> None:
        old = [part for part in env.get(name, "").split(os.pathsep) if part]
        env[name] = os.pathsep.join([str(p) for p in paths] + old)

    front("PYTHONPATH", site_dir(overlay), prefix / "lib" / python / "site-packages")
    front("LD_LIBRARY_PATH", prefix / "lib")
    front("AMENT_PREFIX_PATH", overlay / "install", prefix, VENV)
    front("PATH", site_dir(overlay) / "bin", VENV / "bin")
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)  # the venv's bootstrapper adds its libs
    return env


def built(overlay: Path = OVERLAY) -> bool:
    """Tell whether ``ros2`` and ``composition_interfaces`` are both there."""
    return ((site_dir(overlay) / "bin" / "ros2").exists()
            and (prefix_dir(overlay) / "share" / "composition_interfaces").is_dir()
            and (overlay / "install" / "lib" / "finers_ros" / "perception_node").exists())


def build_project(overlay: Path = OVERLAY) -> None:
    """
    colcon-build the project as a ROS 2 package, its files linked from the working tree.

    The links keep the launch file, parameters and RViz config current without a rebuild;
    the core stays the venv's pip install (FINERS_INSTALL_CORE=OFF).
    """
    stage = overlay / "src" / "finers_ros"
    stage.mkdir(parents=True, exist_ok=True)
    for name in ("CMakeLists.txt", "package.xml", "msg", "action", "launch", "config", "rviz",
                 "tools", "finers_ros"):
        link = stage / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / name)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RMW_IMPLEMENTATION", None)
    subprocess.run([
        str(VENV / "bin" / "colcon"), "--log-base", str(overlay / "log"), "build",
        "--base-paths", str(stage.parent), "--build-base", str(overlay / "colcon"),
        "--install-base", str(overlay / "install"), "--merge-install", "--symlink-install",
        "--cmake-args", f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}", "-DBUILD_TESTING=OFF",
        "-DFINERS_INSTALL_CORE=OFF"], check=True, env=env, cwd=overlay)


def build(sources: Path, overlay: Path = OVERLAY) -> None:
    """Install the Python packages, build ``composition_interfaces``, then the project."""
    missing = [p for p in PYTHON_PACKAGES + ["rcl_interfaces/composition_interfaces"]
               if not (sources / p).is_dir()]
    if missing:
        raise SystemExit(f"ros2_launch_overlay: not in {sources}: {', '.join(missing)}")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site_dir(overlay))]
    subprocess.run(pip + PYPI_NEEDS, check=True)
    subprocess.run(pip + ["--upgrade", "--no-deps", "--no-build-isolation"]
                   + [str(sources / p) for p in PYTHON_PACKAGES], check=True)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="composition-build-") as work:
        subprocess.run([
            "cmake", str(sources / "rcl_interfaces" / "composition_interfaces"),
            f"-DCMAKE_PREFIX_PATH={VENV}", f"-DCMAKE_INSTALL_PREFIX={prefix_dir(overlay)}",
            f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}", "-DBUILD_TESTING=OFF",
            f"-DPython3_INCLUDE_DIR={sysconfig.get_paths()['include']}"],
            check=True, cwd=work, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["make", "-j2"], check=True, cwd=work, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["make", "install"], check=True, cwd=work, env=env,
                       stdout=subprocess.DEVNULL)
    build_project(overlay)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=Path, required=True,
                        help="folder with launch/, launch_ros/, ros2cli/, rosidl_runtime_py/ "
                             "and rcl_interfaces/ checkouts")
    parser.add_argument("--overlay", type=Path, default=OVERLAY)
    options = parser.parse_args()
    build(options.sources.resolve(), options.overlay)
    print(f"ros2_launch_overlay: built under {options.overlay}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
