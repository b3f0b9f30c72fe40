"""
``TrainConfig``: one dataclass that is the Python API and the YAML schema of a run.

Defaults are the reference recipe (section 5): 8 rollouts at temperature 1.0, KL 5e-3 (k3),
clip 0.2, entropy bonus 1e-3, lr 1e-6 constant from the first step (no warm-up, so no
lr-0 first update), AdamW, grad clip 1.0, bf16 on GPU. Paths in a YAML file are relative
to that file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from finers_ros.config import ConfigError, StageConfig, check_types

STAGES = ("lpr", "gse")
# Response tokens the reference allows per stage (max_response_length of its recipes).
REFERENCE_COMPLETION_TOKENS = {"lpr": 820, "gse": 3155}
GSE_REWARDS = ("offline", "online")
EVAL_METRICS = ("gIoU", "cIoU", "region_recall", "MVQA", "OVQA")
VLLM_MODES = ("colocate", "server")
LEARNING_RATE = 1e-6  # full fine-tuning (reference)
LORA_LEARNING_RATE = 1e-5  # LoRA: 10x the full fine-tuning rate (README, "LoRA")
_PATH_KEYS = (
    "base_model",
    "annotations",
    "images_dir",
    "output_dir",
    "online_lpr_checkpoint",
    "search_checkpoint",
    "eval_annotations",
    "eval_images_dir",
    "eval_pipeline",
)


def launched_processes() -> int:
    """
    Return the processes of this run: ``WORLD_SIZE`` under ``accelerate launch``, else 1.

    TRL generates ``per_device_train_batch_size x processes x gradient_accumulation_steps``
    completions per step, which must hold whole groups of ``num_generations``.
    """
    import os

    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


class TrainConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and value."""


