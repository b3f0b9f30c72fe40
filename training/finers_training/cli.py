"""
``finers-train lpr|gse|search --config FILE``: the two GRPO stages and the best-region search.

Order (reference section 5): ``finers-train lpr`` (random 512 crops holding the GT) ->
``finers-train search`` (best_region with that LPR, written to ``--out``) -> ``finers-train
gse`` on the searched annotations. Flags override the YAML's keys of the same name.
Exit 0 on success, 2 with a one-line reason on bad configuration or data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finers_ros.data.annotations import DatasetError
from finers_ros.stages.qwen_vl import CheckpointError

from .config import TrainConfigError, check_inputs, load_config


def make_parser() -> argparse.ArgumentParser:
    summary = __doc__.strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="finers-train", description=summary)
    parser.add_argument("command", choices=("lpr", "gse", "search"))
    parser.add_argument(
        "--config", type=Path, required=True, help="TrainConfig YAML (training/configs/)"
    )
    parser.add_argument("--base-model", help="checkpoint directory to start from")
    parser.add_argument("--annotations", help="FineRS-4k JSON")
    parser.add_argument("--images-dir", help="image folder (default: the JSON's folder)")
    parser.add_argument("--eval-annotations",
                        help="val split evaluated every eval_steps (finers-dataset split)")
    parser.add_argument("--output-dir", help="run directory (lpr, gse)")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-samples", type=int)
    parser.add_argument("--online-lpr-checkpoint", help="frozen LPR of the online GSE reward")
    parser.add_argument("--gse-reward", choices=("offline", "online"))
    parser.add_argument("--lpr", dest="search_checkpoint", help="trained LPR directory (search)")
    parser.add_argument("--out", type=Path, help="search: annotations JSON with best_region")
    return parser


def _absolute(value):
    return str(Path(value).resolve()) if value else None


def _resume_hint(command: str, output_dir) -> str:
    """Where the same command continues after an interruption."""
    if command == "search":
        return "the same command continues the search from its .partial.jsonl"
    from .train import last_checkpoint

    checkpoint = last_checkpoint(output_dir) if output_dir else None
    if checkpoint:
        return f"the same command resumes from {checkpoint}"
    return "no checkpoint saved yet: the same command starts over"


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    overrides = dict(
        base_model=_absolute(args.base_model),
        annotations=_absolute(args.annotations),
        images_dir=_absolute(args.images_dir),
        eval_annotations=_absolute(args.eval_annotations),
        output_dir=_absolute(args.output_dir),
        online_lpr_checkpoint=_absolute(args.online_lpr_checkpoint),
        search_checkpoint=_absolute(args.search_checkpoint),
        max_steps=args.max_steps,
        max_samples=args.max_samples,
        gse_reward=args.gse_reward,
    )
    if args.command in ("lpr", "gse"):
        overrides["stage"] = args.command
    config = None
    try:
        config = load_config(args.config, **overrides)
        check_inputs(config, args.command)
        if args.command == "search":
            from .retrospective import search

            if args.out is None:
                raise TrainConfigError("search needs --out (the annotations JSON to write)")
            counts = search(config, args.out)
            print(
                f"best-region search: {counts['samples']} samples ({counts['resumed']} resumed), "
                f"{counts['windows']} windows answered, {counts['unparsable']} unparsable, "
                f"{counts['not_found']} not found, {counts['skipped']} skipped -> {args.out}"
            )
            return 0
        from .train import train

        out = train(config)
        from accelerate import PartialState

        if PartialState().is_main_process:
            print(f"trained {config.stage} -> {out}")
        return 0
    except KeyboardInterrupt:
        output_dir = config.output_dir if config is not None else args.output_dir
        print(
            f"finers-train: interrupted; {_resume_hint(args.command, output_dir)}",
            file=sys.stderr,
        )
        return 130
    except (TrainConfigError, DatasetError, CheckpointError, ValueError) as exc:
        reason = " ".join(str(exc).split())  # YAML and torch messages span lines
        print(f"finers-train: {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
