import numpy as np
import pytest

from finers_ros.config import PipelineConfig
from finers_ros.data.annotations import gt_mask
from finers_ros.geometry import polygon_box
from finers_ros.pipeline import FineRSPipeline
from finers_ros.segmenters.bringup import BringupSegmenter
from finers_ros.stages.base import Generation
from finers_ros.stages.bringup import BringupModel


@pytest.fixture(scope="module")
def pipeline():
    return FineRSPipeline.from_config(None)


def test_bringup_finds_small_target_in_4k(pipeline, scene_4k):
    image, record = scene_4k
    result = pipeline.run(image, record["Q"])
    assert result.ok and result.found, result.error
    gt = gt_mask(record["points"], (3840, 2160))
    assert result.mask.shape == gt.shape
    assert (result.mask & gt).sum() / (result.mask | gt).sum() > 0.8
    gt_box = polygon_box(record["points"])
    assert result.crop.contains_box(gt_box) and result.crop.width == 512
    assert all(abs(a - b) <= 3 for a, b in zip(result.box, gt_box))
    assert result.answer == "The object is found." and "bringup" in result.backend
    assert {"gse", "lpr", "segment", "total"} <= set(result.timings_ms)


def test_not_found_is_not_an_error(pipeline, scene_4k):
    image, _ = scene_4k
    result = pipeline.run(image, "find the screw that holds the lid")
    assert result.ok and not result.found and result.mask is None
    assert "cannot ground" in result.gse_text


@pytest.mark.parametrize(
    "image, instruction, message",
    [
        (np.zeros((100, 100), np.uint8), "find the red screw", "H x W x 3"),
        (np.zeros((100, 100, 3), np.float32), "find the red screw", "uint8"),
        (np.zeros((8, 8, 3), np.uint8), "find the red screw", "too small"),
        ("not an image", "find the red screw", "numpy array"),
        (np.zeros((100, 100, 3), np.uint8), "   ", "empty instruction"),
        (np.zeros((100, 100, 3), np.uint8), "x" * 100_000, "too long"),
        (np.zeros((100, 100, 3), np.uint8), None, "empty instruction"),
        (np.zeros((100, 100, 3), np.uint8), b"find the red screw", "instruction must be text"),
        (np.zeros((100, 100, 3), np.uint8), 5, "instruction must be text, got int"),
    ],
)
def test_bad_input_gives_error_result(pipeline, image, instruction, message):
    result = pipeline.run(image, instruction)
    assert result.error_stage == "input" and message in result.error and not result.found


class RaisingModel:
    name = "raising"

    def generate(self, image, prompt):
        raise RuntimeError("CUDA out of memory")

    def close(self):
        pass


class ScriptedModel:
    """Answers with a fixed text: the parser's view of a misbehaving checkpoint."""

    name = "scripted"

    def __init__(self, text):
        self.text = text

    def generate(self, image, prompt):
        return Generation(self.text, 1, 1, 0.0)

    def close(self):
        pass