@dataclass
class TrainConfig:
    """A GRPO run of one stage (or the retrospective search)."""

    stage: str = "lpr"  # lpr | gse
    base_model: str = ""  # local Qwen2.5-VL checkpoint directory to start from
    annotations: str = ""  # FineRS-4k JSON (for gse: with best_region, from finers-train search)
    images_dir: Optional[str] = None  # default: the JSON's folder
    output_dir: str = "runs/train"  # checkpoints, logs, the final model (node-loadable)
    max_samples: Optional[int] = None
    data_seed: int = 0  # LPR crop placement and GT point jitter
    crop_size: int = 512
    lpr_size: Tuple[int, int] = (512, 512)
    gse_size: Tuple[int, int] = (1920, 1080)
    system_prompt: str = StageConfig().system_prompt  # the node's default
    # GRPO (TRL GRPOConfig)
    num_generations: int = 8
    temperature: float = 1.0
    beta: float = 5e-3  # KL (k3) to the frozen start model
    epsilon: float = 0.2  # PPO clip
    entropy_coef: float = 1e-3
    loss_type: str = "grpo"  # per-sequence mean, as the reference
    learning_rate: Optional[float] = None  # None: 1e-6, or 1e-5 with lora
    weight_decay: float = 1e-2  # AdamW, as the reference
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = 8  # completions per device per micro-step
    gradient_accumulation_steps: int = 2
    max_steps: int = 280
    max_completion_length: Optional[int] = None  # None: the reference's, 820 LPR / 3155 GSE
    save_steps: int = 50
    save_total_limit: Optional[int] = 2
    bf16: str = "auto"  # auto (on CUDA) | true | false (a YAML boolean reads as the word)
    seed: int = 42
    gradient_checkpointing: bool = False
    resume: bool = True  # continue from the newest checkpoint-N in output_dir
    # rewards
    reward_weights: Dict[str, float] = field(default_factory=dict)  # term name -> weight (1)
    reference_rewards: bool = False  # the reference's text matching (see rewards.py)
    gse_reward: str = "offline"  # offline (best_region terms) | online (frozen LPR IoU)
    online_lpr_checkpoint: Optional[str] = None
    online_lpr_max_new_tokens: Optional[int] = None  # None: what the LPR was trained to write
    # LoRA through peft (merged into the saved model so the node loads it unchanged)
    lora: bool = False
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_target_modules: List[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    # what a person watches (monitor.py) and the evaluation on the val split (evaluation.py)
    report_to: List[str] = field(default_factory=lambda: ["tensorboard"])  # [] for none
    log_completions: int = 4  # decoded completions per logged step (TensorBoard text)
    eval_annotations: Optional[str] = None  # the val split (finers-dataset split)
    eval_images_dir: Optional[str] = None  # default: that JSON's folder
    eval_steps: int = 50
    eval_metric: str = "gIoU"  # gIoU | cIoU | region_recall | MVQA | OVQA: picks best/
    eval_max_samples: Optional[int] = None
    eval_pipeline: Optional[str] = None  # pipeline YAML of the other stages (default bring-up)
    # rollouts generated by vLLM (TRL use_vllm; needs CUDA GPUs and the vllm package)
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # colocate (inside each training process) | server
    vllm_server_host: str = "127.0.0.1"  # server: where `trl vllm-serve` listens
    vllm_server_port: int = 8000
    vllm_gpu_memory_utilization: float = 0.3  # colocate: share of each GPU for vLLM
    vllm_tensor_parallel_size: int = 1  # colocate
    # retrospective search (finers-train search)
    search_checkpoint: Optional[str] = None  # the trained LPR
    search_batch_size: int = 2  # samples per generate call (x 5 windows)
    search_max_new_tokens: Optional[int] = None  # None: what the LPR was trained to write
    device: str = "auto"  # auto | cpu | cuda (search and the online reward's frozen LPR)

    def __post_init__(self) -> None:
        if isinstance(self.bf16, bool):  # YAML `bf16: true` is a boolean, not the word
            self.bf16 = "true" if self.bf16 else "false"
        if self.learning_rate is None:
            self.learning_rate = LORA_LEARNING_RATE if self.lora is True else LEARNING_RATE
        if self.max_completion_length is None:
            self.max_completion_length = REFERENCE_COMPLETION_TOKENS.get(self.stage, 820)
        # YAML has lists; a non-list stays as written for validate() to name
        if isinstance(self.lpr_size, list):
            self.lpr_size = tuple(self.lpr_size)
        if isinstance(self.gse_size, list):
            self.gse_size = tuple(self.gse_size)

    def validate(self) -> "TrainConfig":
        self._check_types()
        if self.stage not in STAGES:
            raise TrainConfigError(f"stage={self.stage!r}: expected one of {STAGES}")
        if self.gse_reward not in GSE_REWARDS:
            raise TrainConfigError(
                f"gse_reward={self.gse_reward!r}: expected one of {GSE_REWARDS}"
            )
        if self.stage == "gse" and self.gse_reward == "online" and not self.online_lpr_checkpoint:
            raise TrainConfigError("gse_reward=online needs online_lpr_checkpoint (a trained LPR)")
        if self.num_generations < 2:
            raise TrainConfigError(
                f"num_generations={self.num_generations}: GRPO needs at least 2"
            )
        processes = launched_processes()
        per_step = self.per_device_train_batch_size * self.gradient_accumulation_steps * processes
        if per_step % self.num_generations:
            raise TrainConfigError(
                f"per_device_train_batch_size x gradient_accumulation_steps x {processes} "
                f"process(es) = {per_step} must be a multiple of "
                f"num_generations={self.num_generations}"
            )
        if str(self.bf16).lower() not in ("auto", "true", "false"):
            raise TrainConfigError(f"bf16={self.bf16!r}: expected auto, true or false")
        from .rewards import term_names

        known = term_names(self.stage) + (["gse_retro_online"] if self.stage == "gse" else [])
        unknown = sorted(set(self.reward_weights) - set(known))
        if unknown:
            raise TrainConfigError(
                f"reward_weights names unknown term(s) {unknown}; {self.stage} terms: {known}"
            )
        for key in (
            "learning_rate",
            "max_steps",
            "max_completion_length",
            "crop_size",
            "temperature",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "save_steps",
            "search_batch_size",
        ):
            if getattr(self, key) <= 0:
                raise TrainConfigError(f"{key}={getattr(self, key)}: must be positive")
        for key in ("beta", "epsilon", "entropy_coef", "max_grad_norm", "weight_decay"):
            if getattr(self, key) < 0:
                raise TrainConfigError(f"{key}={getattr(self, key)}: must be >= 0")
        for key in ("max_samples", "online_lpr_max_new_tokens", "search_max_new_tokens"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise TrainConfigError(f"{key}={getattr(self, key)}: must be positive")
        self._check_monitoring()
        return self

    def _check_monitoring(self) -> None:
        """Check the logging, evaluation and vLLM keys."""
        if self.eval_metric not in EVAL_METRICS:
            raise TrainConfigError(
                f"eval_metric={self.eval_metric!r}: expected one of {EVAL_METRICS}")
        if self.vllm_mode not in VLLM_MODES:
            raise TrainConfigError(f"vllm_mode={self.vllm_mode!r}: expected one of {VLLM_MODES}")
        if self.eval_steps <= 0 or self.log_completions < 0:
            raise TrainConfigError(
                f"eval_steps={self.eval_steps}, log_completions={self.log_completions}: "
                "eval_steps must be positive, log_completions >= 0")
        if self.eval_max_samples is not None and self.eval_max_samples <= 0:
            raise TrainConfigError(f"eval_max_samples={self.eval_max_samples}: must be positive")

    def _check_types(self) -> None:
        """Every key's YAML type (the core's check), then the mapping and list keys it skips."""
        try:
            check_types(self)
        except ConfigError as exc:
            raise TrainConfigError(str(exc)) from exc
        weights = self.reward_weights
        if not isinstance(weights, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in weights.values()
        ):
            raise TrainConfigError(
                f"reward_weights={weights!r}: expected a mapping of term name -> finite number"
            )
        modules = self.lora_target_modules
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise TrainConfigError(
                f"lora_target_modules={modules!r}: expected a list of module names"
            )

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["lpr_size"], data["gse_size"] = list(self.lpr_size), list(self.gse_size)
        return data


RUN_CONFIG = "finers_train.yaml"


def write_run_config(config: TrainConfig, folder: Path) -> Path:
    """
    Write the config that trained a checkpoint next to it (``folder/finers_train.yaml``).

    What a later run reads from the checkpoint, e.g. the LPR's token budget for the search.
    """
    path = Path(folder) / RUN_CONFIG
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


def check_report_to(config: TrainConfig) -> None:
    """
    Refuse a ``report_to`` target transformers does not know or cannot load here.

    Found at the start rather than when the Trainer is built, after the data set.
    """
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK, get_available_reporting_integrations)

    targets = config.report_to
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise TrainConfigError(f"report_to={config.report_to!r}: expected a list of names")
    available = get_available_reporting_integrations()
    for target in targets:
        if target in ("none", ""):
            continue
        if target not in INTEGRATION_TO_CALLBACK:
            raise TrainConfigError(
                f"report_to: unknown target {target!r}; known: {sorted(INTEGRATION_TO_CALLBACK)}")
        if target not in available:
            hint = " (pip install wandb)" if target == "wandb" else ""
            raise TrainConfigError(
                f"report_to: {target} is not installed here: install its package{hint} or "
                "leave it out of report_to")


def check_inputs(config: TrainConfig, command: str) -> None:
    """
    Check that the files a ``command`` (lpr | gse | search) reads exist.

    Done before any data is built or model loaded (a wrong path found after an hour of
    training costs the hour).
    """

    def checkpoint(key: str) -> None:
        value = getattr(config, key)
        if not value or not (Path(value) / "config.json").is_file():
            raise TrainConfigError(
                f"{key}={value!r}: not a checkpoint directory (no config.json)"
            )

    if not config.annotations or not Path(config.annotations).is_file():
        raise TrainConfigError(f"annotations={config.annotations!r}: no such file")
    if config.images_dir and not Path(config.images_dir).is_dir():
        raise TrainConfigError(f"images_dir={config.images_dir!r}: no such directory")
    for key in ("eval_annotations", "eval_pipeline"):
        if getattr(config, key) and not Path(getattr(config, key)).is_file():
            raise TrainConfigError(f"{key}={getattr(config, key)!r}: no such file")
    if config.eval_images_dir and not Path(config.eval_images_dir).is_dir():
        raise TrainConfigError(f"eval_images_dir={config.eval_images_dir!r}: no such directory")
    if command == "search":
        checkpoint("search_checkpoint")
        return
    check_report_to(config)
    checkpoint("base_model")
    if config.stage == "gse" and config.gse_reward == "online":
        checkpoint("online_lpr_checkpoint")


def config_from_dict(data: Mapping[str, Any] | None, base: Path | None = None) -> TrainConfig:
    """Build a validated config from a mapping; relative paths resolve against ``base``."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainConfigError(f"unknown key(s) {unknown}; known: {sorted(known)}")
    if base is not None:
        for key in _PATH_KEYS:
            if data.get(key):
                path = Path(str(data[key])).expanduser()
                data[key] = str(path if path.is_absolute() else (base / path).resolve())
    try:
        return TrainConfig(**data).validate()
    except TypeError as exc:
        raise TrainConfigError(str(exc)) from exc


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Load the YAML file over the defaults, then ``overrides`` (keys of TrainConfig, not None)."""
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"invalid YAML in {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainConfigError(f"{path}: expected a mapping of TrainConfig keys")
    command_stage = overrides.get("stage")
    if command_stage is not None and data.get("stage", command_stage) != command_stage:
        raise TrainConfigError(
            f"{path}: stage: {data['stage']} but the command trains {command_stage}: fix or "
            "remove the config's stage (the command names it)")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(data, path.parent)
