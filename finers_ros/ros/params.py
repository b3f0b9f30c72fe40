"""
Node parameters: declared with descriptors and the defaults of config/perception.yaml.

Three kinds, by when a change can take effect:

- ``live``: applied at once through the node's on-set-parameters callback, which validates
  the value and refuses a bad one with a reason (``ros2 param set`` prints it);
- ``configure``: read on the next configure transition; a set while the node is configured
  is refused ("cleanup first"), so a cleanup -> set -> configure cycle picks it up;
- ``startup``: read-only after start (descriptor ``read_only``).

Topic names are not parameters: they are fixed relative names, resolved in the node's
namespace and changed by remapping, as in any ROS node.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

import yaml

from ..config import ConfigError, load_config
from ..depth3d import CAMERA_IMAGE_SETTINGS
from ..serving import FRAME_POLICIES
from ..tracking.config import TRACKER_BACKENDS
from ..tracking.service import REACQUIRE_MODES
from .frame_intake import INTAKE_MODES, TRANSPORTS
from .paths import default_params_file, default_pipeline_config


class ParameterError(ValueError):
    """Invalid node parameters: the node refuses to start (or the set is refused)."""


class Spec(NamedTuple):
    """How one parameter is declared: when a change takes effect, its range, its meaning."""

    when: str  # live | configure | startup
    description: str
    limits: Optional[Tuple[float, float]] = None


SPECS: Dict[str, Spec] = {
    "pipeline_config": Spec("configure", "core pipeline YAML; empty = config/pipeline.yaml "
                                         "(bring-up backend)"),
    "pipeline_factory": Spec("configure", "'module:function' returning a pipeline-like object "
                                          "(custom backends); overrides pipeline_config"),
    "allow_degraded": Spec("configure", "stay up when the model cannot load (status reports "
                                        "why, every instruction gets that error); otherwise "
                                        "configure fails. Always on with autostart"),
    "image_transport": Spec("configure", "the camera input: raw (sensor_msgs/Image on "
                                         "camera/image_raw) | compressed (CompressedImage on "
                                         "the raw topic + /compressed)"),
    "frame_intake": Spec("configure", "on_demand: frames are taken from the middleware only "
                                      "while an instruction or track needs them (idle: the "
                                      "newest waits there, undecoded) | every_frame"),
    "subscribe_compressed": Spec("configure", "deprecated, use image_transport: true with "
                                              "image_transport raw takes both transports"),
    "frame_reliability": Spec("configure", "QoS reliability of the frame subscription: "
                                           "best_effort (sensor data) | reliable"),
    "frame_depth": Spec("configure", "QoS depth of the frame subscription", (1, 100)),
    "frame_policy": Spec("live", "after_request: the newest frame at/after the instruction | "
                                 "latest: the newest frame at all"),
    "frame_wait_s": Spec("live", "how long an instruction waits for its frame (s)",
                         (0.01, 3600.0)),
    "request_timeout_s": Spec("live", "a pipeline run longer than this is abandoned with a "
                                      "timeout error (s)", (0.1, 86400.0)),
    "queue_limit": Spec("live", "instructions waiting beyond this are refused", (1, 10000)),
    "max_instruction_chars": Spec("live", "longer instructions are refused", (1, 1000000)),
    "publish_mask": Spec("live", "publish the full-resolution mono8 mask"),
    "publish_overlay": Spec("live", "publish the annotated overlay image"),
    "overlay_max_width": Spec("live", "overlay images are scaled down to this width (px)",
                              (16, 16384)),
    "status_period_s": Spec("configure", "period of finers/status and /diagnostics (s)",
                            (0.05, 3600.0)),
    "no_frames_warning_s": Spec("live", "warn when frames do not arrive for this long (s)",
                                (0.1, 3600.0)),
    "autostart": Spec("startup", "configure + activate without a lifecycle manager"),
    "record_dir": Spec("configure", "record each answered instruction (its frame, the "
                                    "instruction, the Detection) as rosbag2 MCAP here; "
                                    "empty = off"),
    "record_max_bag_mb": Spec("configure", "a bag is finished and a new one started "
                                           "before it passes this size (MiB)", (1, 1048576)),
    "record_min_free_mb": Spec("configure", "recording stops with a warning when the "
                                            "disk would keep less free (MiB)", (0, 1048576)),
    "record_queue_limit": Spec("configure", "episodes waiting for the bag writer; more are "
                                            "dropped and counted, never waited for", (1, 1000)),
    "depth_enabled": Spec("configure", "3D positions from camera/aligned_depth/image_raw and "
                                       "camera/camera_info (README, 3D position)"),
    "depth_slop_s": Spec("configure", "a colour frame pairs with the depth frame nearest to "
                                      "its stamp within this (s)", (0.001, 10.0)),
    "depth_max_range_m": Spec("configure", "depths beyond this are invalid (m)", (0.1, 1000.0)),
    "depth_camera_model": Spec("configure", "which image the colour topic carries: raw "
                                            "(back-projected with CameraInfo K, D) | "
                                            "rectified (with P) | auto (rectified when the "
                                            "topic's last name part has the word rect)"),
    "publish_target_points": Spec("configure", "with depth: also publish the target's 3D "
                                               "points as sensor_msgs/PointCloud2 on "
                                               "finers/target_points"),
    "publish_vision_msgs": Spec("configure", "also publish answers and tracked frames as "
                                             "vision_msgs Detection2DArray (and, with depth, "
                                             "Detection3DArray) on finers/detections_2d, "
                                             "_3d, finers/tracks_2d, _3d; needs vision_msgs "
                                             "(docs/ros_interface.md)"),
    "target_frame": Spec("configure", "with depth: also give the 3D answer in this tf2 frame, "
                                      "looked up at the colour frame's stamp, on "
                                      "finers/in_target_frame/...; empty = off; needs tf2_ros"),
    "target_frame_timeout_s": Spec("configure", "how long a target_frame lookup waits for "
                                                "the transform at the frame's stamp (s)",
                                   (0.0, 10.0)),
    "tracker_backend": Spec("configure", "tracker for instructions sent with \"track\": true: "
                                         "template (CPU, frame rate) | sam2 (GPU)"),
    "track_max_tracks": Spec("configure", "tracks running at once; more are refused",
                             (1, 64)),
    "track_max_age_s": Spec("configure", "a track ends this long after it started (s); "
                                         "0 = never", (0.0, 86400.0)),
    "track_reacquire": Spec("configure", "after a loss: search (the tracker keeps searching) "
                                         "| cascade (the instruction is asked again on the "
                                         "newest frame, same track id) | off (the track ends)"),
    "track_ring_frames": Spec("configure", "frames kept for a new track to catch up from its "
                                           "answered frame to the newest", (1, 1000)),
    "track_ring_mb": Spec("configure", "the catch-up frames' memory bound (MiB)",
                          (1, 65536)),
    "track_stall_s": Spec("configure", "no frame for this long while tracking: each track "
                                       "is told the camera stopped (s; above the camera's "
                                       "frame period)", (0.1, 3600.0)),
    "track_overlay_hz": Spec("live", "tracked frames drawn on finers/tracks/overlay per "
                                     "second at most, only while subscribed (0 = none)",
                             (0.0, 60.0)),
    "track_sam2_checkpoint": Spec("configure", "tracker_backend sam2: local SAM2/SAM2.1 .pt "
                                               "(empty: random weights, tests only)"),
    "track_sam2_model_config": Spec("configure", "tracker_backend sam2: the sam2 package's "
                                                 "model config name"),
    "track_sam2_device": Spec("configure", "tracker_backend sam2: torch device (cuda, cuda:1)"),
    "track_sam2_crop_px": Spec("configure", "tracker_backend sam2: native crop side that "
                                            "follows the target (px)", (128, 2048)),
    "track_sam2_memory_frames": Spec("configure", "tracker_backend sam2: recent frames in "
                                                  "SAM2's memory bank", (1, 64)),
}


@dataclass
class NodeSettings:
    """The node's parameters as one validated value (see SPECS for their meaning)."""

    pipeline_config: str
    pipeline_factory: str
    allow_degraded: bool
    image_transport: str
    frame_intake: str
    subscribe_compressed: bool
    frame_reliability: str
    frame_depth: int
    frame_policy: str
    frame_wait_s: float
    request_timeout_s: float
    queue_limit: int
    max_instruction_chars: int
    publish_mask: bool
    publish_overlay: bool
    overlay_max_width: int
    status_period_s: float
    no_frames_warning_s: float
    autostart: bool
    record_dir: str
    record_max_bag_mb: int
    record_min_free_mb: int
    record_queue_limit: int
    depth_enabled: bool
    depth_slop_s: float
    depth_max_range_m: float
    depth_camera_model: str
    publish_target_points: bool
    publish_vision_msgs: bool
    target_frame: str
    target_frame_timeout_s: float
    tracker_backend: str
    track_max_tracks: int
    track_max_age_s: float
    track_reacquire: str
    track_ring_frames: int
    track_ring_mb: float
    track_stall_s: float
    track_overlay_hz: float
    track_sam2_checkpoint: str
    track_sam2_model_config: str
    track_sam2_device: str
    track_sam2_crop_px: int
    track_sam2_memory_frames: int

    def validate(self) -> "NodeSettings":
        """Return self, or raise ParameterError naming every bad value."""
        problems = []
        if self.frame_reliability not in ("best_effort", "reliable"):
            problems.append(f"frame_reliability={self.frame_reliability!r} "
                            f"(best_effort | reliable)")
        for name, choices in (("image_transport", TRANSPORTS), ("frame_intake", INTAKE_MODES)):
            if getattr(self, name) not in choices:
                problems.append(f"{name}={getattr(self, name)!r} ({' | '.join(choices)})")
        if self.frame_policy not in FRAME_POLICIES:
            problems.append(f"frame_policy={self.frame_policy!r} ({' | '.join(FRAME_POLICIES)})")
        for name, rule in SPECS.items():
            value = getattr(self, name)
            if rule.limits and not rule.limits[0] <= value <= rule.limits[1]:
                problems.append(f"{name}={value} (must be in {rule.limits[0]:g}.."
                                f"{rule.limits[1]:g})")
        if self.depth_camera_model not in CAMERA_IMAGE_SETTINGS:
            problems.append(f"depth_camera_model={self.depth_camera_model!r} "
                            f"({' | '.join(CAMERA_IMAGE_SETTINGS)})")
        if self.tracker_backend not in TRACKER_BACKENDS:
            problems.append(f"tracker_backend={self.tracker_backend!r} "
                            f"({' | '.join(TRACKER_BACKENDS)})")
        if self.track_reacquire not in REACQUIRE_MODES:
            problems.append(f"track_reacquire={self.track_reacquire!r} "
                            f"({' | '.join(REACQUIRE_MODES)})")
        if self.pipeline_factory and ":" not in self.pipeline_factory:
            problems.append(f"pipeline_factory={self.pipeline_factory!r} "
                            f"(expected 'module:function')")
        if not self.pipeline_factory:
            try:
                load_config(self.pipeline_config_path)
            except ConfigError as exc:
                problems.append(f"pipeline_config: {exc}")
        if problems:
            raise ParameterError("invalid parameters: " + "; ".join(problems))
        return self

    @property
    def degraded_ok(self) -> bool:
        """Stay up without a model: asked for, or autostart (no manager would see a FAILURE)."""
        return self.allow_degraded or self.autostart

    @property
    def pipeline_config_path(self) -> Path:
        """Return the pipeline YAML to load (the shipped bring-up config when empty)."""
        return Path(self.pipeline_config) if self.pipeline_config else default_pipeline_config()


