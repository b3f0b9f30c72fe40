"""
``finers-eval --annotations FILE --images DIR [--config FILE] [--protocol P] --out DIR``.

Runs the pipeline on every record of a FineRS-4k-format annotation file and writes
``metrics.json`` and ``report.md`` (with overlays of a few successes and failures).
A record whose image cannot be read, or whose run raises, counts as a failed sample (empty
prediction, wrong answer), not a crash. ``--protocol reference`` scores exactly as the
authors' evaluation script; the default ``fixed`` corrects its bugs (see ``metrics``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from ..data.annotations import (DatasetError, Record, gt_box, gt_mask, gt_pixel_count,
                                load_annotations, read_rgb)
from ..metrics import (PROTOCOLS, Sample, intersection_union, open_correct, option_correct,
                       summarize)
from ..overlay import draw_overlay
from ..pipeline import FineRSPipeline
from ..result import FineRSResult
from .common import CliError, load_pipeline, output_dir

SUCCESS_IOU = 0.5
MAX_LISTED_FAILURES = 20
# Sample.q_type uses the FineRS-4k spellings.
_FILE_TYPE = {"referring": "referring", "open": "reasoning", "option": "option"}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finers-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--images", type=Path, default=None,
                        help="image folder (default: the JSON's folder)")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--protocol", choices=PROTOCOLS, default="fixed",
                        help="fixed (default): the reference scoring with its bugs fixed; "
                             "reference: exactly the authors' evaluation script")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate the first N records only")
    parser.add_argument("--examples", type=int, default=3,
                        help="overlays of successes and of failures")
    return parser


def _sample_type(record: Record) -> str:
    try:
        return _FILE_TYPE[record.pipeline_question_type]
    except ValueError:
        return record.q_type


def _failed_sample(record: Record, gt_union: int) -> Sample:
    """Return a sample that predicted nothing: I = 0, U = |G|, a wrong answer, no region."""
    kind = _sample_type(record)
    return Sample(kind, record.area_percent, 0, gt_union, False,
                  None if kind == "referring" else False, record.attribute, True, {},
                  str(record.extra.get("grounding", "")), located=False)


def _score(record: Record, result: FineRSResult, gt: np.ndarray, protocol: str) -> Sample:
    inter, union = intersection_union(result.mask, gt)
    box = gt_box(gt)
    region_hit = bool(result.crop is not None and box is not None
                      and result.crop.contains_box(box))
    kind = _sample_type(record)
    correct = None
    if kind == "option":
        correct = option_correct(result.answer, record.answer, protocol)
    elif kind == "reasoning":
        correct = open_correct(result.answer, record.answer, protocol=protocol)
    # The reference counts region recall over the samples whose GSE answered with a box.
    located = result.error_stage not in ("input", "gse")
    return Sample(kind, record.area_percent, inter, union, region_hit, correct, record.attribute,
                  result.error is not None, dict(result.timings_ms),
                  str(record.extra.get("grounding", "")), located=located)


Outcome = Union[FineRSResult, str]


def evaluate_record(pipeline: FineRSPipeline, record: Record,
                    protocol: str = "fixed") -> Tuple[Sample, object, Outcome]:
    """
    Return (Sample, image or None, outcome) for one record.

    The outcome is the pipeline's result, or a one-line reason when there is none (unreadable
    image, a run that raised).
    """
    try:
        image = read_rgb(record.image_path)
    except DatasetError as exc:
        return _failed_sample(record, gt_pixel_count(record.polygon)), None, str(exc)
    gt = gt_mask(record.polygon, (image.shape[1], image.shape[0]))
    try:
        result = pipeline.run(image, record.question, record.pipeline_question_type,
                              record.options)
        return _score(record, result, gt, protocol), image, result
    except Exception as exc:  # noqa: BLE001 -- one sample's failure must not end the evaluation
        reason = f"run raised {type(exc).__name__}: {exc}".splitlines()[0][:300]
        return _failed_sample(record, int(gt.sum())), image, reason


def _fmt(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def write_report(path: Path, metrics: dict, banner: str, examples: List[tuple]) -> None:
    seg = metrics["segmentation"]
    lines = ["# finers-eval report", "", banner, "",
             f"{metrics['samples']} samples, {metrics['failed']} failed; scored with the "
             f"{metrics['protocol']} protocol.", "",
             "| subset | gIoU | cIoU | samples |", "|---|---|---|---|"]
    for name in ("all", "S", "XS", "XXS"):
        lines.append(f"| {name} | {_fmt(seg[name]['gIoU'])} | {_fmt(seg[name]['cIoU'])} "
                     f"| {seg[name]['count']} |")
    for name, values in metrics["referring_by_grounding"].items():
        lines.append(f"| referring: {name} | {_fmt(values['gIoU'])} | {_fmt(values['cIoU'])} "
                     f"| {values['count']} |")
    lines += ["", f"Region recall: {_fmt(metrics['region_recall'])}%", "",
              "| VQA | accuracy | samples |", "|---|---|---|"]
    for name in ("MVQA", "OVQA"):
        lines.append(f"| {name} | {_fmt(metrics[name]['accuracy'])} | {metrics[name]['count']} |")
        for attribute, values in metrics[name]["per_attribute"].items():
            lines.append(f"| {name} / {attribute} | {_fmt(values['accuracy'])} "
                         f"| {values['count']} |")
    lines += ["", "| stage | median ms | p90 ms |", "|---|---|---|"]
    for stage, values in metrics["latency_ms"].items():
        lines.append(f"| {stage} | {values['median']} | {values['p90']} |")
    if metrics.get("tokens"):
        lines += ["", "| tokens | median | p90 |", "|---|---|---|"]
        for name, values in metrics["tokens"].items():
            lines.append(f"| {name} | {values['median']} | {values['p90']} |")
    if metrics.get("failures_listed"):
        lines += ["", "## Failed samples (first ones)", ""]
        lines += [f"- {f['index']} `{f['image']}`: {f['error']}"
                  for f in metrics["failures_listed"]]
    if examples:
        lines += ["", "## Examples", ""]
        for kind, name, caption in examples:
            lines += [f"**{kind}**: {caption}", "", f"![{kind}]({name})", ""]
    path.write_text("\n".join(lines) + "\n")


def evaluate(pipeline: FineRSPipeline, records: List[Record], out: Path, banner: str,
             protocol: str = "fixed", examples: int = 3) -> dict:
    """Score every record, write ``metrics.json`` and ``report.md`` into ``out``; the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    samples, shown_examples, failures = [], [], []
    shown = {"success": 0, "failure": 0}
    for index, record in enumerate(tqdm(records, desc="evaluating", unit="sample")):
        sample, image, outcome = evaluate_record(pipeline, record, protocol)
        samples.append(sample)
        reason = outcome if isinstance(outcome, str) else outcome.error
        if reason and len(failures) < MAX_LISTED_FAILURES:
            failures.append({"index": index, "image": str(record.image_path), "error": reason})
        if image is None or isinstance(outcome, str) or sample.q_type != "referring":
            continue
        iou = sample.intersection / sample.union if sample.union else 1.0
        kind = "success" if iou >= SUCCESS_IOU else "failure"
        if shown[kind] < examples:
            name = f"{kind}_{index:05d}.png"
            try:
                overlay = draw_overlay(image, outcome, 960, f"IoU {iou:.2f}")
                cv2.imwrite(str(out / name), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            except Exception:  # noqa: BLE001 -- an illustration must not end the evaluation
                continue
            shown[kind] += 1
            shown_examples.append((kind, name, f"\"{record.question}\" IoU {iou:.2f}"
                                   + (f", error: {outcome.error}" if outcome.error else "")))
    metrics = summarize(samples, protocol)
    metrics["backend"] = pipeline.backend_name
    metrics["failures_listed"] = failures
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(out / "report.md", metrics, banner, shown_examples)
    return metrics


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    for name in ("limit", "examples"):
        if (getattr(args, name) or 0) < 0:
            raise CliError(f"--{name} {getattr(args, name)}: must be >= 0")
    output_dir(args.out)
    try:
        records = load_annotations(args.annotations, args.images)
    except DatasetError as exc:
        raise CliError(str(exc)) from exc
    if args.limit is not None:
        records = records[: args.limit]
    pipeline, banner = load_pipeline(args.config)
    metrics = evaluate(pipeline, records, args.out, banner, args.protocol, args.examples)
    seg = metrics["segmentation"]["all"]
    print(f"gIoU {_fmt(seg['gIoU'])}  cIoU {_fmt(seg['cIoU'])}  "
          f"region recall {_fmt(metrics['region_recall'])}  "
          f"MVQA {_fmt(metrics['MVQA']['accuracy'])}  OVQA {_fmt(metrics['OVQA']['accuracy'])}  "
          f"({metrics['protocol']} protocol, {metrics['failed']} failed)")
    for name, values in metrics["referring_by_grounding"].items():
        print(f"  referring ({name}): gIoU {_fmt(values['gIoU'])} over {values['count']}")
    print(f"wrote {args.out}/metrics.json and report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
