"""
What one request returns, field by field, and the exact line for each way it can fail.

Scripted stage models and a box-filling segmenter on a 640x480 frame, with asymmetric frames
(GSE 1280x960, LPR 384x128 for a 128-pixel crop) so every coordinate map is checked on both
axes; the error lines are the ones the node publishes on its status topic.
"""

import time

import numpy as np
import pytest

from finers_ros.config import PipelineConfig
from finers_ros.pipeline import FineRSPipeline
from finers_ros.prompts import gse_prompt, lpr_prompt
from finers_ros.segmenters.base import Segmentation
from finers_ros.stages.base import Generation

GSE_FOUND = ("<think>left</think><answer>{'bbox': [400, 300, 656, 556], "
             "'response': 'Found.'}</answer>")
LPR_FOUND = ("<think>it</think><answer>{'bbox': [31, 10, 181, 60], 'points_1': [61, 20], "
             "'points_2': [151, 50], 'response': 'The object is found.'}</answer>")


class Scripted:
    """A stage model answering a fixed text; it keeps what it was asked."""

    def __init__(self, text, name="scripted", **generation):
        self.text, self.name, self.generation = text, name, generation
        self.calls = []
        self.closed = 0

    def generate(self, image, prompt, **hints):
        self.calls.append((image, prompt, hints))
        fields = {"prompt_tokens": 11, "generated_tokens": 7, "seconds": 0.0, **self.generation}
        delay = fields.pop("delay", 0.0)
        time.sleep(delay)
        return Generation(self.text, **fields)

    def close(self):
        self.closed += 1


class BoxFiller:
    """A segmenter whose mask is the box it was given (crop pixels), with a fixed score."""

    name = "boxfill"

    def __init__(self, score=0.75, mask=None):
        self.score, self.mask = score, mask
        self.calls = []
        self.closed = 0

    def segment(self, crop, box, points):
        self.calls.append((crop.copy(), box, list(points)))
        if self.mask is not None:
            return Segmentation(self.mask, self.score)
        mask = np.zeros(crop.shape[:2], bool)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        mask[y1:y2 + 1, x1:x2 + 1] = True
        return Segmentation(mask, self.score)

    def close(self):
        self.closed += 1


def config():
    settings = PipelineConfig()
    settings.geometry.gse_size = (1280, 960)  # native 640x480: half size on both axes
    settings.geometry.lpr_size = (384, 128)  # a 128 crop: x scale 3, y scale 1
    settings.geometry.crop_size = 128
    return settings


FRAME = np.random.default_rng(8).integers(0, 255, (480, 640, 3), dtype=np.uint8)


def run(gse=GSE_FOUND, lpr=LPR_FOUND, segmenter=None, image=FRAME, instruction="find it",
        **kwargs):
    gse = gse if isinstance(gse, Scripted) else Scripted(gse, "gse-model")
    lpr = lpr if isinstance(lpr, Scripted) else Scripted(lpr, "lpr-model")
    pipeline = FineRSPipeline(gse, lpr, segmenter or BoxFiller(), config())
    return pipeline.run(image, instruction, **kwargs), gse, lpr, pipeline.segmenter


def test_a_found_target_in_native_pixels_with_what_each_stage_saw():
    result, gse, lpr, segmenter = run(question_type="option", options=["A. red", "B. blue"])
    assert result.ok and result.found and result.error_stage is None
    assert result.image_size == (640, 480) and result.instruction == "find it"
    assert result.answer == "Found." and result.gse_text == GSE_FOUND
    assert result.lpr_text == LPR_FOUND
    assert result.region == (200.0, 150.0, 328.0, 278.0)
    assert result.crop.as_list() == [200, 150, 128, 128]
    # LPR 384x128 -> crop 128x128: x / 3; crop -> native: + (200, 150)
    assert result.box == pytest.approx((200 + 31 / 3, 160, 200 + 181 / 3, 210))
    assert result.points == [pytest.approx((200 + 61 / 3, 170)),
                             pytest.approx((200 + 151 / 3, 200))]
    assert result.score == 0.75
    expected = np.zeros((480, 640), bool)
    expected[160:211, 210:261] = True
    np.testing.assert_array_equal(result.mask, expected)

    (gse_image, gse_text, _), = gse.calls
    (lpr_image, lpr_text, hints), = lpr.calls
    assert gse_image.shape == (960, 1280, 3) and lpr_image.shape == (128, 384, 3)
    assert gse_text == gse_prompt("find it", "option", ["A. red", "B. blue"])
    assert lpr_text == lpr_prompt("find it", "option", ["A. red", "B. blue"])
    assert hints == {}
    (crop, box, points), = segmenter.calls
    np.testing.assert_array_equal(crop, FRAME[150:278, 200:328])
    assert box == pytest.approx((31 / 3, 10, 181 / 3, 60))
    assert points == [pytest.approx((61 / 3, 20)), pytest.approx((151 / 3, 50))]


