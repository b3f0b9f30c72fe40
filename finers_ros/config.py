"""
Pipeline configuration: one dataclass tree that is the Python API and the YAML schema.

Backends are chosen here, not in code. With no file, the defaults run the weight-free
bring-up backend; ``config/pipeline.yaml`` documents every key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union, get_args, get_origin, get_type_hints

import yaml

STAGE_BACKENDS = ("bringup", "qwen2_5_vl", "openai")
SEGMENTER_BACKENDS = ("bringup", "sam")
SAM_RUNTIMES = ("torch", "onnxruntime", "tensorrt")


# Nominal frames and crops larger than a 16K camera frame are typos (a 100000^2 LPR frame
# is 30 GB per request), not settings.
MAX_FRAME_SIDE = 16384


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and value."""


@dataclass
class ServerConfig:
    """
    An OpenAI-compatible model server (vLLM) for ``backend: openai``.

    The API key is read from the environment variable ``api_key_env`` names, never from YAML.
    """

    base_url: Optional[str] = None  # e.g. http://gpu-server:8000/v1
    model: Optional[str] = None  # the served model name (vLLM: --served-model-name or --model)
    api_key_env: Optional[str] = None  # name of an environment variable holding the key
    connect_timeout_s: float = 5.0
    timeout_s: float = 120.0  # one request, server generation included
    retries: int = 2  # extra attempts on connection errors and HTTP 5xx
    backoff_s: float = 0.5  # first retry delay, doubled each retry
    max_in_flight: int = 8  # requests this process sends at once; more wait
    check_prompt_tokens: bool = True  # usage.prompt_tokens must match the expected image tokens

    def validate(self, name: str) -> None:
        if not self.base_url or not str(self.base_url).startswith(("http://", "https://")):
            raise ConfigError(f"{name}.server.base_url={self.base_url!r}: "
                              "expected http(s)://host:port/v1")
        if not self.model:
            raise ConfigError(f"{name}.server.model is required (the served model name)")
        if (min(self.connect_timeout_s, self.timeout_s) <= 0 or self.retries < 0
                or self.max_in_flight < 1):
            raise ConfigError(f"{name}.server: timeouts must be > 0, retries >= 0, "
                              "max_in_flight >= 1")


@dataclass
class StageConfig:
    """One vision-language stage (GSE or LPR)."""

    backend: str = "bringup"
    checkpoint: Optional[str] = None  # local directory of a Qwen2.5-VL checkpoint
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "cpu"  # cpu | cuda | cuda:N
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    max_new_tokens: int = 1024  # the reference evaluation's limit
    do_sample: bool = False  # greedy by default
    system_prompt: str = "You are a helpful assistant."
    # Image resolution limits for the processor (pixels after Qwen's rounding to 28); the
    # published values: 1920x1080 -> 2691 visual tokens, 512x512 -> 324.
    min_pixels: int = 3136
    max_pixels: int = 12845056
    answer_only: bool = False  # skip the reasoning (<think> left empty): lower latency
    server: ServerConfig = field(default_factory=ServerConfig)  # backend: openai only

    def validate(self, name: str) -> None:
        if self.backend not in STAGE_BACKENDS:
            raise ConfigError(f"{name}.backend={self.backend!r}: expected one of {STAGE_BACKENDS}")
        if self.backend == "openai":
            self.server.validate(name)
        if self.backend == "qwen2_5_vl" and not self.checkpoint:
            raise ConfigError(
                f"{name}.backend=qwen2_5_vl needs {name}.checkpoint (a local directory)")
        if self.max_new_tokens <= 0:
            raise ConfigError(f"{name}.max_new_tokens={self.max_new_tokens}: must be positive")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(
                f"{name}.dtype={self.dtype!r}: expected auto, float32, bfloat16 or float16")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError(f"{name}.min_pixels={self.min_pixels}, "
                              f"{name}.max_pixels={self.max_pixels}: "
                              "expected 0 < min_pixels <= max_pixels")


@dataclass
class SegmenterConfig:
    backend: str = "bringup"
    runtime: str = "torch"  # torch | onnxruntime | tensorrt (the mask decoder's runtime)
    model_type: str = "vit_b"  # vit_b | vit_l | vit_h | tiny
    checkpoint: Optional[str] = None  # SAM weights (.pth read with weights_only, or .safetensors)
    decoder_onnx: Optional[str] = None  # exported prompt encoder + mask decoder
    device: str = "cpu"
    encoder_runtime: str = "torch"  # torch | onnxruntime | tensorrt (the image encoder's runtime)
    encoder_onnx: Optional[str] = None  # exported image encoder (fp32, or its int8 quantisation)
    ort_threads: int = 0  # ONNX Runtime intra-op threads; 0 = one per core
    ort_graph_optimization: str = "all"  # disable | basic | extended | all
    engine_cache: Optional[str] = None  # TensorRT engines built by finers-build-engines
    tensorrt_precision: str = "fp16"  # fp16 | fp32
    tensorrt_fallback: str = "onnxruntime"  # onnxruntime (CUDA, then CPU) | none

    def validate(self) -> None:
        if self.backend not in SEGMENTER_BACKENDS:
            raise ConfigError(
                f"segmenter.backend={self.backend!r}: expected one of {SEGMENTER_BACKENDS}")
        if self.runtime not in SAM_RUNTIMES:
            raise ConfigError(
                f"segmenter.runtime={self.runtime!r}: expected one of {SAM_RUNTIMES}")
        if self.backend == "sam" and not self.checkpoint:
            raise ConfigError("segmenter.backend=sam needs segmenter.checkpoint")
        if self.backend == "sam" and self.runtime != "torch" and not self.decoder_onnx:
            raise ConfigError(f"segmenter.runtime={self.runtime} needs segmenter.decoder_onnx")
        if self.encoder_runtime not in SAM_RUNTIMES:
            raise ConfigError(f"segmenter.encoder_runtime={self.encoder_runtime!r}: "
                              f"expected one of {SAM_RUNTIMES}")
        if self.backend == "sam" and self.encoder_runtime != "torch" and not self.encoder_onnx:
            raise ConfigError(f"segmenter.encoder_runtime={self.encoder_runtime} needs "
                              "segmenter.encoder_onnx")
        if self.ort_graph_optimization not in ("disable", "basic", "extended", "all"):
            raise ConfigError(f"segmenter.ort_graph_optimization={self.ort_graph_optimization!r}: "
                              "expected disable, basic, extended or all")
        if self.ort_threads < 0:
            raise ConfigError(f"segmenter.ort_threads={self.ort_threads}: must be >= 0")
        if self.tensorrt_precision not in ("fp16", "fp32"):
            raise ConfigError(f"segmenter.tensorrt_precision={self.tensorrt_precision!r}: "
                              "expected fp16 or fp32")
        if self.tensorrt_fallback not in ("onnxruntime", "none"):
            raise ConfigError(f"segmenter.tensorrt_fallback={self.tensorrt_fallback!r}: "
                              "expected onnxruntime or none")


