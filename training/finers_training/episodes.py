"""
``episodes.json``: every episode an export wrote, labelled by the node or left to a person.

An export lists each exported episode (one instruction and its frame) once:
``{"episodes": [entry, ...]}``, an entry holding ``image_path`` (relative to the export
folder), ``Q``, ``Q-type``, ``options`` (option questions), ``A`` (the node's answer, empty
without a Detection), ``node_found`` (None without a Detection), ``status``
(``pre-annotated`` | ``to label``), ``reason`` (why it is to label) and ``source`` (bag, frame
stamp, request id). A pre-annotated entry also holds its FineRS-4k ``record``.

Annotation tools keep polygons but often drop everything else; on import this list gives an
annotation without a question its frame's question, each record its ``source`` (a split by
bag needs it) and back the node's pre-annotation of a frame the corrected file left out.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from finers_ros.data.annotations import DatasetError

EPISODES = "episodes.json"
PRE_ANNOTATED = "pre-annotated"
TO_LABEL = "to label"


def write_episodes(folder: Path, entries: List[dict]) -> Path:
    path = Path(folder) / EPISODES
    path.write_text(json.dumps({"episodes": entries}, indent=1))
    return path


def find_export(*folders: Optional[Path]) -> Optional[Path]:
    """Find the first of ``folders`` holding an export's ``episodes.json``; None if none does."""
    for folder in folders:
        if folder is not None and (Path(folder) / EPISODES).is_file():
            return Path(folder) / EPISODES
    return None


def read_by_frame(path: Path) -> Dict[str, List[dict]]:
    """Return the entries of ``episodes.json`` by their frame's file name (no folder)."""
    try:
        entries = json.loads(Path(path).read_text())["episodes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot read the export's episode list {path}: {exc}") from exc
    by_frame: Dict[str, List[dict]] = {}
    for entry in entries:
        by_frame.setdefault(Path(entry["image_path"]).name, []).append(entry)
    return by_frame


def restore_missing(records: List[dict], by_frame: Dict[str, List[dict]], mentioned: set,
                    frames: set, image_of, drop: bool, counts: Counter) -> List[dict]:
    """
    Add back each pre-annotation whose frame the corrected file leaves out (unless ``drop``).

    A frame the corrected file holds without an annotation for a pre-annotated question
    was seen and its polygon deleted: the node's answer was wrong, and it stays deleted. A
    frame it does not hold at all was skipped (or lost by the tool): the node's
    pre-annotation is kept, as "the node was right", rather than turned into no label.
    ``mentioned`` holds (frame file name, question) of the corrected file's annotations,
    ``frames`` the file names of its images; ``image_of(entry)`` gives the record's
    ``image_path``. Each is counted: deleted, kept or left out.
    """
    restored = []
    for frame, entries in by_frame.items():
        for entry in entries:
            if entry["status"] != PRE_ANNOTATED or (frame, entry["Q"]) in mentioned:
                continue
            if frame in frames:
                counts["pre-annotation deleted: its frame has no annotation for it"] += 1
                continue
            if drop:
                counts["pre-annotation left out: its frame is not in the corrected file"] += 1
                continue
            counts["pre-annotation kept: its frame is not in the corrected file"] += 1
            restored.append({**entry["record"], "image_path": image_of(entry),
                             "source": entry["source"]})
    return records + restored


def unlabelled(by_frame: Dict[str, List[dict]], mentioned: set) -> int:
    """Count the to-label episodes the corrected file still has no annotation for."""
    return sum(entry["status"] == TO_LABEL and (frame, entry["Q"]) not in mentioned
               for frame, entries in by_frame.items() for entry in entries)