SETTING_NAMES = frozenset(f.name for f in fields(NodeSettings))


def parameter_defaults(path: Path | None = None) -> dict:
    """Load the ``ros__parameters`` of the shipped parameters file."""
    data = yaml.safe_load((path or default_params_file()).read_text())
    values = data["/**"]["ros__parameters"]
    missing = {f.name for f in fields(NodeSettings)} - set(values)
    if missing:
        raise ParameterError(f"{path or default_params_file()} lacks {sorted(missing)}")
    return values


def spec(name: str) -> Spec:
    """How parameter ``name`` is declared (one not in SPECS is read on configure)."""
    return SPECS.get(name, Spec("configure", name.replace("_", " ")))


def descriptor(name: str):
    """Build the ParameterDescriptor of parameter ``name`` (description, range, read_only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    declared = spec(name)
    when = {"live": "changes apply at once",
            "configure": "read on configure: set it while unconfigured",
            "startup": "read at start only"}[declared.when]
    result = ParameterDescriptor(name=name, description=f"{declared.description} ({when})",
                                 read_only=declared.when == "startup")
    low, high = declared.limits or (None, None)
    if isinstance(low, int):
        result.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    elif low is not None:
        result.floating_point_range = [FloatingPointRange(from_value=low, to_value=high,
                                                          step=0.0)]
    return result


def whole_numbers_as_floats(parameters, float_names) -> list:
    """
    ``parameters`` (rclpy Parameters) with each integer given to a float parameter as a float.

    ``track_stall_s: 5`` means 5.0; rclpy's static typing would refuse it as INTEGER. Only
    integers change: a float for an integer parameter, a bool or a string for a number stay
    as given, for rclpy to refuse with its reason.
    """
    from rclpy.parameter import Parameter

    return [Parameter(parameter.name, Parameter.Type.DOUBLE, float(parameter.value))
            if parameter.name in float_names and parameter.type_ == Parameter.Type.INTEGER
            else parameter for parameter in parameters]


def declare(node) -> NodeSettings:
    """
    Declare every parameter on ``node`` (defaults from the file); validated settings.

    A whole number for a float parameter counts as that float, at start (from ``-p`` or a
    params file) and in a later set. Raises ParameterError naming every bad value (wrong
    type, out of range, unknown choice).
    """
    defaults = parameter_defaults()
    float_names = frozenset(name for name, value in defaults.items() if isinstance(value, float))
    overrides = node._parameter_overrides  # rclpy's only record of --params-file and -p values
    overrides.update({parameter.name: parameter
                      for parameter in whole_numbers_as_floats(overrides.values(), float_names)})
    node.add_pre_set_parameters_callback(
        lambda parameters: whole_numbers_as_floats(parameters, float_names))
    problems = []
    for name, default in defaults.items():
        try:
            node.declare_parameter(name, default, descriptor(name))
        except Exception as exc:  # wrong type or out of range in a params file
            why = str(exc).split("Reason: ", 1)[-1].removesuffix(f": {name}")
            problems.append(f"{name}: {why}")
            node.declare_parameter(name, default, descriptor(name), ignore_override=True)
    try:
        settings = read(node)
    except ParameterError as exc:
        problems.append(str(exc).removeprefix("invalid parameters: "))
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))
    warn_unknown(node)
    return settings


def closest_name(name: str, known) -> str:
    """Return the known parameter name nearest to a misspelt ``name`` ("" when none is close)."""
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else ""


def unknown_parameter_warning(name: str, known) -> str:
    """Return one line on a parameter the node does not have, naming the closest it has."""
    nearest = closest_name(name, known)
    hint = f"; did you mean {nearest!r}?" if nearest else ""
    return (f"parameter {name!r} (from a params file or -p) is not a parameter of this node "
            f"and is ignored{hint}")


def warn_unknown(node) -> None:
    """
    Warn once per parameter override the node never declared (a typo in a params file).

    rclpy keeps the overrides of ``--params-file`` and ``-p`` for this node in
    ``_parameter_overrides`` and drops undeclared ones without a word.
    """
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    known = node.list_parameters([], 0).names  # every declared name, at any depth
    for name in sorted(overrides):
        if not node.has_parameter(name):
            node.get_logger().warning(unknown_parameter_warning(name, known))


def read(node) -> NodeSettings:
    """Read the node's current parameter values as validated settings."""
    values = {f.name: node.get_parameter(f.name).value for f in fields(NodeSettings)}
    return NodeSettings(**values).validate()


def changed(settings: NodeSettings, values: dict, configured: bool) -> NodeSettings:
    """Return ``settings`` with ``values`` applied, or raise ParameterError saying why not now."""
    problems = []
    for name in values:
        when = spec(name).when
        if configured and when == "configure":
            problems.append(f"{name} is read on configure: deactivate and cleanup first, then "
                            f"set it and configure again")
        elif when == "startup":
            problems.append(f"{name} is read at start only")
    if problems:
        raise ParameterError("; ".join(problems))
    return replace(settings, **values).validate()