@dataclass
class GeometryConfig:
    gse_size: Tuple[int, int] = (1920, 1080)  # nominal GSE frame (W, H)
    lpr_size: Tuple[int, int] = (512, 512)  # nominal LPR frame (W, H)
    crop_size: int = 512  # minimum native crop side

    def validate(self) -> None:
        for key in ("gse_size", "lpr_size"):
            value = getattr(self, key)
            if len(value) != 2 or min(value) <= 0 or max(value) > MAX_FRAME_SIDE:
                raise ConfigError(f"geometry.{key}={list(value)}: expected [width, height], "
                                  f"each in 1..{MAX_FRAME_SIDE}")
        if not 0 < self.crop_size <= MAX_FRAME_SIDE:
            raise ConfigError(f"geometry.crop_size={self.crop_size}: expected 1..{MAX_FRAME_SIDE}")


@dataclass
class PipelineConfig:
    gse: StageConfig = field(default_factory=StageConfig)
    lpr: StageConfig = field(default_factory=StageConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    max_instruction_chars: int = 2000

    def validate(self) -> "PipelineConfig":
        check_types(self)
        self.gse.validate("gse")
        self.lpr.validate("lpr")
        self.segmenter.validate()
        self.geometry.validate()
        if self.max_instruction_chars < 1:
            raise ConfigError(f"max_instruction_chars={self.max_instruction_chars}: "
                              "must be positive")
        return self

    @property
    def is_bringup(self) -> bool:
        return "bringup" in (self.gse.backend, self.lpr.backend, self.segmenter.backend)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_problem(value, hint) -> Optional[str]:
    """
    Describe what ``value`` lacks to be a ``hint`` (None when it fits).

    Numbers are not strings: ``"512"`` in YAML is a quoting mistake worth reporting, not a value to
    guess at.
    """
    if get_origin(hint) is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(get_args(hint)):
            return None
        return _type_problem(value, args[0]) if len(args) == 1 else None
    if hint is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expected an integer"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "expected a number"
    if hint is str:
        return None if isinstance(value, str) else "expected a string"
    if get_origin(hint) is tuple:
        args = get_args(hint)
        if (not isinstance(value, (tuple, list)) or len(value) != len(args)
                or any(_type_problem(v, a) for v, a in zip(value, args))):
            noun = {int: "integers", float: "numbers", str: "strings"}.get(args[0], "values")
            return f"expected a list of {len(args)} {noun}"
    return None


def check_types(config, where: str = "") -> None:
    """Raise ConfigError naming the first key whose value has the wrong type (nested)."""
    hints = get_type_hints(type(config))
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        key = f"{where}.{item.name}".lstrip(".")
        if dataclasses.is_dataclass(value):
            check_types(value, key)
            continue
        problem = _type_problem(value, hints[item.name])
        if problem:
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{key}={shown!r}: {problem}")


def _build(cls, data: Mapping[str, Any], where: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where or 'config'}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{where}.{name}".lstrip("."))
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)  # YAML has lists; check_types says if it is not a pair
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> PipelineConfig:
    return _build(PipelineConfig, data or {}, "").validate()


def load_config(path: str | Path | None) -> PipelineConfig:
    """Defaults when ``path`` is None; otherwise the YAML file over the defaults."""
    if path is None:
        return PipelineConfig().validate()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {path}: {exc}") from exc
    config = config_from_dict(data)
    base = path.parent
    for stage in (config.gse, config.lpr):
        stage.checkpoint = _relative_to(base, stage.checkpoint)
    config.segmenter.checkpoint = _relative_to(base, config.segmenter.checkpoint)
    config.segmenter.decoder_onnx = _relative_to(base, config.segmenter.decoder_onnx)
    config.segmenter.encoder_onnx = _relative_to(base, config.segmenter.encoder_onnx)
    config.segmenter.engine_cache = _relative_to(base, config.segmenter.engine_cache)
    return config


def _relative_to(base: Path, value: Optional[str]) -> Optional[str]:
    """Paths in a config file are relative to that file."""
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())
