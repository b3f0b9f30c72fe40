"""
Evaluation on the val split while a run trains, with the best checkpoint kept.

Every ``eval_steps`` steps (and after the last) the policy is written as a node-loadable
checkpoint and scored on ``eval_annotations`` by ``finers-eval``'s own code
(``finers_ros.cli.evaluate.evaluate``): the whole cascade, the trained stage from that
checkpoint, the other stages from ``eval_pipeline`` (a pipeline YAML; default the built-in
bring-up stages). The metrics go to ``log.jsonl`` and TensorBoard as ``eval/<name>``
(gIoU, cIoU, region_recall, MVQA, OVQA) and to ``output_dir/eval/step-N/`` (metrics.json,
report.md); the checkpoint with the highest ``eval_metric`` so far is kept as
``output_dir/best/`` (``finers_best.json`` says which step and value, ``finers_train.yaml``
the run's config, as in ``output_dir``), the others deleted.
A val record from a frame any training record comes from is refused before training.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Optional

from finers_ros.data.annotations import load_annotations

from .config import EVAL_METRICS, TrainConfig, TrainConfigError, write_run_config
from .split import shared_frames

BEST = "best"
BEST_INFO = "finers_best.json"


def check_apart(config: TrainConfig) -> None:
    """Refuse val annotations that share a frame (image file or bag frame) with training."""
    if not config.eval_annotations:
        return
    train_file, val_file = Path(config.annotations), Path(config.eval_annotations)
    try:
        train = json.loads(train_file.read_text())["annotations"]
        val = json.loads(val_file.read_text())["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainConfigError(f"cannot read the annotations to compare: {exc}") from exc
    train_base = Path(config.images_dir) if config.images_dir else train_file.parent
    val_base = Path(config.eval_images_dir) if config.eval_images_dir else val_file.parent
    shared = shared_frames(train, train_base, val, val_base)
    if shared:
        raise TrainConfigError(
            f"eval_annotations shares {len(shared)} frame(s) with annotations (first: "
            f"{shared[0]}): no val sample may come from a training frame; split with "
            f"finers-dataset split")


def metric_value(metrics: dict, name: str) -> Optional[float]:
    """Return one of ``EVAL_METRICS`` from ``finers-eval``'s metrics; None when unmeasured."""
    value = {"gIoU": metrics["segmentation"]["all"]["gIoU"],
             "cIoU": metrics["segmentation"]["all"]["cIoU"],
             "region_recall": metrics["region_recall"],
             "MVQA": metrics["MVQA"]["accuracy"],
             "OVQA": metrics["OVQA"]["accuracy"]}[name]
    return None if value is None else float(value)


def pipeline_config(config: TrainConfig, checkpoint: Path):
    """Build the eval pipeline: ``eval_pipeline``, the trained stage from ``checkpoint``."""
    import torch

    from finers_ros.config import load_config

    pipeline = load_config(config.eval_pipeline)
    stage = getattr(pipeline, config.stage)
    device = config.device if config.device != "auto" else (
        "cuda" if torch.cuda.is_available() else "cpu")
    if stage.backend != "qwen2_5_vl":  # not described by the YAML: the run's own settings
        stage = dataclasses.replace(stage, device=device, system_prompt=config.system_prompt,
                                    max_new_tokens=config.max_completion_length)
    setattr(pipeline, config.stage, dataclasses.replace(
        stage, backend="qwen2_5_vl", checkpoint=str(checkpoint)))
    return pipeline.validate()


def evaluate_checkpoint(config: TrainConfig, checkpoint: Path, out: Path) -> dict:
    """Score ``checkpoint`` on the val split with finers-eval's code; writes into ``out``."""
    from finers_ros.cli.common import bringup_banner
    from finers_ros.cli.evaluate import evaluate
    from finers_ros.pipeline import FineRSPipeline

    from .generation import outside_zero3

    records = load_annotations(config.eval_annotations, config.eval_images_dir)
    if config.eval_max_samples is not None:
        records = records[: config.eval_max_samples]
    # One process loads and runs it whole while the others wait: no ZeRO-3 partitioning at
    # load, no generation synced across processes that are not generating.
    with outside_zero3():
        pipeline = FineRSPipeline.from_config(pipeline_config(config, checkpoint))
        return evaluate(pipeline, records, out, bringup_banner(pipeline), examples=0)


def flat_metrics(metrics: dict) -> dict:
    """Return ``eval/<name>`` of every measured ``EVAL_METRICS`` entry."""
    values = {f"eval/{name}": metric_value(metrics, name) for name in EVAL_METRICS}
    return {k: v for k, v in values.items() if v is not None}


def save_policy(trainer, config: TrainConfig, folder: Path) -> None:
    """
    Write the policy being trained to ``folder`` as a node-loadable checkpoint.

    Every process calls it (ZeRO-3 gathers the weights). LoRA adapters are merged in fp32
    into a copy of the base (``lora.py``): the model being trained keeps its adapters.
    """
    if not config.lora:
        trainer.save_model(str(folder))
        return
    from .train import merged_lora_model

    merged = merged_lora_model(trainer, config)
    if merged is not None:
        merged.save_pretrained(str(folder), safe_serialization=True)
        trainer.processing_class.save_pretrained(str(folder))


def eval_callback(config: TrainConfig, trainer, save_policy, writer):
    """
    Build the callback that evaluates every ``eval_steps`` and keeps the best checkpoint.

    ``save_policy(folder)`` writes the current policy as a node-loadable checkpoint (every
    process takes part: ZeRO-3 gathers); ``writer`` is the TensorBoard writer or None.
    """
    from transformers import TrainerCallback

    out = Path(config.output_dir)
    best_info = out / BEST / BEST_INFO

    class EvaluateOnVal(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step
            if step % config.eval_steps and step != state.max_steps:
                return
            candidate = out / "eval" / "candidate"
            save_policy(candidate)
            if trainer.accelerator.is_main_process:
                self._score(step, candidate)
            trainer.accelerator.wait_for_everyone()

        def _score(self, step: int, candidate: Path) -> None:
            metrics = evaluate_checkpoint(config, candidate, out / "eval" / f"step-{step}")
            values = flat_metrics(metrics)
            with (out / "log.jsonl").open("a") as sink:
                sink.write(json.dumps({"step": step, **values}) + "\n")
            if writer is not None:
                for name, value in values.items():
                    writer.add_scalar(name, value, step)
                writer.flush()
            value = metric_value(metrics, config.eval_metric)
            best = json.loads(best_info.read_text())["value"] if best_info.is_file() else None
            shown = "n/a" if value is None else f"{value:.4f}"
            if value is not None and (best is None or value > best):
                shutil.rmtree(out / BEST, ignore_errors=True)
                candidate.rename(out / BEST)
                write_run_config(config, out / BEST)
                best_info.write_text(json.dumps(
                    {"step": step, "metric": config.eval_metric, "value": value}, indent=1))
                print(f"eval step {step}: {config.eval_metric} {shown}, the best so far "
                      f"-> {out / BEST}")
            else:
                shutil.rmtree(candidate, ignore_errors=True)
                print(f"eval step {step}: {config.eval_metric} {shown} (best {best})")

    return EvaluateOnVal()
