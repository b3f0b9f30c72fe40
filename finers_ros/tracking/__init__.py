"""Following a found target from frame to frame after the cascade's answer (ROS-free)."""
from .base import Tracker, TrackerError, TrackState, TrackUpdate
from .config import TrackerConfig, TrackerConfigError
from .frames import FrameView
from .registry import build_tracker

__all__ = ["FrameView", "TrackState", "TrackUpdate", "Tracker", "TrackerConfig",
           "TrackerConfigError", "TrackerError", "build_tracker"]
