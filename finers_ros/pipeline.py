"""FineRS cascade on one frame: GSE -> crop -> LPR -> segmenter -> full-resolution mask.

``FineRSPipeline.run`` never raises for bad input or a failing stage: the result carries
``error`` (one line) and ``error_stage``; the raw model texts are kept for diagnosis.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Optional, Sequence

import numpy as np

from . import geometry as geo
from .config import PipelineConfig, load_config
from .parsing import ParseError, parse_gse, parse_lpr
from .prompts import gse_prompt, lpr_prompt, normalize_question_type
from .result import FineRSResult
from .segmenters import Segmenter, build_segmenter
from .stages import VisionLanguageModel, build_stage_models

MIN_SIDE = 16  # frames smaller than this cannot hold a FineRS target


class StageFailure(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def instruction_problem(instruction, max_chars: int) -> Optional[str]:
    """Why an instruction cannot be served (empty, too long), or None."""
    if not isinstance(instruction, str) or not instruction.strip():
        return "empty instruction"
    if len(instruction) > max_chars:
        return f"instruction too long ({len(instruction)} characters, limit {max_chars})"
    return None


def validate_image(image) -> np.ndarray:
    """An ``H x W x 3 uint8 RGB`` array, or StageFailure('input', why)."""
    if not isinstance(image, np.ndarray):
        raise StageFailure("input", f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise StageFailure("input", f"image must be H x W x 3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise StageFailure("input", f"image must be uint8, got {image.dtype}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise StageFailure("input", f"image too small: {image.shape[1]}x{image.shape[0]}")
    return image


class FineRSPipeline:
    """Injected parts: the GSE and LPR models and the segmenter (see ``from_config``)."""

    def __init__(self, gse: VisionLanguageModel, lpr: VisionLanguageModel, segmenter: Segmenter,
                 config: Optional[PipelineConfig] = None):
        self.gse = gse
        self.lpr = lpr
        self.segmenter = segmenter
        self.config = config or PipelineConfig()

    @classmethod
    def from_config(cls, config: PipelineConfig | str | None = None) -> "FineRSPipeline":
        """Build from a config object or YAML path (None: the bring-up defaults).
        Raises ConfigError / CheckpointError when a backend cannot be loaded."""
        if not isinstance(config, PipelineConfig):
            config = load_config(config)
        gse, lpr = build_stage_models(config)
        return cls(gse, lpr, build_segmenter(config.segmenter), config)

    @property
    def backend_name(self) -> str:
        names = [self.gse.name, self.lpr.name, self.segmenter.name]
        return "+".join(dict.fromkeys(names))

    @property
    def is_bringup(self) -> bool:
        return "bringup" in self.backend_name

    def warmup(self) -> float:
        """Run each stage once on a blank frame so the first real request does not pay for
        lazy initialisation (kernels, colour tables); returns the seconds it took."""
        start = time.perf_counter()
        geometry = self.config.geometry
        blank_gse = np.zeros((geometry.gse_size[1], geometry.gse_size[0], 3), np.uint8)
        blank_lpr = np.zeros((geometry.lpr_size[1], geometry.lpr_size[0], 3), np.uint8)
        self.gse.generate(blank_gse, gse_prompt("find the object"))
        if self.lpr is not self.gse:
            self.lpr.generate(blank_lpr, lpr_prompt("find the object"))
        side = geometry.crop_size
        crop = np.zeros((side, side, 3), np.uint8)
        self.segmenter.segment(crop, (side / 4, side / 4, side / 2, side / 2), [(side * 3 / 8, side * 3 / 8)] * 2)
        return time.perf_counter() - start

    def close(self) -> None:
        for part in {id(p): p for p in (self.gse, self.lpr, self.segmenter)}.values():
            part.close()

    def run(self, image: np.ndarray, instruction: str, question_type: str = "referring",
            options: Sequence[str] | str | None = None,
            progress: Optional[Callable[[str], None]] = None) -> FineRSResult:
        """``progress(stage)`` is called before each stage (gse, lpr, segment); an exception
        it raises (e.g. to cancel) propagates to the caller: the one way ``run`` raises."""
        result = FineRSResult(instruction=instruction if isinstance(instruction, str) else "",
                              backend=self.backend_name)
        start = time.perf_counter()
        try:
            self._run(result, image, instruction, question_type, options, progress or (lambda stage: None))
        except StageFailure as failure:  # found stays False: it is set only after the mask
            result.error, result.error_stage = str(failure), failure.stage
        result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        return result

    @contextmanager
    def _stage(self, result: FineRSResult, name: str, progress: Callable[[str], None]):
        progress(name)
        start = time.perf_counter()
        try:
            yield
        except StageFailure:
            raise
        except Exception as exc:  # a backend that throws must not take the caller down
            raise StageFailure(name, f"{name} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            result.timings_ms[name] = (time.perf_counter() - start) * 1000.0

    def _run(self, result, image, instruction, question_type, options, progress) -> None:
        geometry = self.config.geometry
        problem = instruction_problem(instruction, self.config.max_instruction_chars)
        if problem:
            raise StageFailure("input", problem)
        try:
            kind = normalize_question_type(question_type)
            gse_text_prompt = gse_prompt(instruction, kind, options)
            lpr_text_prompt = lpr_prompt(instruction, kind, options)
        except ValueError as exc:
            raise StageFailure("input", str(exc)) from exc
        image = validate_image(image)
        native = (image.shape[1], image.shape[0])
        result.image_size = native

        with self._stage(result, "gse", progress):
            generation = self.gse.generate(geo.resize_image(image, geometry.gse_size), gse_text_prompt)
            result.gse_text = generation.text
        gse = self._parse(parse_gse, generation.text, "gse")
        result.answer = gse.response
        if not gse.found:
            return
        region = geo.clip_box(geo.gse_to_native_box(gse.bbox, native, geometry.gse_size), native)
        result.region = region
        crop = geo.crop_for_region(region, native, geometry.crop_size)
        result.crop = crop
        crop_pixels = crop.cut(image)

        with self._stage(result, "lpr", progress):
            generation = self.lpr.generate(geo.resize_image(crop_pixels, geometry.lpr_size), lpr_text_prompt)
            result.lpr_text = generation.text
        lpr = self._parse(parse_lpr, generation.text, "lpr")
        if not lpr.found:
            return
        crop_size = (crop.width, crop.height)
        box_crop = geo.clip_box(geo.lpr_to_crop_box(lpr.bbox, crop, geometry.lpr_size), crop_size)
        points_crop = [geo.lpr_to_crop_point(p, crop, geometry.lpr_size) for p in lpr.points]
        result.box = geo.crop_to_native_box(box_crop, crop)
        result.points = [geo.crop_to_native_point(p, crop) for p in points_crop]

        with self._stage(result, "segment", progress):
            segmentation = self.segmenter.segment(np.ascontiguousarray(crop_pixels), box_crop, points_crop)
            result.mask = geo.paste_mask(segmentation.mask, crop, native)
            result.score = segmentation.score
        result.found = True

    @staticmethod
    def _parse(parse, text: str, stage: str):
        try:
            return parse(text)
        except ParseError as exc:
            raise StageFailure(stage, f"unparsable {stage.upper()} output: {exc.reason}") from exc
