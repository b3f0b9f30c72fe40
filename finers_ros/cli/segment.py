"""
``finers-segment IMAGE "find the red screw" --out DIR [--config FILE]``.

Writes ``mask.png`` (full-resolution mono8, 255 = object), ``overlay.png`` (downscaled,
for people) and ``result.json``. Exit 0 on success and on "not found"; 2 with a one-line
reason on bad input or an unloadable configuration; 3 when a stage failed (result.json
still written).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from ..data.annotations import DatasetError, read_rgb
from ..overlay import draw_overlay
from ..prompts import QUESTION_TYPES
from ..result import FineRSResult
from .common import CliError, load_pipeline, output_dir


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finers-segment", description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="image file (any size; PNG, JPEG, ...)")
    parser.add_argument("instruction", help='what to find, e.g. "find the red screw"')
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--config", type=Path, default=None, help="pipeline YAML (default: bring-up backend)"
    )
    parser.add_argument(
        "--question-type", default="referring", choices=QUESTION_TYPES + ("reasoning",)
    )
    parser.add_argument("--options", nargs="*", default=None, help="choices of an option question")
    parser.add_argument("--overlay-width", type=int, default=1280)
    return parser


def write_outputs(
    out: Path, image: np.ndarray, result: FineRSResult, label: str, overlay_width: int = 1280
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mask = result.mask if result.mask is not None else np.zeros(image.shape[:2], bool)
    cv2.imwrite(str(out / "mask.png"), mask.astype(np.uint8) * 255)
    overlay = draw_overlay(image, result, overlay_width, label)
    cv2.imwrite(str(out / "overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    (out / "result.json").write_text(json.dumps(result.to_json(), indent=2))


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if not args.instruction.strip():
        raise CliError("empty instruction")
    if args.overlay_width < 1:
        raise CliError(f"--overlay-width {args.overlay_width}: must be positive")
    if not args.image.is_file():
        raise CliError(f"image not found: {args.image}")
    try:
        image = read_rgb(args.image)
    except DatasetError as exc:
        raise CliError(str(exc)) from exc
    output_dir(args.out)
    pipeline, _ = load_pipeline(args.config)
    result = pipeline.run(image, args.instruction, args.question_type, args.options)
    if result.error_stage == "input":  # bad input (image too small, question): exit 2
        raise CliError(result.error)
    write_outputs(
        args.out,
        image,
        result,
        "bring-up backend" if pipeline.is_bringup else pipeline.backend_name,
        args.overlay_width,
    )
    timings = result.timings_text()
    if result.error:
        print(f"error ({result.error_stage}): {result.error}")
        print(f"wrote {args.out}/result.json")
        return 3
    status = f"found, box {[round(v) for v in result.box]}" if result.found else "not found"
    print(f"{status}; answer: {result.answer!r}; {timings}")
    print(f"wrote {args.out}/mask.png, overlay.png, result.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
