"""
One GRPO stage (LPR or GSE) with TRL's GRPOTrainer, saved where the node can load it.

``output_dir`` ends up holding the trained model and its processor (the directory a
pipeline config's ``checkpoint`` points at), ``checkpoint-N/`` folders to resume from,
``finers_train.yaml`` (the config that produced it), ``finers_train_hashes.json`` (data
and config hashes), ``data/`` (the built set) and ``log.jsonl`` (every logged step, with
the per-term reward means ``rewards/<term>/mean``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

from .config import TrainConfig, TrainConfigError, check_inputs, write_run_config
from .data import (
    ROWS,
    DataOptions,
    build_set,
    files_hash,
    load_dataset,
    read_rows,
    set_hash,
)
from .evaluation import check_apart, eval_callback, save_policy
from .monitor import report_targets, tensorboard_callbacks
from .rewards import make_reward_terms

OFFLINE_ONLY_TERMS = ("gse_region_l1", "gse_region_iou")  # need best_region


def use_bf16(config: TrainConfig) -> bool:
    import torch

    flag = str(config.bf16).lower()
    return torch.cuda.is_available() if flag == "auto" else flag == "true"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_backend() -> Optional[str]:
    """
    ``gloo`` for a multi-process run without CUDA (DeepSpeed on CPUs), else None.

    accelerate only counts processes when it knows the backend; on a CPU-only machine it
    leaves it unset and each rank would believe it runs alone (gathers then fail).
    """
    import os

    import torch

    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return "gloo" if multi and not torch.cuda.is_available() else None


def reward_functions(config: TrainConfig) -> Tuple[list, List[float]]:
    """(TRL reward functions, their weights) of the configured stage and GSE reward."""
    online = config.stage == "gse" and config.gse_reward == "online"
    funcs: list = make_reward_terms(
        config.stage, config.reference_rewards, exclude=OFFLINE_ONLY_TERMS if online else ()
    )
    if online:
        from .retrospective import OnlineRetrospectiveReward

        funcs.append(OnlineRetrospectiveReward(config))
    names = [f.__name__ for f in funcs]
    unknown = sorted(set(config.reward_weights) - set(names))
    if unknown:
        raise ValueError(
            f"reward_weights names unknown term(s) {unknown}; this run's terms: {names}"
        )
    return funcs, [float(config.reward_weights.get(n, 1.0)) for n in names]


def policy_dtype(config: TrainConfig) -> str:
    """
    Return the dtype the policy is loaded in: fp32 master weights, bf16 only for LoRA's base.

    With ``bf16`` the trainer computes in bf16 autocast (accelerate's mixed precision) and
    AdamW updates fp32 weights: a 1e-6 step on a bf16 weight of ~0.02 (ulp ~1e-4) rounds
    away. DeepSpeed casts the module to bf16 itself and keeps fp32 master partitions. A LoRA
    base is frozen, so it stays bf16; peft makes its adapters fp32.
    """
    return "bfloat16" if config.lora and use_bf16(config) else "float32"


def grpo_args(config: TrainConfig, weights: List[float], **extra):
    """
    Build the TRL GRPOConfig of the recipe: constant lr from step one, no warm-up.

    ``extra`` (GRPOConfig keys) overrides.
    """
    from trl import GRPOConfig

    bf16 = use_bf16(config)
    args = dict(
        output_dir=config.output_dir,
        num_generations=config.num_generations,
        temperature=config.temperature,
        beta=config.beta,
        epsilon=config.epsilon,
        entropy_coef=config.entropy_coef,
        loss_type=config.loss_type,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_steps=config.max_steps,
        max_completion_length=config.max_completion_length,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=1,
        bf16=bf16,
        model_init_kwargs={"dtype": policy_dtype(config)},
        reward_weights=weights,
        seed=config.seed,
        report_to=report_targets(config)[0],
        remove_unused_columns=False,
        **vllm_args(config),
    )
    if config.gradient_checkpointing:
        args["gradient_checkpointing"] = True
    if cpu_backend():
        args["ddp_backend"] = cpu_backend()
    if bf16 and not _cuda():
        args["use_cpu"] = True  # bf16 autocast on the CPU (tests); transformers asks for it
    return GRPOConfig(**{**args, **extra})


def vllm_args(config: TrainConfig) -> dict:
    """Return the GRPOConfig keys of generation through vLLM (none unless ``use_vllm``)."""
    if not config.use_vllm:
        return {}
    args = dict(use_vllm=True, vllm_mode=config.vllm_mode)
    if config.vllm_mode == "server":
        args.update(vllm_server_host=config.vllm_server_host,
                    vllm_server_port=config.vllm_server_port)
    else:
        args.update(vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                    vllm_tensor_parallel_size=config.vllm_tensor_parallel_size)
    return args


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


DATA_SOURCE = "source.json"  # what a built set was made from, checked on resume


def _data_source(config: TrainConfig, options: DataOptions) -> dict:
    """Describe the inputs that decide a built set: stage, annotation bytes, folder, options."""
    source = {
        "stage": config.stage,
        "annotations_sha256": _sha256(Path(config.annotations)),
        "images_dir": config.images_dir,
        "options": dataclasses.asdict(options),
    }
    return json.loads(json.dumps(source))  # as read back (tuples become lists)


def prepare_data(config: TrainConfig) -> Path:
    """Build the stage's set under ``output_dir/data`` (kept on resume); returns rows.jsonl."""
    rows_path = Path(config.output_dir) / "data" / ROWS
    options = DataOptions(
        seed=config.data_seed,
        crop_size=config.crop_size,
        lpr_size=config.lpr_size,
        gse_size=config.gse_size,
        max_samples=config.max_samples,
    )
    source = _data_source(config, options)
    source_path = rows_path.parent / DATA_SOURCE
    if rows_path.is_file() and config.resume:
        built = json.loads(source_path.read_text()) if source_path.is_file() else None
        if built != source:
            raise TrainConfigError(
                f"{config.output_dir} holds a run built from other data or data settings "
                f"({source_path}); use a new --output-dir, or resume: false to start over"
            )
        return rows_path
    rows_path, counts = build_set(
        config.stage, config.annotations, rows_path.parent, options, config.images_dir
    )
    source_path.write_text(json.dumps(source, indent=1))
    print(
        f"{config.stage} set: {counts['samples']} samples, {counts['skipped']} skipped "
        f"-> {rows_path}"
    )
    if config.stage == "gse" and config.gse_reward == "offline":
        missing = sum(row.get("best_region") is None for row in read_rows(rows_path))
        if missing:
            print(
                f"warning: {missing} of {counts['samples']} samples have no best_region "
                "(run finers-train search first); their region terms are skipped"
            )
    return rows_path


def _log_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Every log line (loss, reward, per-term means) appended to ``log.jsonl``."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with path.open("a") as sink:
                    sink.write(json.dumps({"step": state.global_step, **logs}) + "\n")
                terms = {
                    k.split("/")[1]: v
                    for k, v in logs.items()
                    if k.startswith("rewards/") and k.endswith("/mean")
                }
                if terms:
                    shown = "  ".join(f"{k} {v:.3f}" for k, v in terms.items())
                    print(
                        f"step {state.global_step}: "
                        f"reward {logs.get('reward', float('nan')):.3f}  {shown}"
                    )

    return JsonlLog()


def build_trainer(config: TrainConfig, rows_path: Path, **extra):
    """Build a GRPOTrainer for the config (model loaded by TRL from ``base_model``)."""
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    funcs, weights = reward_functions(config)
    dataset = load_dataset(rows_path, config.system_prompt)
    # Left padding as TRL's own processor: TRL left-pads the prompt ids, and a processor
    # padding on the right shifts the image token types against them in mixed-length batches.
    processor = AutoProcessor.from_pretrained(
        config.base_model, local_files_only=True, padding_side="left", truncation_side="left"
    )
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules),
            task_type="CAUSAL_LM",
        )
    trainer = GRPOTrainer(
        model=config.base_model,
        reward_funcs=funcs,
        args=grpo_args(config, weights, **extra),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config,
    )
    trainer.add_callback(_log_callback(Path(config.output_dir) / "log.jsonl"))
    callbacks, writer = (tensorboard_callbacks(config, rows_path, trainer)
                         if report_targets(config)[1] else ([], None))
    for callback in callbacks:
        trainer.add_callback(callback)
    if config.eval_annotations:
        trainer.add_callback(eval_callback(
            config, trainer, lambda folder: save_policy(trainer, config, folder), writer))
    if _zero_stage(trainer) == 3:
        # Loaded under ZeRO-3 init, the model records a key conversion that saving reverts
        # wrongly (model.model.* instead of model.*: the node would load random weights).
        # Without it, save_pretrained writes the keys of a freshly built model, which load.
        trainer.accelerator.unwrap_model(trainer.model)._weight_conversions = None
    return trainer


