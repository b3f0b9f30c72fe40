"""Node parameters: declared with the defaults of config/perception.yaml, validated at startup."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from ..config import ConfigError, load_config
from ..serving import FRAME_POLICIES
from .paths import default_params_file, default_pipeline_config


class ParameterError(ValueError):
    """Invalid node parameters: the node refuses to start."""


@dataclass
class NodeSettings:
    pipeline_config: str
    pipeline_factory: str
    camera_topic: str
    compressed_topic: str
    command_topic: str
    detections_topic: str
    mask_topic: str
    overlay_topic: str
    status_topic: str
    action_name: str
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

    def validate(self) -> "NodeSettings":
        problems = []
        if self.frame_reliability not in ("best_effort", "reliable"):
            problems.append(f"frame_reliability={self.frame_reliability!r} (best_effort | reliable)")
        if self.frame_policy not in FRAME_POLICIES:
            problems.append(f"frame_policy={self.frame_policy!r} ({' | '.join(FRAME_POLICIES)})")
        for name in ("frame_depth", "queue_limit", "max_instruction_chars", "overlay_max_width"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (must be >= 1)")
        for name in ("frame_wait_s", "request_timeout_s", "status_period_s", "no_frames_warning_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} (must be > 0)")
        for name in ("camera_topic", "command_topic", "detections_topic", "mask_topic", "overlay_topic",
                     "status_topic", "action_name"):
            if not getattr(self, name):
                problems.append(f"{name} is empty")
        if self.pipeline_factory and ":" not in self.pipeline_factory:
            problems.append(f"pipeline_factory={self.pipeline_factory!r} (expected 'module:function')")
        if not self.pipeline_factory:
            try:
                load_config(self.pipeline_config_path)
            except ConfigError as exc:
                problems.append(f"pipeline_config: {exc}")
        if problems:
            raise ParameterError("invalid parameters: " + "; ".join(problems))
        return self

    @property
    def pipeline_config_path(self) -> Path:
        return Path(self.pipeline_config) if self.pipeline_config else default_pipeline_config()


def parameter_defaults(path: Path | None = None) -> dict:
    """The ``ros__parameters`` of the shipped parameters file."""
    data = yaml.safe_load((path or default_params_file()).read_text())
    values = data["/**"]["ros__parameters"]
    missing = {f.name for f in fields(NodeSettings)} - set(values)
    if missing:
        raise ParameterError(f"{path or default_params_file()} lacks {sorted(missing)}")
    return values


def declare_and_read(node) -> NodeSettings:
    """Declare every parameter on ``node`` (defaults from the file) and return validated settings."""
    defaults = parameter_defaults()
    values = {}
    for name, default in defaults.items():
        try:
            values[name] = node.declare_parameter(name, default).value
        except Exception as exc:  # wrong type in a params file, for example
            raise ParameterError(f"parameter {name}: {exc}") from exc
    for f in fields(NodeSettings):
        expected = type(defaults[f.name])
        if expected is float and isinstance(values[f.name], int):
            values[f.name] = float(values[f.name])
        if not isinstance(values[f.name], expected):
            raise ParameterError(f"parameter {f.name}={values[f.name]!r}: expected {expected.__name__}")
    return NodeSettings(**{f.name: values[f.name] for f in fields(NodeSettings)}).validate()
