"""
The retrospective target: which GSE region lets the trained LPR find the object best.

Offline (``search``, reference section 4): for each sample the LPR answers 5 candidate
regions (1 centred on the GT box, 4 random placements holding it); the region whose
mapped-back LPR box has the highest IoU with the GT box becomes ``best_region``. Ties go to
the centred region (listed first), so a sample on which the LPR finds nothing keeps a
region that holds the target.

A candidate is what the GSE is asked to answer: a 256x256 box of the nominal GSE frame
(1920x1080) holding the GT box, and the LPR answers the node's crop of it
(``geometry.crop_for_region``: 512 native px, or the region itself where that is larger).
The reference searched 512-native windows and scaled them to the GSE frame: 256 px there
only for 3840-wide frames (511 px at 1080p, 128 px at 8K), so on other frames answering
``best_region`` exactly failed the size term. On a 3840x2160 frame both are the same.

Online (``OnlineRetrospectiveReward``): each GSE rollout's region is cropped from the native
frame the way the node crops it, a frozen LPR answers the crop, and the reward is the IoU of
its mapped-back box with the GT box: the joint coupling the reference left unfinished.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from finers_ros import geometry as geo
from finers_ros.data.annotations import DatasetError, load_annotations, read_rgb
from finers_ros.parsing import ParseError, parse_gse, parse_lpr
from finers_ros.prompts import lpr_prompt

from .config import TrainConfig
from .data import gse_gt_box, gt_box, random_window
from .generation import FrozenModel, lpr_token_budget
from .rewards import GSE_REGION_PX, completion_text, rows

RANDOM_WINDOWS = 4


def candidate_regions(
    box: geo.Box, native: geo.Size, gse_size: geo.Size, rng: np.random.Generator
) -> List[geo.Box]:
    """
    List the GSE-frame regions to try for a native GT ``box``: the centred one, then random.

    Each is ``[x, y, x + 256, y + 256]`` in the GSE frame (the prompt's and the size term's
    region) holding the GT box, inside the frame; an object larger than 256 GSE px gets a
    square as large as it.
    """
    gt = gse_gt_box(box, native, gse_size)
    side = GSE_REGION_PX + 1  # pixels: an inclusive box [x, x + 256] spans 257
    centred = geo.crop_for_region(gt, gse_size, side)
    if not centred.contains_box(gt):  # rounding at the object's own size
        centred = random_window(gt, gse_size, side, rng)
    windows = [centred] + [random_window(gt, gse_size, side, rng) for _ in range(RANDOM_WINDOWS)]
    return [tuple(float(v) for v in w.box) for w in windows]


def region_crop(region: geo.Box, native: geo.Size, config: TrainConfig) -> geo.CropWindow:
    """Return the node's LPR crop (native window) for a GSE-frame region."""
    native_region = geo.gse_to_native_box(region, native, config.gse_size)
    return geo.crop_for_region(native_region, native, config.crop_size)


def lpr_native_box(
    text: str, window: geo.CropWindow, lpr_size: geo.Size
) -> Tuple[Optional[geo.Box], str]:
    """(native box, status) of an LPR answer on ``window``; status ok | not_found | unparsable."""
    try:
        answer = parse_lpr(text)
    except ParseError:
        return None, "unparsable"
    if not answer.found or answer.bbox is None or not all(np.isfinite(answer.bbox)):
        return None, "not_found" if not answer.found else "unparsable"
    crop_box = geo.clip_box(
        geo.lpr_to_crop_box(answer.bbox, window, lpr_size), (window.width, window.height)
    )
    return geo.crop_to_native_box(crop_box, window), "ok"


def lpr_image(image: np.ndarray, window: geo.CropWindow, lpr_size: geo.Size) -> np.ndarray:
    """Return a window's LPR input: its native pixels resized to the LPR frame (as the node)."""
    return geo.resize_image(np.ascontiguousarray(window.cut(image)), lpr_size)


