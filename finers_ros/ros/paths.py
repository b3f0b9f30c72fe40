"""Where the package's shared files (config/, rviz/, launch/) are, installed or in a checkout."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "finers_ros"


def share_dir() -> Path:
    """Return the ament share directory if colcon installed it with the core, else the checkout."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "config" / "perception.yaml").is_file():
        return checkout
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:
        return checkout


def default_params_file() -> Path:
    return share_dir() / "config" / "perception.yaml"


def default_pipeline_config() -> Path:
    return share_dir() / "config" / "pipeline.yaml"


def fastdds_profile() -> Path:
    return share_dir() / "config" / "fastdds_shm.xml"
