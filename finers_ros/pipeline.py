"""
FineRS cascade on one frame: GSE -> crop -> LPR -> segmenter -> full-resolution mask.

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
from .prompts import format_options, gse_prompt, lpr_prompt, normalize_question_type
from .result import FineRSResult
from .segmenters import Segmenter, build_segmenter
from .stages import VisionLanguageModel, build_stage_models

MIN_SIDE = 16  # frames smaller than this cannot hold a FineRS target


class StageFailure(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def instruction_problem(instruction, max_chars: int) -> Optional[str]:
    """Why an instruction cannot be served (empty, too long, not text), or None."""
    if instruction is not None and not isinstance(instruction, str):
        return f"instruction must be text, got {type(instruction).__name__}"
    if instruction is None or not instruction.strip():
        return "empty instruction"
    if len(instruction) > max_chars:
        return f"instruction too long ({len(instruction)} characters, limit {max_chars})"
    return None


def validate_image(image) -> np.ndarray:
    """Return an ``H x W x 3 uint8 RGB`` array, or raise StageFailure('input', why)."""
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

    def __init__(
        self,
        gse: VisionLanguageModel,
        lpr: VisionLanguageModel,
        segmenter: Segmenter,
        config: Optional[PipelineConfig] = None,
    ):
        self.gse = gse
        self.lpr = lpr
        self.segmenter = segmenter
        self.config = config or PipelineConfig()

    @classmethod
    def from_config(cls, config: PipelineConfig | str | None = None) -> "FineRSPipeline":
        """
        Build from a config object or YAML path (None: the bring-up defaults).

        Raises ConfigError / CheckpointError when a backend cannot be loaded.
        """
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
        """
        Run each stage once on a blank frame; return the seconds it took.

        So the first real request does not pay for lazy initialisation (kernels, colour tables).
        """
        start = time.perf_counter()
        geometry = self.config.geometry
        blank_gse = np.zeros((geometry.gse_size[1], geometry.gse_size[0], 3), np.uint8)
        blank_lpr = np.zeros((geometry.lpr_size[1], geometry.lpr_size[0], 3), np.uint8)
        self.gse.generate(blank_gse, gse_prompt("find the object"))
        if self.lpr is not self.gse:
            self.lpr.generate(blank_lpr, lpr_prompt("find the object"))
        side = geometry.crop_size
        crop = np.zeros((side, side, 3), np.uint8)
        self.segmenter.segment(
            crop, (side / 4, side / 4, side / 2, side / 2), [(side * 3 / 8, side * 3 / 8)] * 2
        )
        return time.perf_counter() - start

    def close(self) -> None:
        for part in {id(p): p for p in (self.gse, self.lpr, self.segmenter)}.values():
            part.close()

    def run(
        self,
        image: np.ndarray,
        instruction: str,
        question_type: str = "referring",
        options: Sequence[str] | str | None = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> FineRSResult:
        """
        Run the cascade on one request.

        ``progress(stage)`` is called before each stage (gse, lpr, segment); an exception it
        raises (e.g. to cancel) propagates to the caller: the one way ``run`` raises.
        """
        result = FineRSResult(
            instruction=instruction if isinstance(instruction, str) else "",
            backend=self.backend_name,
        )
        start = time.perf_counter()
        try:
            self._run(
                result,
                image,
                instruction,
                question_type,
                options,
                progress or (lambda stage: None),
            )
        except StageFailure as failure:  # found stays False: it is set only after the mask
            result.error, result.error_stage = " ".join(str(failure).split())[:500], failure.stage
        result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        return result

    @contextmanager
    def _stage(self, result: FineRSResult, name: str, progress: Callable[[str], None]):
        """Call a model: ``progress(name)`` first, timed into ``timings_ms[name]``, guarded."""
        progress(name)
        start = time.perf_counter()
        try:
            with _guard(name):
                yield
        finally:
            result.timings_ms[name] = (time.perf_counter() - start) * 1000.0

    def _run(self, result, image, instruction, question_type, options, progress) -> None:
        geometry = self.config.geometry
        problem = instruction_problem(instruction, self.config.max_instruction_chars)
        if problem:
            raise StageFailure("input", problem)
        with _guard("input"):
            try:
                kind = normalize_question_type(question_type)
                if kind == "option":
                    shown = len(format_options(options))
                    if shown > self.config.max_instruction_chars:
                        raise StageFailure("input", f"options too long ({shown} characters, "
                                                    f"limit {self.config.max_instruction_chars})")
                gse_text_prompt = gse_prompt(instruction, kind, options)
                lpr_text_prompt = lpr_prompt(instruction, kind, options)
            except (ValueError, TypeError, AttributeError) as exc:
                raise StageFailure("input", f"bad question: {exc}") from exc
            image = validate_image(image)
            native = (image.shape[1], image.shape[0])
            result.image_size = native

        with self._stage(result, "gse", progress):
            generation = self.gse.generate(
                geo.resize_image(image, geometry.gse_size), gse_text_prompt
            )
        with _guard("gse"):
            result.gse_text = _text_of(generation, "gse")
            _record_generation(result, "gse", generation)
            gse = _parse(parse_gse, result.gse_text, "gse", generation, kind)
            result.answer = gse.response
            if not gse.found:
                return
            crop, region, centre = _gse_crop(gse.bbox, native, geometry)
            result.region, result.crop = region, crop
            crop_pixels = crop.cut(image)
            lpr_image = geo.resize_image(crop_pixels, geometry.lpr_size)
            hints = {}
            if getattr(self.lpr, "uses_focus", False):  # see VisionLanguageModel
                hints["focus"] = geo.native_to_lpr_point(centre, crop, geometry.lpr_size)

        with self._stage(result, "lpr", progress):
            generation = self.lpr.generate(lpr_image, lpr_text_prompt, **hints)
        with _guard("lpr"):
            result.lpr_text = _text_of(generation, "lpr")
            _record_generation(result, "lpr", generation)
            lpr = _parse(parse_lpr, result.lpr_text, "lpr", generation, kind)
            if not lpr.found:
                return
            box_crop, points_crop = _lpr_prompts(lpr, crop, geometry.lpr_size)
            result.box = geo.crop_to_native_box(box_crop, crop)
            result.points = [geo.crop_to_native_point(p, crop) for p in points_crop]

        with self._stage(result, "segment", progress):
            segmentation = self.segmenter.segment(
                np.ascontiguousarray(crop_pixels), box_crop, points_crop
            )
        with _guard("segment"):
            mask = np.asarray(segmentation.mask)
            if mask.shape != (crop.height, crop.width):
                raise StageFailure(
                    "segment",
                    f"segmenter returned a {mask.shape} mask for a "
                    f"{crop.width}x{crop.height} crop",
                )
            result.score = _finite_or_none(segmentation.score)
            if not mask.any():
                # A 0-pixel mask finds nothing, whatever the LPR said.
                raise StageFailure(
                    "segment",
                    "empty mask: the segmenter found no object pixels in "
                    f"the LPR box {[round(v, 1) for v in result.box]}",
                )
            result.mask = geo.paste_mask(mask.astype(bool), crop, native)
        result.found = True


@contextmanager
def _guard(stage: str):
    """
    Turn any exception inside into ``StageFailure(stage, one line)``.

    A model, a parser or a map that throws on odd input must not take the caller down.
    """
    try:
        yield
    except StageFailure:
        raise
    except Exception as exc:
        try:
            detail = str(exc)
        except Exception:  # e.g. an int past Python's digit limit in the message
            detail = "(message cannot be printed)"
        raise StageFailure(stage, f"{stage} failed: {type(exc).__name__}: {detail}") from exc


def _text_of(generation, stage: str) -> str:
    text = getattr(generation, "text", None)
    if not isinstance(text, str):
        raise StageFailure(stage, f"{stage} model returned {type(text).__name__}, not text")
    return text


def _record_generation(result: FineRSResult, stage: str, generation) -> None:
    """
    Record prompt tokens, prefill and decode time, when the backend measured them separately.

    And a backend's own times (``generation.timings_ms``) as ``{stage}_{name}_ms``.
    """
    for name, value in (getattr(generation, "timings_ms", None) or {}).items():
        result.timings_ms[f"{stage}_{name}_ms"] = float(value)
    prefill = getattr(generation, "prefill_seconds", None)
    decode = getattr(generation, "decode_seconds", None)
    if prefill is None or decode is None:
        return
    result.timings_ms[f"{stage}_prompt_tokens"] = float(generation.prompt_tokens)
    result.timings_ms[f"{stage}_generated_tokens"] = float(generation.generated_tokens)
    result.timings_ms[f"{stage}_prefill_ms"] = prefill * 1000.0
    result.timings_ms[f"{stage}_decode_ms"] = decode * 1000.0


def _parse(parse, text: str, stage: str, generation, kind: str):
    """
    Parse the stage's answer.

    A text cut by the token limit is reported as such, not as unparsable (the fix is a larger
    ``max_new_tokens``, not a better model).
    """
    try:
        return parse(text, kind)
    except ParseError as exc:
        if getattr(generation, "truncated", False):
            raise StageFailure(
                stage,
                f"{stage.upper()} answer cut at max_new_tokens "
                f"({generation.generated_tokens} tokens): {exc.reason}",
            ) from exc
        if getattr(exc, "truncated", False):
            raise StageFailure(stage, f"{stage.upper()} answer cut short: {exc.reason}") from exc
        raise StageFailure(stage, f"unparsable {stage.upper()} output: {exc.reason}") from exc


def _finite_or_none(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _gse_crop(bbox, native, geometry) -> tuple:
    """
    Place the LPR crop for a GSE box in the GSE frame; native pixels.

    Returns (LPR crop window, region clipped to the frame, the region's centre).

    The crop is placed around the region as the model gave it; only the reported region is
    clipped. A region with non-finite corners or none of its pixels in the frame is a GSE
    failure (there is nothing to refine).
    """
    if not geo.is_finite_box(bbox):
        raise StageFailure("gse", f"GSE box {list(bbox)} has non-finite coordinates")
    region = geo.gse_to_native_box(bbox, native, geometry.gse_size)
    if not geo.is_finite_box(region) or not geo.overlaps_frame(region, native):
        raise StageFailure(
            "gse",
            f"GSE box {[float(v) for v in bbox]} lies outside the "
            f"{geometry.gse_size[0]}x{geometry.gse_size[1]} GSE frame",
        )
    crop = geo.crop_for_region(region, native, geometry.crop_size)
    return crop, geo.clip_box(region, native), geo.box_centre(region)


def _lpr_prompts(lpr, crop: geo.CropWindow, lpr_size) -> tuple:
    """
    (box, points) for the segmenter, in crop pixels.

    The box is clipped to the crop; a box with no pixel in the crop is an LPR failure. Points
    are positive clicks on the object the box frames, so a point outside the (clipped) box
    is moved onto its nearest pixel; the FineRS point reward teaches the model to keep them
    inside the box.
    """
    crop_size = (crop.width, crop.height)
    if not geo.is_finite_box(lpr.bbox) or not all(geo.is_finite_box((*p, *p)) for p in lpr.points):
        raise StageFailure("lpr", "LPR box or points have non-finite coordinates")
    box = geo.lpr_to_crop_box(lpr.bbox, crop, lpr_size)
    if not geo.is_finite_box(box) or not geo.overlaps_frame(box, crop_size):
        raise StageFailure(
            "lpr",
            f"LPR box {[float(v) for v in lpr.bbox]} lies outside the "
            f"{lpr_size[0]}x{lpr_size[1]} LPR frame",
        )
    box = geo.clip_box(box, crop_size)
    points = [geo.clip_point(geo.lpr_to_crop_point(p, crop, lpr_size), box) for p in lpr.points]
    return box, points