def test_an_lpr_that_uses_the_gse_focus_gets_the_regions_centre_in_its_frame():
    lpr = Scripted(LPR_FOUND)
    lpr.uses_focus = True
    run(lpr=lpr)
    (_, _, hints), = lpr.calls
    assert hints == {"focus": pytest.approx(((264 - 200) * 3, 214 - 150))}


def test_not_found_answers_stop_the_cascade_without_an_error():
    gse = Scripted("<answer>{'bbox': [0, 0, 0, 0], 'response': 'No object found.'}</answer>")
    result, _, lpr, segmenter = run(gse=gse)
    assert result.ok and not result.found and result.answer == "No object found."
    assert lpr.calls == [] and result.crop is None
    lpr = Scripted("<answer>{'bbox': [0, 0, 0, 0], 'points_1': [0, 0], 'points_2': [0, 0], "
                   "'response': 'No object founded'}</answer>")
    result, _, _, segmenter = run(lpr=lpr)
    assert result.ok and not result.found and result.crop is not None
    assert segmenter.calls == [] and result.answer == "Found."


@pytest.mark.parametrize(
    "gse, lpr, segmenter, stage, line",
    [
        ("<answer>{'bbox': [1300, 0, 1400, 50]}</answer>", LPR_FOUND, None, "gse",
         "GSE box [1300.0, 0.0, 1400.0, 50.0] lies outside the 1280x960 GSE frame"),
        ("<answer>{'bbox': [0, 980, 50, 990]}</answer>", LPR_FOUND, None, "gse",
         "GSE box [0.0, 980.0, 50.0, 990.0] lies outside the 1280x960 GSE frame"),
        (GSE_FOUND, "<answer>{'bbox': [390, 0, 400, 50], 'points_1': [1, 1], "
         "'points_2': [1, 1]}</answer>", None, "lpr",
         "LPR box [390.0, 0.0, 400.0, 50.0] lies outside the 384x128 LPR frame"),
        ("<answer>no box</answer>", LPR_FOUND, None, "gse",
         "unparsable GSE output: no JSON object in the <answer> block"),
        (GSE_FOUND, "<answer>{'bbox': [1, 2, 3, 4]}</answer>", None, "lpr",
         "unparsable LPR output: answer has no 'points_1'"),
        (GSE_FOUND, "<think>a</think><answer>{'bbox': [1,", None, "lpr",
         "LPR answer cut short: answer cut off before it closed (unparsable answer JSON: "
         "\"{'bbox': [1,\")"),
        (Scripted("<think>still", truncated=True), LPR_FOUND, None, "gse",
         "GSE answer cut at max_new_tokens (7 tokens): answer cut off before it closed "
         "(no JSON object in the <answer> block)"),
        (Scripted(None), LPR_FOUND, None, "gse", "gse model returned NoneType, not text"),
        (GSE_FOUND, Scripted(b"bytes"), None, "lpr", "lpr model returned bytes, not text"),
        (GSE_FOUND, LPR_FOUND, BoxFiller(mask=np.ones((10, 12), bool)), "segment",
         "segmenter returned a (10, 12) mask for a 128x128 crop"),
        (GSE_FOUND, LPR_FOUND, BoxFiller(mask=np.zeros((128, 128), bool)), "segment",
         "empty mask: the segmenter found no object pixels in the LPR box "
         "[210.3, 160.0, 260.3, 210.0]"),
    ],
)
def test_each_failure_is_one_line_naming_its_stage(gse, lpr, segmenter, stage, line):
    result, *_ = run(gse=gse, lpr=lpr, segmenter=segmenter)
    assert (result.error_stage, result.error) == (stage, line)
    assert not result.found and result.mask is None


class Raising(Scripted):
    def __init__(self, exc):
        super().__init__("")
        self.exc = exc

    def generate(self, image, prompt, **hints):
        raise self.exc


class Unprintable(Exception):
    def __str__(self):
        raise ValueError("Exceeds the limit for integer string conversion")


@pytest.mark.parametrize(
    "exc, line",
    [
        (RuntimeError("CUDA out\nof   memory"), "gse failed: RuntimeError: CUDA out of memory"),
        (Unprintable(), "gse failed: Unprintable: (message cannot be printed)"),
        (RuntimeError("x" * 600), ("gse failed: RuntimeError: " + "x" * 600)[:500]),
    ],
)
def test_a_stage_that_raises_is_one_line_of_at_most_500_characters(exc, line):
    result, *_ = run(gse=Raising(exc))
    assert result.error_stage == "gse" and result.error == line


