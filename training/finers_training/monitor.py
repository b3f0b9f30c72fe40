"""
What a person watches while a run trains: TensorBoard, the run's identity, sample completions.

With ``report_to`` naming ``tensorboard`` the run writes event files to
``output_dir/tensorboard/``: every logged scalar through transformers' own
``TensorBoardCallback`` (``train/rewards/<term>/mean`` and ``/std`` per reward term,
``train/reward``, ``train/kl``, ``train/completions/mean_length``, loss, lr, ...), the
evaluation on the val split (``eval/<metric>``, ``evaluation.py``), and as text: the run's
config (``run/config``), the hashes of its data and config (``run/hashes``) and, at every
logged step, a few decoded completions with each term's reward (``completions``).
Other ``report_to`` entries (``wandb``, ``mlflow``, ...) go to transformers unchanged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

from .config import TrainConfig
from .data import set_hash

TENSORBOARD_DIR = "tensorboard"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_hashes(config: TrainConfig, rows_path: Path) -> dict:
    """sha256 of the built set, the annotations (and val annotations) and the config."""
    hashes = {
        "data_set_sha256": set_hash(rows_path),
        "config_sha256": hashlib.sha256(
            json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest(),
    }
    for key in ("annotations", "eval_annotations"):  # a set built by hand has no annotations
        if getattr(config, key) and Path(getattr(config, key)).is_file():
            hashes[f"{key}_sha256"] = _sha256(Path(getattr(config, key)))
    return hashes


def report_targets(config: TrainConfig) -> Tuple[List[str], bool]:
    """(``report_to`` for transformers, whether this module writes TensorBoard itself)."""
    wanted = [config.report_to] if isinstance(config.report_to, str) else list(config.report_to)
    wanted = [w for w in wanted if w not in ("none", "")]
    others = [w for w in wanted if w != "tensorboard"]
    return others or ["none"], "tensorboard" in wanted


def _text(message) -> str:
    """Return the text of a completion: a string, or a conversation's text parts."""
    if isinstance(message, str):
        return message
    parts = []
    for turn in message if isinstance(message, list) else [message]:
        content = turn.get("content", "") if isinstance(turn, dict) else turn
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(str(content))
    return "\n".join(parts)


def completions_table(logs: dict, count: int) -> Optional[str]:
    """
    Return a Markdown table of the newest ``count`` completions with each term's reward.

    ``logs`` is GRPOTrainer's record of the latest generation batch (``completion`` and
    ``rewards`` per term, oldest first); None when it holds none.
    """
    completions = list(logs.get("completion", []))[-count:]
    if not completions or count <= 0:
        return None
    terms = {name: list(values)[-len(completions):] for name, values in logs["rewards"].items()}
    head = "| completion | " + " | ".join(terms) + " |"
    rows = [head, "|" + "---|" * (len(terms) + 1)]
    for index, completion in enumerate(completions):
        text = _text(completion).replace("|", "\\|").replace("\n", " ")[:600]
        rewards = " | ".join(f"{values[index]:.3f}" for values in terms.values())
        rows.append(f"| {text} | {rewards} |")
    return "\n".join(rows)


def tensorboard_callbacks(config: TrainConfig, rows_path: Path, trainer) -> tuple:
    """
    Return (TensorBoard callbacks: scalars; config, hashes and completions text, the writer).

    Only the main process writes (its writer); the others get callbacks that do nothing and
    None.
    """
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback

    writer = None
    if trainer.accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(Path(config.output_dir) / TENSORBOARD_DIR))

    class RunText(TrainerCallback):
        """The run's config and hashes once, decoded completions at every logged step."""

        def on_train_begin(self, args, state, control, **kwargs):
            if writer is None:
                return
            writer.add_text("run/config", "```\n" + yaml.safe_dump(
                config.to_dict(), sort_keys=False) + "```", state.global_step)
            writer.add_text("run/hashes", "```\n" + json.dumps(
                run_hashes(config, rows_path), indent=1) + "\n```", state.global_step)
            writer.flush()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if writer is None or not logs or "reward" not in logs:
                return
            table = completions_table(getattr(trainer, "_logs", {}), config.log_completions)
            if table:
                writer.add_text("completions", table, state.global_step)
                writer.flush()

    scalars = TensorBoardCallback(tb_writer=writer)
    return [scalars, RunText()], writer
