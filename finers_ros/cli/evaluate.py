"""``finers-eval --annotations FILE --images DIR [--config FILE] --out DIR``.

Runs the pipeline on every record of a FineRS-4k-format annotation file and writes
``metrics.json`` and ``report.md`` (with overlays of a few successes and failures).
A record whose image cannot be read counts as a failed sample, not a crash.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List

import cv2
from tqdm import tqdm

from ..data.annotations import DatasetError, Record, load_annotations, read_rgb
from ..geometry import annotation_mask, polygon_box
from ..metrics import Sample, intersection_union, open_correct, option_correct, summarize
from ..overlay import draw_overlay
from ..pipeline import FineRSPipeline
from .common import CliError, load_pipeline

SUCCESS_IOU = 0.5


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finers-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--images", type=Path, default=None, help="image folder (default: the JSON's folder)")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N records only")
    parser.add_argument("--examples", type=int, default=3, help="overlays of successes and of failures")
    return parser


def evaluate_record(pipeline: FineRSPipeline, record: Record):
    """(Sample, image, result) for one record; (Sample, None, read error) when its image is unreadable."""
    try:
        image = read_rgb(record.image_path)
    except DatasetError as exc:
        # A failed sample predicts nothing: I = 0, U = |G| (the polygon's own pixel count).
        box = polygon_box(record.polygon)
        gt_union = int(annotation_mask(record.polygon, (int(box[2]) + 2, int(box[3]) + 2)).sum())
        return Sample(record.q_type, record.area_percent, 0, gt_union, False, False if record.q_type != "referring" else None,
                      record.attribute, True, {}, str(record.extra.get("grounding", ""))), None, str(exc)
    size = (image.shape[1], image.shape[0])
    gt = annotation_mask(record.polygon, size)
    result = pipeline.run(image, record.question, record.pipeline_question_type, record.options)
    inter, union = intersection_union(result.mask, gt)
    gt_box = polygon_box(record.polygon)
    region_hit = bool(result.crop is not None and result.crop.contains_box(gt_box))
    correct = None
    if record.q_type == "option":
        correct = option_correct(result.answer, record.answer)
    elif record.q_type == "reasoning":
        correct = open_correct(result.answer, record.answer)
    sample = Sample(record.q_type, record.area_percent, inter, union, region_hit, correct, record.attribute,
                    result.error is not None, dict(result.timings_ms), str(record.extra.get("grounding", "")))
    return sample, image, result


def _fmt(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def write_report(path: Path, metrics: dict, banner: str, examples: List[tuple]) -> None:
    seg = metrics["segmentation"]
    lines = ["# finers-eval report", "", banner, "",
             f"{metrics['samples']} samples, {metrics['failed']} failed.", "",
             "| subset | gIoU | cIoU | samples |", "|---|---|---|---|"]
    for name in ("all", "S", "XS", "XXS"):
        lines.append(f"| {name} | {_fmt(seg[name]['gIoU'])} | {_fmt(seg[name]['cIoU'])} | {seg[name]['count']} |")
    for name, values in metrics["referring_by_grounding"].items():
        lines.append(f"| referring: {name} | {_fmt(values['gIoU'])} | {_fmt(values['cIoU'])} | {values['count']} |")
    lines += ["", f"Region recall: {_fmt(metrics['region_recall'])}%", "",
              "| VQA | accuracy | samples |", "|---|---|---|"]
    for name in ("MVQA", "OVQA"):
        lines.append(f"| {name} | {_fmt(metrics[name]['accuracy'])} | {metrics[name]['count']} |")
        for attribute, values in metrics[name]["per_attribute"].items():
            lines.append(f"| {name} / {attribute} | {_fmt(values['accuracy'])} | {values['count']} |")
    lines += ["", "| stage | median ms | p90 ms |", "|---|---|---|"]
    for stage, values in metrics["latency_ms"].items():
        lines.append(f"| {stage} | {values['median']} | {values['p90']} |")
    if examples:
        lines += ["", "## Examples", ""]
        for kind, name, caption in examples:
            lines += [f"**{kind}**: {caption}", "", f"![{kind}]({name})", ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        records = load_annotations(args.annotations, args.images)
    except DatasetError as exc:
        raise CliError(str(exc)) from exc
    if args.limit is not None:
        records = records[: args.limit]
    pipeline, banner = load_pipeline(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    samples, examples = [], []
    shown = {"success": 0, "failure": 0}
    for index, record in enumerate(tqdm(records, desc="evaluating", unit="sample")):
        sample, image, result = evaluate_record(pipeline, record)
        samples.append(sample)
        if image is None or record.q_type != "referring":
            continue
        iou = sample.intersection / sample.union if sample.union else 1.0
        kind = "success" if iou >= SUCCESS_IOU else "failure"
        if shown[kind] < args.examples:
            shown[kind] += 1
            name = f"{kind}_{index:05d}.png"
            overlay = draw_overlay(image, result, 960, f"IoU {iou:.2f}")
            cv2.imwrite(str(args.out / name), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            examples.append((kind, name, f"\"{record.question}\" IoU {iou:.2f}"
                             + (f", error: {result.error}" if result.error else "")))
    metrics = summarize(samples)
    metrics["backend"] = pipeline.backend_name
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(args.out / "report.md", metrics, banner, examples)
    seg = metrics["segmentation"]["all"]
    print(f"gIoU {_fmt(seg['gIoU'])}  cIoU {_fmt(seg['cIoU'])}  region recall {_fmt(metrics['region_recall'])}  "
          f"MVQA {_fmt(metrics['MVQA']['accuracy'])}  OVQA {_fmt(metrics['OVQA']['accuracy'])}")
    for name, values in metrics["referring_by_grounding"].items():
        print(f"  referring ({name}): gIoU {_fmt(values['gIoU'])} over {values['count']}")
    print(f"wrote {args.out}/metrics.json and report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