def test_a_segmenter_that_raises_is_a_segment_failure():
    class Broken(BoxFiller):
        def segment(self, crop, box, points):
            raise MemoryError("no room")

    result, *_ = run(segmenter=Broken())
    assert result.error_stage == "segment"
    assert result.error == "segment failed: MemoryError: no room"
    assert result.box is not None  # the LPR answer is kept for diagnosis


@pytest.mark.parametrize(
    "kwargs, line",
    [
        ({"instruction": ""}, "empty instruction"),
        ({"instruction": "x" * 2001}, "instruction too long (2001 characters, limit 2000)"),
        ({"instruction": 5}, "instruction must be text, got int"),
        ({"question_type": "poem"},
         "bad question: unknown question type 'poem'; expected one of ('referring', 'open', "
         "'option')"),
        ({"question_type": "option"}, "bad question: an option question needs its options"),
        ({"question_type": "option", "options": "x" * 2001},
         "options too long (2001 characters, limit 2000)"),
        ({"image": "frame.png"}, "image must be a numpy array, got str"),
        ({"image": np.zeros((40, 15, 3), np.uint8)}, "image too small: 15x40"),
        ({"image": np.zeros((15, 40, 3), np.uint8)}, "image too small: 40x15"),
        ({"image": np.zeros((40, 40, 4), np.uint8)},
         "image must be H x W x 3 RGB, got shape (40, 40, 4)"),
        ({"image": np.zeros((40, 40, 3), np.int16)}, "image must be uint8, got int16"),
    ],
)
def test_bad_input_is_an_input_failure_with_its_line(kwargs, line):
    result, gse, *_ = run(**kwargs)
    assert (result.error_stage, result.error) == ("input", line)
    assert gse.calls == [] and result.gse_text == ""


def test_input_exactly_at_its_limits_is_served():
    result, *_ = run(instruction="x" * 2000, question_type="option", options="y" * 2000)
    assert result.ok
    result, *_ = run(image=np.zeros((16, 16, 3), np.uint8))
    assert result.error_stage != "input"
    result, *_ = run(instruction=None)
    assert result.instruction == "" and result.error == "empty instruction"


def test_stage_timings_and_the_backends_own_figures():
    gse = Scripted(GSE_FOUND, timings_ms={"network": 5, "server_queue": 2.5}, delay=0.05,
                   prefill_seconds=0.25, decode_seconds=0.5, prompt_tokens=300,
                   generated_tokens=40)
    lpr = Scripted(LPR_FOUND, prefill_seconds=0.1)  # decode not measured
    result, *_ = run(gse=gse, lpr=lpr)
    timings = result.timings_ms
    assert timings["gse_network_ms"] == 5.0 and timings["gse_server_queue_ms"] == 2.5
    assert timings["gse_prefill_ms"] == 250.0 and timings["gse_decode_ms"] == 500.0
    assert timings["gse_prompt_tokens"] == 300.0 and timings["gse_generated_tokens"] == 40.0
    assert not any(key.startswith("lpr_") for key in timings)  # only measured figures
    assert 50.0 <= timings["gse"] < 5000.0
    assert timings["gse"] + timings["lpr"] + timings["segment"] <= timings["total"] < 5000.0


@pytest.mark.parametrize("score, kept", [(0.5, 0.5), ("0.25", 0.25), (float("nan"), None),
                                         (float("inf"), None), (None, None), ("high", None)])
def test_the_segmenters_score_is_kept_only_when_finite(score, kept):
    result, *_ = run(segmenter=BoxFiller(score=score))
    assert result.found and result.score == kept


def test_progress_is_told_each_stage_before_it_runs_and_may_cancel():
    told = []
    result, *_ = run(progress=told.append)
    assert told == ["gse", "lpr", "segment"] and result.found

    def cancel(stage):
        if stage == "lpr":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(progress=cancel)