def _best(ious: Sequence[float]) -> int:
    return int(np.argmax(ious))  # first maximum: the centred window on ties


def read_partial(partial: Path) -> dict:
    """Finished samples of an earlier run by index; a line cut by a kill mid-write is redone."""
    done = {}
    if partial.is_file():
        for line in partial.read_text().splitlines():
            try:
                entry = json.loads(line)
                done[int(entry["index"])] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return done


def search_model(config: TrainConfig) -> FrozenModel:
    """Load the search's trained LPR with the token budget it was trained to write."""
    checkpoint = config.search_checkpoint
    return FrozenModel(
        checkpoint,
        config.system_prompt,
        config.device,
        lpr_token_budget(checkpoint, config.search_max_new_tokens),
    )


def search(config: TrainConfig, out_path: Path, progress: bool = True) -> dict:
    """
    Add ``best_region`` (GSE frame) to every record; resumable through ``<out>.partial.jsonl``.

    Returns counts: samples, windows, unparsable, not_found, skipped (unreadable images,
    polygons off the image).
    """
    from tqdm import tqdm

    if not config.search_checkpoint:
        raise ValueError("search needs search_checkpoint (the trained LPR directory)")
    records = load_annotations(config.annotations, config.images_dir)
    if config.max_samples is not None:
        records = records[: config.max_samples]
    raw = json.loads(Path(config.annotations).read_text())["annotations"][: len(records)]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial.jsonl")
    done = read_partial(partial)
    model = search_model(config)
    todo = [i for i in range(len(records)) if i not in done]
    counts = {
        "samples": len(records),
        "windows": 0,
        "unparsable": 0,
        "not_found": 0,
        "skipped": 0,
        "resumed": len(done),
    }
    bar = tqdm(
        total=len(records),
        initial=len(done),
        desc="best-region search",
        unit="sample",
        disable=not progress,
    )
    with partial.open("a") as sink:
        if partial.stat().st_size and not partial.read_bytes().endswith(b"\n"):
            sink.write("\n")  # end a line cut by a kill, so the next entry stays whole
        for start in range(0, len(todo), max(1, config.search_batch_size)):
            batch = todo[start:start + config.search_batch_size]
            images, prompts, owners, windows, regions, targets = [], [], [], {}, {}, {}
            for index in batch:
                record = records[index]
                try:
                    image = read_rgb(record.image_path)
                    native = (image.shape[1], image.shape[0])
                    targets[index] = gt_box(record, native)  # clipped to the image
                except DatasetError as exc:
                    entry = {"index": index, "best_region": None, "error": str(exc)}
                    sink.write(json.dumps(entry) + "\n")
                    done[index] = entry
                    counts["skipped"] += 1
                    continue
                rng = np.random.default_rng([config.data_seed, index])
                regions[index] = candidate_regions(targets[index], native, config.gse_size, rng)
                windows[index] = [region_crop(r, native, config) for r in regions[index]]
                prompt = lpr_prompt(record.question, record.q_type, record.options)
                for window in windows[index]:
                    images.append(lpr_image(image, window, config.lpr_size))
                    prompts.append(prompt)
                    owners.append(index)
            texts = model.answer(images, prompts) if images else []
            for index in windows:
                own = [t for t, o in zip(texts, owners) if o == index]
                ious, statuses = [], []
                for text, window in zip(own, windows[index]):
                    box, status = lpr_native_box(text, window, config.lpr_size)
                    statuses.append(status)
                    ious.append(geo.box_iou(box, targets[index]) if box else 0.0)
                    counts["windows"] += 1
                    if status != "ok":
                        counts[status] += 1
                region = regions[index][_best(ious)]
                entry = {
                    "index": index,
                    "best_region": [round(v, 2) for v in region],
                    "ious": [round(v, 4) for v in ious],
                    "statuses": statuses,
                }
                sink.write(json.dumps(entry) + "\n")
                sink.flush()
                done[index] = entry
            bar.update(len(batch))
    bar.close()
    for index, (item, record) in enumerate(zip(raw, records)):
        # image paths stay valid next to the new JSON
        item["image_path"] = os.path.relpath(
            record.image_path.resolve(), out_path.parent.resolve()
        )
        if done.get(index, {}).get("best_region") is not None:
            item["best_region"] = done[index]["best_region"]
    out_path.write_text(json.dumps({"annotations": raw}, indent=1))
    return counts


