"""
``finers-dataset``: robot bags -> pre-annotated FineRS-4k + COCO, and corrected COCO back.

``finers-dataset export BAG... --out DIR`` writes ``DIR/images/`` (each answered frame once,
PNG), ``DIR/annotations.json`` (FineRS-4k records pre-annotated with the node's answers:
mask -> polygon, box, answer text) and ``DIR/coco.json`` (the same annotations as COCO
polygons, for correction in an annotation tool). ``finers-dataset import COCO --out FILE``
reads corrected COCO polygons back into FineRS-4k JSON. Whatever cannot be used is skipped,
named on one line each, and counted in the summary; exit status 1 when nothing was usable.
The same question asked again of the same frame (several clients) is exported once.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import cv2

from finers_ros.data.annotations import DatasetError

from .bags import BagEpisode, BagEpisodes, BagError, bag_paths
from .coco import area_percent, finers_question_type, from_coco, mask_polygon, to_coco


@dataclass
class ExportOptions:
    bags: List[str]
    out: str
    camera_topic: Optional[str] = None  # default: the bag's one camera topic
    command_topic: Optional[str] = None  # default: the topic ending in finers/command
    detections_topic: Optional[str] = None  # default: the topic ending in finers/detections


@dataclass
class ExportReport:
    records: int = 0
    frames: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self, out: Path) -> str:
        text = f"exported {self.records} record(s) on {self.frames} frame(s) to {out}"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} ({why})" for why, n in self.skipped.items())
        return text


def _episode_problem(episode: BagEpisode) -> str:
    """Why an episode gives no pre-annotation; empty when it does."""
    detection = episode.detection
    if episode.problem:
        return episode.problem
    if detection is None:
        return "no Detection to pre-annotate from"
    if not detection.found:
        return "the node found nothing"
    if detection.mask is None or not detection.mask.any():
        return "found, but the Detection carries no mask"
    if detection.mask.shape != episode.image.shape[:2]:
        return (f"Detection mask {detection.mask.shape[1]}x{detection.mask.shape[0]} differs "
                f"from the frame {episode.image.shape[1]}x{episode.image.shape[0]}")
    try:
        finers_question_type(episode.question_type)
    except ValueError as exc:
        return f"unknown question type: {exc}"
    return ""


def _record(episode: BagEpisode, image_path: str, polygon: list) -> dict:
    """Build the FineRS-4k record of a usable episode (plus ``box`` and ``source``)."""
    detection = episode.detection
    height, width = episode.image.shape[:2]
    record = {"image_path": image_path, "Q": episode.instruction, "A": detection.answer,
              "Q-type": finers_question_type(episode.question_type), "points": polygon,
              "attribute": "", "area_percent": area_percent(polygon, (width, height)),
              "box": [round(v, 2) for v in detection.box],
              "source": {"bag": str(episode.bag), "stamp_ns": episode.stamp_ns,
                         "frame_id": episode.frame_id, "request_id": episode.request_id,
                         "backend": detection.backend}}
    if not math.isnan(detection.score):
        record["source"]["score"] = round(detection.score, 4)
    if record["Q-type"] == "option":
        record["options"] = episode.options or []
    return record


def _episodes(paths: List[str], topics: dict, report: ExportReport, say):
    """Episodes of every bag; a bag that cannot be read is named, counted and passed over."""
    for path in bag_paths(paths):
        episodes = BagEpisodes(path, **topics)
        try:
            for number, episode in enumerate(episodes):
                if number == 0 and episodes.note:
                    say(episodes.note)
                yield episode
        except BagError as exc:
            report.skipped["unreadable bag"] += 1
            say(f"skipped bag {exc}")


def export(options: ExportOptions, say=print) -> ExportReport:
    """Write frames, FineRS-4k JSON and COCO of the bags' usable episodes to ``options.out``."""
    out = Path(options.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    report, records, sizes, names = ExportReport(), [], {}, {}
    asked: set = set()  # (frame, question): clients asking alike give one sample, not several
    topics = {"camera_topic": options.camera_topic, "command_topic": options.command_topic,
              "detections_topic": options.detections_topic}
    for episode in _episodes(options.bags, topics, report, say):
        problem = _episode_problem(episode)
        polygon, parts = (mask_polygon(episode.detection.mask) if not problem else (None, 0))
        if not problem and polygon is None:
            problem = "mask too small for a polygon"
        key = (str(episode.bag), episode.stamp_ns, episode.frame_id)
        question = (key, episode.instruction, episode.question_type, str(episode.options))
        if not problem and question in asked:
            problem = "the same question on the same frame was exported already"
        if problem:
            report.skipped[problem.split(":")[0]] += 1
            say(f"skipped {episode.bag.name} {episode.instruction[:60]!r}: {problem}")
            continue
        asked.add(question)
        if parts > 1:
            report.skipped["mask parts dropped, the largest kept"] += parts - 1
        if key not in names:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{episode.bag.stem}_{episode.stamp_ns}")
            names[key] = f"images/{safe}_{len(names):05d}.png"
            if not cv2.imwrite(str(out / names[key]),
                               cv2.cvtColor(episode.image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {out / names[key]} (disk full?)")
            sizes[names[key]] = (episode.image.shape[1], episode.image.shape[0])
        records.append(_record(episode, names[key], polygon))
    report.records, report.frames = len(records), len(names)
    (out / "annotations.json").write_text(json.dumps({"annotations": records}, indent=1))
    (out / "coco.json").write_text(json.dumps(to_coco(records, sizes), indent=1))
    return report


def import_coco(coco: str | Path, out_file: str | Path, images: Optional[str] = None,
                say=print) -> Counter:
    """Corrected COCO -> FineRS-4k JSON at ``out_file``; returns the skipped counts."""
    coco, out_file = Path(coco), Path(out_file)
    try:
        document = json.loads(coco.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read COCO file {coco}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("annotations"), list):
        raise DatasetError(f"{coco}: not a COCO document (no 'annotations' list)")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    records, skipped = from_coco(document, Path(images) if images else coco.parent,
                                 out_file.parent)
    out_file.write_text(json.dumps({"annotations": records}, indent=1))
    text = f"imported {len(records)} record(s) into {out_file}"
    if skipped:
        text += "; skipped " + ", ".join(f"{n} ({why})" for why, n in skipped.items())
    say(text)
    return Counter(records=len(records), **skipped)


def make_parser() -> argparse.ArgumentParser:
    summary = __doc__.strip().split("\n")[0]
    parser = argparse.ArgumentParser(prog="finers-dataset", description=summary)
    commands = parser.add_subparsers(dest="command", required=True)
    ex = commands.add_parser("export", help="bags -> frames + FineRS-4k JSON + COCO")
    ex.add_argument("bags", nargs="+", help="rosbag2 folders, .mcap/.db3 files, folders of bags")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--camera-topic", help="camera topic (default: the bag's only one)")
    ex.add_argument("--command-topic", help="instruction topic (default: .../finers/command)")
    ex.add_argument("--detections-topic", help="Detection topic (default: .../finers/detections)")
    im = commands.add_parser("import", help="corrected COCO polygons -> FineRS-4k JSON")
    im.add_argument("coco", help="COCO JSON with polygon segmentations")
    im.add_argument("--out", required=True, help="FineRS-4k JSON to write")
    im.add_argument("--images", help="folder COCO file_name is relative to (default: its folder)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.command == "export":
            report = export(ExportOptions(args.bags, args.out, args.camera_topic,
                                          args.command_topic, args.detections_topic))
            print(report.summary(Path(args.out)))
            return 0 if report.records else 1
        counts = import_coco(args.coco, args.out, args.images)
        return 0 if counts["records"] else 1
    except (BagError, DatasetError, OSError) as exc:  # OSError: the output cannot be written
        print(f"finers-dataset: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