def test_warmup_runs_each_stage_once_on_blank_frames_of_the_configured_sizes():
    gse = Scripted(GSE_FOUND, delay=0.05)
    lpr, segmenter = Scripted(LPR_FOUND), BoxFiller()
    pipeline = FineRSPipeline(gse, lpr, segmenter, config())
    seconds = pipeline.warmup()
    assert 0.05 <= seconds < 5.0
    (gse_image, gse_text, _), = gse.calls
    (lpr_image, lpr_text, _), = lpr.calls
    assert gse_image.shape == (960, 1280, 3) and gse_image.dtype == np.uint8
    assert lpr_image.shape == (128, 384, 3) and lpr_image.dtype == np.uint8
    assert not gse_image.any() and not lpr_image.any()
    assert gse_text == gse_prompt("find the object") and lpr_text == lpr_prompt("find the object")
    (crop, _, _), = segmenter.calls
    assert crop.shape == (128, 128, 3)
    one = Scripted(GSE_FOUND)
    FineRSPipeline(one, one, BoxFiller(), config()).warmup()
    assert len(one.calls) == 1  # one model serving both stages warms up once


def test_backend_name_close_and_config_from_a_file(tmp_path):
    shared = Scripted(GSE_FOUND, "qwen")
    segmenter = BoxFiller()
    pipeline = FineRSPipeline(shared, shared, segmenter, config())
    assert pipeline.backend_name == "qwen+boxfill" and not pipeline.is_bringup
    pipeline.close()
    assert shared.closed == 1 and segmenter.closed == 1
    path = tmp_path / "pipeline.yaml"
    path.write_text("max_instruction_chars: 50\n")
    loaded = FineRSPipeline.from_config(str(path))
    assert loaded.config.max_instruction_chars == 50 and loaded.is_bringup
    given = config()
    assert FineRSPipeline.from_config(given).config is given


class Bare:
    """A stage model that returns a bare object with only some of Generation's fields."""

    name = "bare"

    def __init__(self, answer):
        self.answer = answer

    def generate(self, image, prompt, **hints):
        return self.answer

    def close(self):
        pass


def test_a_backend_returning_a_bare_object_with_text_is_served():
    from types import SimpleNamespace

    gse, lpr = Bare(SimpleNamespace(text=GSE_FOUND)), Bare(SimpleNamespace(text=LPR_FOUND))
    pipeline = FineRSPipeline(gse, lpr, BoxFiller(), config())
    result = pipeline.run(FRAME, "find it")
    assert result.found and result.error is None
    broken = FineRSPipeline(Bare(SimpleNamespace(text="garbage")), lpr, BoxFiller(), config())
    result = broken.run(FRAME, "find it")
    assert result.error == "unparsable GSE output: no JSON object in the <answer> block"
    nothing = FineRSPipeline(Bare(None), lpr, BoxFiller(), config()).run(FRAME, "find it")
    assert (nothing.error_stage, nothing.error) == ("gse", "gse model returned NoneType, not text")


NOT_FOUND = "'response': 'No object found.'"


def test_a_referring_no_object_found_gse_stops_the_cascade_whatever_the_box():
    result, _, lpr, _ = run(gse=GSE_FOUND.replace("'response': 'Found.'", NOT_FOUND))
    assert result.ok and not result.found and result.answer == "No object found."
    assert lpr.calls == []


def test_a_referring_no_object_found_lpr_stops_the_cascade_whatever_the_box():
    said = LPR_FOUND.replace("'response': 'The object is found.'", NOT_FOUND)
    result, _, _, segmenter = run(lpr=said)
    assert result.ok and not result.found and result.answer == "Found."
    assert segmenter.calls == [] and result.box is None


def test_an_odd_failure_after_each_stage_names_that_stage():
    gse = Scripted(GSE_FOUND, timings_ms={"network": "fast"})
    result, *_ = run(gse=gse)
    assert (result.error_stage, result.error) == (
        "gse", "gse failed: ValueError: could not convert string to float: 'fast'")
    lpr = Scripted(LPR_FOUND, timings_ms={"network": 3})
    result, *_ = run(lpr=lpr)
    assert result.found and result.timings_ms["lpr_network_ms"] == 3.0
    lpr = Scripted(LPR_FOUND, timings_ms={"network": []})
    result, *_ = run(lpr=lpr)
    assert result.error_stage == "lpr" and result.error.startswith("lpr failed: TypeError: ")

    class Scoreless(BoxFiller):
        def segment(self, crop, box, points):
            from types import SimpleNamespace

            return SimpleNamespace(mask=super().segment(crop, box, points).mask)

    result, *_ = run(segmenter=Scoreless())
    assert result.error_stage == "segment"
    assert result.error.startswith("segment failed: AttributeError: ")


def test_options_that_cannot_be_read_are_an_input_failure():
    class Unreadable:
        def __iter__(self):
            raise RuntimeError("options stream closed")

    result, *_ = run(question_type="option", options=Unreadable())
    assert (result.error_stage, result.error) == (
        "input", "input failed: RuntimeError: options stream closed")