def resume_weights_by_name(trainer) -> None:
    """
    Make the Trainer reload a checkpoint's weights through the model's own loader.

    transformers' Trainer reloads ``checkpoint-N`` with a plain ``load_state_dict``, but a
    Qwen2.5-VL checkpoint is written under other names than its modules carry (``visual.*``
    for ``model.visual.*``, ...): a resumed run kept the base model's weights (every tensor of
    the tiny test model) under the trained run's optimizer state. The checkpoint is read by
    ``from_pretrained``, which maps the names, and copied in strictly. DeepSpeed (engine
    checkpoints) and LoRA (adapter files) runs keep the Trainer's own loading.
    """
    from peft import PeftModel

    original = trainer._load_from_checkpoint

    def load(resume_from_checkpoint, model=None):
        target = trainer.model if model is None else model
        if trainer.is_deepspeed_enabled or isinstance(target, PeftModel):
            return original(resume_from_checkpoint, model)
        dtype = next(target.parameters()).dtype
        saved = type(target).from_pretrained(
            resume_from_checkpoint, dtype=dtype, local_files_only=True
        )
        target.load_state_dict(saved.state_dict(), strict=True)

    trainer._load_from_checkpoint = load


def last_checkpoint(output_dir: str | Path) -> Optional[str]:
    """
    Find the newest complete ``checkpoint-N``.

    The Trainer writes ``trainer_state.json`` last, so a folder without it was cut off while
    saving (a kill mid-save) and is passed over.
    """
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = []
    for folder in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        suffix = folder.name[len(PREFIX_CHECKPOINT_DIR) + 1:]
        if suffix.isdigit() and (folder / "trainer_state.json").is_file():
            steps.append((int(suffix), folder))
    return str(max(steps)[1]) if steps else None