def test_stage_exception_becomes_error(scene_4k):
    image, record = scene_4k
    pipeline = FineRSPipeline(RaisingModel(), BringupModel(), BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert result.error_stage == "gse" and "CUDA out of memory" in result.error


def test_lpr_missing_points_is_reported(scene_4k):
    image, record = scene_4k
    lpr = ScriptedModel(
        "<think>x</think><answer>{'bbox': [1, 2, 30, 40], "
        "'response': 'The object is found.'}</answer>"
    )
    pipeline = FineRSPipeline(BringupModel(), lpr, BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert result.error_stage == "lpr" and "no 'points_1'" in result.error
    assert result.region is not None and result.crop is not None  # GSE work is kept


def test_out_of_frame_lpr_box_is_clipped_to_crop(scene_4k):
    image, record = scene_4k
    lpr = ScriptedModel(
        "<answer>{'bbox': [400, 400, 900, 900], 'points_1': [450, 450], 'points_2': [500, 500], "
        "'response': 'The object is found.'}</answer>"
    )
    pipeline = FineRSPipeline(BringupModel(), lpr, BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert result.ok and result.found
    assert result.crop.contains_box(result.box)


def test_warmup_runs_every_stage(scene_4k):
    calls = []

    class Recording(BringupModel):
        def generate(self, image, prompt):
            calls.append(image.shape)
            return super().generate(image, prompt)

    class RecordingSegmenter(BringupSegmenter):
        def segment(self, crop, box, points):
            calls.append(("segment", crop.shape))
            return super().segment(crop, box, points)

    pipeline = FineRSPipeline(Recording(), Recording(), RecordingSegmenter(), PipelineConfig())
    assert pipeline.warmup() >= 0
    assert calls == [(1080, 1920, 3), (512, 512, 3), ("segment", (512, 512, 3))]


class EmptySegmenter(BringupSegmenter):
    """A real segmenter that finds nothing (as SAM can on a featureless crop)."""

    name = "empty"

    def segment(self, crop, box, points):
        result = super().segment(crop, box, points)
        result.mask[...] = False
        return result


LPR_OK = (
    "<answer>{'bbox': [100, 100, 300, 300], 'points_1': [%s], 'points_2': [%s], "
    "'response': 'The object is found.'}</answer>"
)


@pytest.mark.parametrize(
    "bbox",
    [
        "[NaN, 0, 10, 10]",
        "[0, 0, Infinity, 10]",
        "[-Infinity, 0, 5, 5]",
        "[1e308, 1e308, 1e308, 1e308]",
        "[0, 0, 1" + "0" * 400 + ", 5]",
        "[5000, 5000, 5256, 5256]",
        "[-900, -900, -600, -600]",
    ],
)
def test_absurd_gse_box_is_a_gse_error_not_an_exception(scene_4k, bbox):
    image, record = scene_4k
    gse = ScriptedModel("<answer>{'bbox': %s, 'response': 'The object is found.'}</answer>" % bbox)
    pipeline = FineRSPipeline(gse, BringupModel(), BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert not result.found and result.error_stage == "gse" and "\n" not in result.error
    assert result.crop is None and result.mask is None


def test_crop_is_placed_on_the_unclipped_gse_region():
    # 4x scale (GSE frame 960x540 for 3840x2160): a nominal 256 region is 1024 native pixels.
    # Its right/bottom edge x2 = 960 maps to 3840, one past the last pixel; clipping it first
    # would make the crop 1023 pixels and move it by one.
    config = PipelineConfig()
    config.geometry.gse_size = (960, 540)
    gse = ScriptedModel(
        "<answer>{'bbox': [704, 284, 960, 540], 'response': 'The object is found.'}</answer>"
    )
    lpr = ScriptedModel(LPR_OK % ("150, 150", "200, 200"))
    pipeline = FineRSPipeline(gse, lpr, BringupSegmenter(), config)
    result = pipeline.run(np.zeros((2160, 3840, 3), np.uint8), "find the red screw")
    assert result.crop.as_list() == [2816, 1136, 1024, 1024]
    assert result.region == (2816, 1136, 3839, 2159)  # the reported region is clipped


def test_lpr_points_outside_the_box_are_moved_onto_it(scene_4k):
    image, record = scene_4k
    seen = {}

    class Recording(BringupSegmenter):
        def segment(self, crop, box, points):
            seen.update(box=box, points=list(points))
            return super().segment(crop, box, points)

    lpr = ScriptedModel(LPR_OK % ("50, 200", "9000, -40"))
    pipeline = FineRSPipeline(BringupModel(), lpr, Recording(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert seen["box"] == (100, 100, 300, 300)  # 512 crop, 512 LPR frame: scale 1
    assert seen["points"] == [(100, 200), (300, 100)]
    crop = result.crop
    assert result.points == [(crop.x0 + 100, crop.y0 + 200), (crop.x0 + 300, crop.y0 + 100)]


def test_lpr_box_outside_the_crop_is_an_lpr_error(scene_4k):
    image, record = scene_4k
    lpr = ScriptedModel(
        "<answer>{'bbox': [600, 600, 700, 700], 'points_1': [650, 650], "
        "'points_2': [660, 660], 'response': 'The object is found.'}</answer>"
    )
    pipeline = FineRSPipeline(BringupModel(), lpr, BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert not result.found and result.error_stage == "lpr" and "outside" in result.error


def test_empty_mask_is_not_found_and_says_why(scene_4k):
    image, record = scene_4k
    pipeline = FineRSPipeline(BringupModel(), BringupModel(), EmptySegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert not result.found and result.mask is None
    assert result.error_stage == "segment" and "empty mask" in result.error
    assert result.box is not None  # the LPR answer is kept for diagnosis


def test_stage_generation_figures_are_reported(scene_4k):
    image, record = scene_4k

    class Measured(BringupModel):
        def generate(self, image, prompt):
            generation = super().generate(image, prompt)
            generation.prefill_seconds, generation.decode_seconds = 0.25, 0.5
            return generation

    pipeline = FineRSPipeline(Measured(), BringupModel(), BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, record["Q"])
    assert result.found
    assert result.timings_ms["gse_prefill_ms"] == 250 and result.timings_ms["gse_decode_ms"] == 500
    assert result.timings_ms["gse_prompt_tokens"] > 50
    assert "lpr_prefill_ms" not in result.timings_ms  # not measured, not invented


def test_timings_text_gives_token_counts_without_ms():
    from finers_ros.result import FineRSResult

    result = FineRSResult("x", timings_ms={"gse": 81.2, "gse_prompt_tokens": 2882.0})
    assert result.timings_text() == "gse 81 ms, gse_prompt_tokens 2882"


def test_options_are_bounded_like_the_instruction(pipeline):
    # Options go into both prompts verbatim: 100 kB of them is not a question to send a model.
    image = np.zeros((100, 100, 3), np.uint8)
    result = pipeline.run(image, "which colour", "option", ["A. red", "B. " + "x" * 100_000])
    assert result.error_stage == "input" and "options too long" in result.error
    assert result.gse_text == "" and "gse" not in result.timings_ms
