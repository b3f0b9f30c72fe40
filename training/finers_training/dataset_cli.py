"""
``finers-dataset``: robot bags -> FineRS-4k + COCO to label, labels back, train/val split.

``finers-dataset export BAG... --out DIR`` writes every episode (an instruction and the frame
it was answered on, else the first frame at or after it) whose frame is in the bag:
``DIR/images/`` (each frame once, PNG), ``DIR/annotations.json`` (FineRS-4k records
pre-annotated with the node's answers: mask -> polygon, box, answer text), ``DIR/coco.json``
(those as COCO polygons, plus every frame left to label as an image without annotation,
listing its questions) and ``DIR/episodes.json`` (every exported episode, ``episodes.py``).
Episodes without a Detection, ones the node found nothing for and ones without a mask are
the frames a person most needs to label: they are exported to label and counted.
``finers-dataset import COCO --out FILE`` reads labelled COCO polygons back into FineRS-4k
JSON (see ``import_coco``). ``finers-dataset split`` cuts records into train and val by bag
or episode (``split.py``). Whatever cannot be used is skipped, named on one line each, and
counted in the summary; exit status 1 when nothing was usable.
The same question asked again of the same frame (several clients) is exported once.
"""
from __future__ import annotations

import argparse
import hashlib
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

from .bags import BagEpisode, BagEpisodes, BagError, BagTopicsError, bag_paths
from .coco import area_percent, finers_question_type, from_coco, mask_polygon, to_coco
from .episodes import (
    EPISODES, PRE_ANNOTATED, TO_LABEL, find_export, read_by_frame, restore_missing, unlabelled,
    write_episodes)
from .split import GROUPINGS, write_split


@dataclass
class ExportOptions:
    bags: List[str]
    out: str
    camera_topic: Optional[str] = None  # default: the bag's one camera topic
    command_topic: Optional[str] = None  # default: the topic ending in finers/command
    detections_topic: Optional[str] = None  # default: the topic ending in finers/detections
    force: bool = False  # export into a folder that already holds files (the export's replaced)


@dataclass
class ExportReport:
    records: int = 0  # pre-annotated episodes
    frames: int = 0
    to_label: Counter = field(default_factory=Counter)  # episodes left to a person, by reason
    skipped: Counter = field(default_factory=Counter)

    @property
    def episodes(self) -> int:
        return self.records + sum(self.to_label.values())

    def summary(self, out: Path) -> str:
        text = (f"exported {self.episodes} episode(s) on {self.frames} frame(s) to {out}: "
                f"{self.records} pre-annotated, {sum(self.to_label.values())} to label")
        if self.to_label:
            text += " (" + ", ".join(f"{n} {why}" for why, n in self.to_label.items()) + ")"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} ({why})" for why, n in self.skipped.items())
        return text


def _episode_problem(episode: BagEpisode) -> str:
    """Why an episode cannot be exported at all; empty when it can."""
    if episode.problem:
        return episode.problem
    try:
        finers_question_type(episode.question_type)
    except ValueError as exc:
        return f"unknown question type: {exc}"
    return ""


def _label_reason(episode: BagEpisode) -> str:
    """Say why the node's answer gives no pre-annotation (it is to label); empty if it does."""
    detection = episode.detection
    if detection is None:
        return "no Detection"
    if not detection.found:
        return "the node found nothing"
    if detection.mask is None or not detection.mask.any():
        return "found, but the Detection carries no mask"
    if detection.mask.shape != episode.image.shape[:2]:
        return (f"Detection mask {detection.mask.shape[1]}x{detection.mask.shape[0]} differs "
                f"from the frame {episode.image.shape[1]}x{episode.image.shape[0]}")
    return ""


def _source(episode: BagEpisode) -> dict:
    source = {"bag": str(episode.bag), "stamp_ns": episode.stamp_ns,
              "frame_id": episode.frame_id, "request_id": episode.request_id}
    if episode.detection is not None:
        source["backend"] = episode.detection.backend
        if not math.isnan(episode.detection.score):
            source["score"] = round(episode.detection.score, 4)
    return source


def _record(episode: BagEpisode, image_path: str, polygon: list) -> dict:
    """Build the FineRS-4k record of a pre-annotated episode (plus ``box`` and ``source``)."""
    detection = episode.detection
    height, width = episode.image.shape[:2]
    record = {"image_path": image_path, "Q": episode.instruction, "A": detection.answer,
              "Q-type": finers_question_type(episode.question_type), "points": polygon,
              "attribute": "", "area_percent": area_percent(polygon, (width, height)),
              "box": [round(v, 2) for v in detection.box], "source": _source(episode)}
    if record["Q-type"] == "option":
        record["options"] = episode.options or []
    return record


def _entry(episode: BagEpisode, image_path: str, record: Optional[dict], reason: str) -> dict:
    """Build the ``episodes.json`` entry of an exported episode (see ``episodes.py``)."""
    detection = episode.detection
    entry = {"image_path": image_path, "Q": episode.instruction,
             "Q-type": finers_question_type(episode.question_type),
             "A": detection.answer if detection else "",
             "node_found": detection.found if detection else None,
             "status": PRE_ANNOTATED if record else TO_LABEL, "source": _source(episode)}
    if entry["Q-type"] == "option":
        entry["options"] = episode.options or []
    if record:
        entry["record"] = record
    else:
        entry["reason"] = reason
    return entry