def trim_log(log: Path, step: int) -> None:
    """Drop ``log.jsonl`` lines after ``step`` (a resumed run logs those steps again)."""
    if not log.is_file():
        return
    kept = [
        line
        for line in log.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    log.write_text("".join(line + "\n" for line in kept))


def forget_runs_not_continued(output_dir: Path, resume_step: Optional[int]) -> None:
    """
    Remove what the earlier run in ``output_dir`` left that this run does not continue.

    ``resume_step`` None (a fresh start: no complete checkpoint, or ``resume: false``): the
    old ``log.jsonl``, ``best/`` and ``eval/`` go (their weights are gone, maybe trained
    with other settings). Resuming from step N: log lines and evaluations after N go
    (``best/`` too when it is one of them); those steps are trained again.
    """
    from .evaluation import BEST, BEST_INFO

    log, best, evals = output_dir / "log.jsonl", output_dir / BEST, output_dir / "eval"
    if resume_step is None:
        log.unlink(missing_ok=True)
        shutil.rmtree(best, ignore_errors=True)
        shutil.rmtree(evals, ignore_errors=True)
        return
    trim_log(log, resume_step)
    try:
        best_step = json.loads((best / BEST_INFO).read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError):
        best_step = None if not best.exists() else resume_step + 1  # unreadable: not trusted
    if best_step is not None and best_step > resume_step:
        shutil.rmtree(best, ignore_errors=True)
    for folder in evals.glob("step-*"):
        suffix = folder.name[len("step-"):]
        if suffix.isdigit() and int(suffix) > resume_step:
            shutil.rmtree(folder, ignore_errors=True)


def _zero_stage(trainer) -> int:
    plugin = trainer.accelerator.state.deepspeed_plugin
    return int(plugin.zero_stage) if plugin is not None else 0


def merged_lora_model(trainer, config: TrainConfig):
    """
    Return the LoRA run's adapters merged into its base model (None off the main process).

    Merged in fp32 into the base checkpoint loaded whole (``lora.py``): merged into a bf16
    base, a small update rounds away. Under ZeRO-3 every rank holds only its partition of
    each weight: the adapters are gathered first (every rank takes part).
    """
    from .generation import outside_zero3
    from .lora import adapters_fp32, merged_copy

    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    adapters = adapters_fp32(peft_model, _zero_stage(trainer) == 3)
    if not trainer.accelerator.is_main_process:
        return None
    with outside_zero3():
        return merged_copy(peft_model, config.base_model, adapters)


def save_final(trainer, config: TrainConfig, rows_path: Path) -> Path:
    """Model + processor in ``output_dir`` (LoRA merged), plus the config and hashes."""
    out = Path(config.output_dir)
    if config.lora:
        merged = merged_lora_model(trainer, config)
        if trainer.accelerator.is_main_process:
            merged.save_pretrained(str(out), safe_serialization=True)
            trainer.processing_class.save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        write_run_config(config, out)
        hashes = {
            "data_set_sha256": set_hash(rows_path),
            "annotations_sha256": _sha256(Path(config.annotations)),
            "config_sha256": hashlib.sha256(
                json.dumps(config.to_dict(), sort_keys=True).encode()
            ).hexdigest(),
            "base_model_config_sha256": files_hash([Path(config.base_model) / "config.json"]),
            "steps": trainer.state.global_step,
        }
        (out / "finers_train_hashes.json").write_text(json.dumps(hashes, indent=1))
    return out


def train(config: TrainConfig) -> Path:
    """Build the data, run GRPO (resuming from the newest checkpoint), save; returns output_dir."""
    config.validate()
    check_inputs(config, config.stage)
    check_apart(config)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    from accelerate import PartialState

    backend = cpu_backend()
    state = PartialState(**({"backend": backend} if backend else {}))
    with state.main_process_first():  # rank 0 builds the set, the others read it
        rows_path = (
            prepare_data(config)
            if state.is_main_process
            else Path(config.output_dir) / "data" / ROWS
        )
    trainer = build_trainer(config, rows_path)
    resume = last_checkpoint(config.output_dir) if config.resume else None
    if resume:
        print(f"resuming from {resume}")
    if state.is_main_process:
        forget_runs_not_continued(
            Path(config.output_dir), int(resume.rsplit("-", 1)[1]) if resume else None)
    if resume:
        resume_weights_by_name(trainer)
    trainer.train(resume_from_checkpoint=resume)
    return save_final(trainer, config, rows_path)