class OnlineRetrospectiveReward:
    """
    TRL reward ``gse_retro_online``: IoU of a frozen LPR's box on each rollout's region.

    Sample columns: ``source_image`` (the native frame file), ``gt_box_native``, ``q_type``,
    ``question``, ``options_json``. An unparsable or not-found GSE or LPR answer scores 0.
    """

    __name__ = "gse_retro_online"

    def __init__(self, config: TrainConfig):
        self.config = config
        self._model: Optional[FrozenModel] = None
        self._frames: dict = {}
        self.counts = {"rollouts": 0, "gse_unusable": 0, "lpr_unusable": 0}

    @property
    def model(self) -> FrozenModel:
        if self._model is None:  # loaded on first use: the trainer may move processes first
            checkpoint = self.config.online_lpr_checkpoint
            self._model = FrozenModel(
                checkpoint,
                self.config.system_prompt,
                self.config.device,
                lpr_token_budget(checkpoint, self.config.online_lpr_max_new_tokens),
            )
            weights = sum(p.numel() for p in self._model.model.parameters())
            print(  # a model built inside ZeRO-3's partitioning would count 0 here
                f"online reward: frozen LPR {checkpoint} loaded, {weights} weights "
                f"on {self._model.device}"
            )
        return self._model

    def _frame(self, path: str) -> np.ndarray:
        if path not in self._frames:
            self._frames = {path: read_rgb(path)}  # rollouts of one prompt share a frame
        return self._frames[path]

    def region_window(self, completion: str, native: geo.Size) -> Optional[geo.CropWindow]:
        """Return the node's LPR crop for a GSE answer, or None when it has no usable region."""
        try:
            answer = parse_gse(completion)
        except ParseError:
            return None
        if not answer.found or answer.bbox is None or not all(np.isfinite(answer.bbox)):
            return None
        region = geo.gse_to_native_box(answer.bbox, native, self.config.gse_size)
        try:
            return geo.crop_for_region(region, native, self.config.crop_size)
        except ValueError:
            return None

    def __call__(self, prompts=None, completions=(), **columns) -> List[float]:
        model = self.model  # at the first call, rollouts with a region or not
        samples = rows(columns, len(completions))
        rewards = [0.0] * len(completions)
        images, prompts_lpr, jobs = [], [], []
        for i, (completion, sample) in enumerate(zip(completions, samples)):
            self.counts["rollouts"] += 1
            frame = self._frame(sample["source_image"])
            native = (frame.shape[1], frame.shape[0])
            window = self.region_window(completion_text(completion), native)
            if window is None:
                self.counts["gse_unusable"] += 1
                continue
            options = json.loads(sample.get("options_json") or "null")
            images.append(lpr_image(frame, window, self.config.lpr_size))
            prompts_lpr.append(lpr_prompt(sample["question"], sample["q_type"], options))
            jobs.append((i, window, tuple(sample["gt_box_native"])))
        texts = model.answer(images, prompts_lpr) if images else []
        boxes = 0
        for (i, window, gt), text in zip(jobs, texts):
            box, status = lpr_native_box(text, window, self.config.lpr_size)
            if box is None:
                self.counts["lpr_unusable"] += 1
                continue
            boxes += 1
            rewards[i] = geo.box_iou(box, gt)
        log_metric = columns.get("log_metric")
        if callable(log_metric) and completions:  # TRL averages these per logging step
            log_metric("online_retro/gse_region_usable", len(jobs) / len(completions))
            log_metric("online_retro/lpr_box_usable", boxes / len(completions))
        return rewards