def _episodes(paths: List[str], topics: dict, report: ExportReport, say):
    """Episodes of every bag; a bag that cannot be read is named, counted and passed over."""
    for path in bag_paths(paths):
        episodes = BagEpisodes(path, **topics)
        try:
            number = -1
            for number, episode in enumerate(episodes):
                if number == 0 and episodes.note:
                    say(episodes.note)
                yield episode
            if number < 0:
                say(" ".join(filter(None, (episodes.note, f"{path}: no episode:",
                                           episodes.held))))
        except BagError as exc:
            wanted = isinstance(exc, BagTopicsError)
            report.skipped["bag without the wanted topics" if wanted else "unreadable bag"] += 1
            say(f"skipped bag {exc}")


def frame_name(episode: BagEpisode) -> str:
    """
    Name the episode's frame after its bag and header stamp (``images/<bag>_<stamp>.png``).

    The name depends on nothing else in the export, so labels made on one export still
    match the frames of another that holds the same bag. Two frames of one name (bags of
    one name in two folders, two ``frame_id`` at one stamp) are told apart by
    ``_write_frame`` with a short hash of the bag path and ``frame_id``.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{episode.bag.stem}_{episode.stamp_ns}")
    return f"images/{safe}.png"


def _write_frame(out: Path, episode: BagEpisode, names: dict, sizes: dict) -> str:
    """Write the episode's frame once (PNG under ``images/``); its path relative to ``out``."""
    key = (str(episode.bag), episode.stamp_ns, episode.frame_id)
    if key not in names:
        name = frame_name(episode)
        if name in names.values():  # same bag name and stamp: another bag or frame_id
            digest = hashlib.sha1(f"{episode.bag.resolve()}|{episode.frame_id}".encode())
            name = name[:-len(".png")] + f"_{digest.hexdigest()[:8]}.png"
        names[key] = name
        if not cv2.imwrite(str(out / names[key]),
                           cv2.cvtColor(episode.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {out / names[key]} (disk full?)")
        sizes[names[key]] = (episode.image.shape[1], episode.image.shape[0])
    return names[key]


EXPORT_FILES = ("annotations.json", "coco.json", EPISODES)


def clear_output(out: Path, force: bool) -> None:
    """
    Make ``out`` ready for an export: refuse one that holds files, unless ``force``.

    A person corrects ``coco.json`` in place; an export over it would replace their labels
    and leave frames of the earlier export behind. With ``force`` the export's own files
    (the three JSON files and ``images/``) are removed first; anything else is kept.
    """
    if not out.is_dir() or not any(out.iterdir()):
        return
    frames = [p for p in (out / "images").glob("*") if p.is_file()]
    held = [name for name in EXPORT_FILES if (out / name).exists()]
    others = [p.name for p in out.iterdir() if p.name not in EXPORT_FILES + ("images",)]
    if not force:
        what = held + ([f"{len(frames)} frame(s) in images/"] if frames else []) + others
        raise DatasetError(
            f"--out {out} is not empty ({', '.join(what)}): an export there would replace "
            "them (labels corrected in coco.json would be lost); use an empty folder, or "
            "--force to replace the export's files")
    for name in held:
        (out / name).unlink()
    for frame in frames:
        frame.unlink()


def export(options: ExportOptions, say=print) -> ExportReport:
    """
    Write every usable episode's frame, FineRS-4k JSON, COCO and ``episodes.json`` to ``out``.

    Episodes the node answered with a mask are pre-annotated (``annotations.json`` and COCO
    polygons); the others (no Detection, nothing found, no mask) are exported to label: their
    frame is a COCO image without annotation, listing its questions. Only episodes without a
    frame or question (node errors, frames not recorded, malformed Detections) are skipped.
    """
    out = Path(options.out)
    clear_output(out, options.force)
    (out / "images").mkdir(parents=True, exist_ok=True)
    report, records, entries, sizes, names = ExportReport(), [], [], {}, {}
    asked: set = set()  # (frame, question): clients asking alike give one sample, not several
    topics = {"camera_topic": options.camera_topic, "command_topic": options.command_topic,
              "detections_topic": options.detections_topic}
    for episode in _episodes(options.bags, topics, report, say):
        problem = _episode_problem(episode)
        key = (str(episode.bag), episode.stamp_ns, episode.frame_id)
        question = (key, episode.instruction, episode.question_type, str(episode.options))
        if not problem and question in asked:
            problem = "the same question on the same frame was exported already"
        if problem:
            report.skipped[problem.split(":")[0]] += 1
            say(f"skipped {episode.bag.name} {episode.instruction[:60]!r}: {problem}")
            continue
        asked.add(question)
        reason = _label_reason(episode)
        polygon, parts = mask_polygon(episode.detection.mask) if not reason else (None, 0)
        if not reason and polygon is None:
            reason = "mask too small for a polygon"
        if parts > 1:
            report.skipped["mask parts dropped, the largest kept"] += parts - 1
        image_path = _write_frame(out, episode, names, sizes)
        record = _record(episode, image_path, polygon) if polygon else None
        if record:
            records.append(record)
        else:
            report.to_label[reason.split(" differs")[0]] += 1
            say(f"to label {episode.bag.name} {episode.instruction[:60]!r}: {reason}")
        entries.append(_entry(episode, image_path, record, reason))
    report.records, report.frames = len(records), len(names)
    by_frame: dict = {}
    for entry in entries:
        by_frame.setdefault(entry["image_path"], []).append(entry)
    (out / "annotations.json").write_text(json.dumps({"annotations": records}, indent=1))
    (out / "coco.json").write_text(json.dumps(to_coco(records, sizes, by_frame), indent=1))
    write_episodes(out, entries)
    return report


def import_coco(coco: str | Path, out_file: str | Path, images: Optional[str] = None,
                say=print, drop_missing: bool = False) -> Counter:
    """
    Corrected COCO -> FineRS-4k JSON at ``out_file``; returns the counts.

    With the export's ``episodes.json`` (next to the COCO file or in ``images``) the records
    get their episode's question when the tool dropped it, and their ``source``; a
    pre-annotation whose frame the corrected file holds without it was deleted by the person
    (left out); one whose frame the file does not hold is kept (``drop_missing``: left
    out), counted either way. Each annotation that cannot be used is named on one line.
    Nothing imported: ``out_file`` is left as it was.
    """
    coco, out_file = Path(coco), Path(out_file)
    try:
        document = json.loads(coco.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read COCO file {coco}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("annotations"), list):
        raise DatasetError(f"{coco}: not a COCO document (no 'annotations' list)")
    base = Path(images) if images else coco.parent
    listed = find_export(base, coco.parent)
    by_frame = read_by_frame(listed) if listed else {}
    mentioned: set = set()
    records, skipped = from_coco(document, base, out_file.parent, by_frame, mentioned, say)
    if not listed and skipped["no question attribute"]:
        say(f"{EPISODES} not found next to {coco} or in {base}: "
            f"{skipped['no question attribute']} annotation(s) without a question attribute "
            "could not take their frame's exported question")
    images = document.get("images", [])
    frames = {Path(str(image.get("file_name", ""))).name for image in images
              if isinstance(image, dict)}
    if listed:
        def image_of(entry: dict) -> str:
            path = (listed.parent / entry["image_path"]).resolve()
            try:
                return str(path.relative_to(out_file.parent.resolve()))
            except ValueError:
                return str(path)

        records = restore_missing(records, by_frame, mentioned, frames, image_of,
                                  drop_missing, skipped)
        left = unlabelled(by_frame, mentioned)
        if left:
            skipped["episode(s) still to label"] += left
    details = ("; " + ", ".join(f"{n} ({why})" for why, n in skipped.items())
               if skipped else "")
    if not records:
        say(f"nothing imported: {out_file} left as it was{details}")
        return Counter(records=0, **skipped)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({"annotations": records}, indent=1))
    say(f"imported {len(records)} record(s) into {out_file}{details}")
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
    ex.add_argument("--force", action="store_true",
                    help="export into a folder that is not empty, replacing an earlier "
                         "export's JSON files and frames")
    im = commands.add_parser("import", help="corrected COCO polygons -> FineRS-4k JSON")
    im.add_argument("coco", help="COCO JSON with polygon segmentations")
    im.add_argument("--out", required=True, help="FineRS-4k JSON to write")
    im.add_argument("--images", help="folder COCO file_name is relative to (default: its folder)")
    im.add_argument("--drop-missing", action="store_true",
                    help="leave out pre-annotations whose frame the corrected file does not "
                         "hold (default: keep the node's, counted)")
    sp = commands.add_parser("split", help="FineRS-4k JSON -> train.json + val.json")
    sp.add_argument("annotations", help="FineRS-4k JSON (an import's output)")
    sp.add_argument("--out", required=True, help="folder for train.json and val.json")
    sp.add_argument("--by", choices=GROUPINGS, default="bag",
                    help="keep each bag (default) or each episode's frame on one side")
    sp.add_argument("--val-fraction", type=float, default=0.2, help="share of groups in val")
    sp.add_argument("--seed", type=int, default=0, help="another seed, another split")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.command == "export":
            report = export(ExportOptions(args.bags, args.out, args.camera_topic,
                                          args.command_topic, args.detections_topic,
                                          args.force))
            print(report.summary(Path(args.out)))
            return 0 if report.episodes else 1
        if args.command == "split":
            print(write_split(Path(args.annotations), Path(args.out), args.val_fraction,
                              args.by, args.seed)[2])
            return 0
        counts = import_coco(args.coco, args.out, args.images, drop_missing=args.drop_missing)
        return 0 if counts["records"] else 1
    except (BagError, DatasetError, OSError) as exc:  # OSError: the output cannot be written
        print(f"finers-dataset: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
