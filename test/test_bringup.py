import numpy as np
import pytest

from finers_ros.bringup.colours import COLOUR_NAMES, REFERENCE_RGB, classify_rgb, colour_mask
from finers_ros.bringup.detect import components, inscribed_points
from finers_ros.bringup.language import parse_instruction
from finers_ros.parsing import has_think_answer_format, parse_gse, parse_lpr
from finers_ros.prompts import gse_prompt, lpr_prompt
from finers_ros.segmenters.bringup import BringupSegmenter
from finers_ros.stages.bringup import BringupModel


@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_reference_colours_classify_as_themselves_only(name):
    assert classify_rgb(REFERENCE_RGB[name]) == [name]


def test_instruction_parsing():
    query = parse_instruction("Find the smallest red screw in the top-left corner")
    assert (query.colour, query.size, query.positions, query.groundable) == (
        "red",
        "smallest",
        ["top", "left"],
        True,
    )
    assert parse_instruction("find the gray bolt").colour == "grey"
    unknown = parse_instruction("find the screw that holds the panel")
    assert not unknown.groundable and "'holds'" in unknown.reason()
    assert "no colour" in parse_instruction("find the screw").reason()


def scene(objects, size=(400, 300), background=(120, 130, 100)):
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = background
    for colour, (x, y, w, h) in objects:
        image[y:y + h, x:x + w] = REFERENCE_RGB[colour]
    return image


def test_components_and_selection_words():
    image = scene(
        [("red", (20, 20, 10, 10)), ("red", (300, 200, 30, 30)), ("blue", (150, 150, 20, 20))]
    )
    found = components(image, "red")
    assert [c.area for c in found] == [900, 100]
    model = BringupModel()
    for words, expected_x in (
        ("smallest red", 20),
        ("largest red", 300),
        ("red on the right", 300),
        ("top red", 20),
    ):
        text = model.generate(image, gse_prompt(f"find the {words} screw")).text
        region = parse_gse(text).bbox
        assert region[0] <= expected_x <= region[2], words


def test_stage_text_is_the_checkpoint_format():
    image = scene([("green", (100, 100, 12, 8))])
    model = BringupModel()
    gse_text = model.generate(image, gse_prompt("find the green bolt")).text
    assert has_think_answer_format(gse_text) and "'bbox'" in gse_text
    gse = parse_gse(gse_text)
    assert gse.found and gse.bbox[2] - gse.bbox[0] == 256
    lpr = parse_lpr(model.generate(image, lpr_prompt("find the green bolt")).text)
    assert lpr.bbox == (100, 100, 111, 107)
    assert all(
        lpr.bbox[0] <= x <= lpr.bbox[2] and lpr.bbox[1] <= y <= lpr.bbox[3] for x, y in lpr.points
    )


@pytest.mark.parametrize(
    "question, qtype, reason",
    [
        ("why is the robot stopped", "referring", "cannot ground"),
        ("find the purple screw", "referring", "no purple object"),
        ("what colour is the car", "open", "colour questions about a named shape only"),
        ("what is the capital of france", "open", "cannot ground the word(s) 'capital'"),
        ("what colour is the hexagon", "open", "cannot ground the word(s) 'hexagon'"),
    ],
)
def test_ungroundable_is_not_found_with_reason(question, qtype, reason):
    image = scene([("red", (20, 20, 10, 10))])
    text = BringupModel().generate(image, gse_prompt(question, qtype)).text
    answer = parse_gse(text)
    assert not answer.found and reason in answer.think


def test_inscribed_points_of_a_bar_are_apart():
    mask = np.zeros((40, 100), bool)
    mask[10:30, 10:90] = True
    p1, p2 = inscribed_points(mask)
    assert mask[int(p1[1]), int(p1[0])] and mask[int(p2[1]), int(p2[0])]
    assert abs(p1[0] - p2[0]) >= 15


def test_segmenter_is_tight_on_a_noisy_disc(rng):
    image = np.full((200, 200, 3), (150, 140, 120), np.float32)
    yy, xx = np.mgrid[:200, :200]
    disc = (xx - 90) ** 2 + (yy - 110) ** 2 <= 15**2
    image[disc] = REFERENCE_RGB["orange"]
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    result = BringupSegmenter().segment(image, (75, 95, 105, 125), [(90, 110), (84, 104)])
    iou = (result.mask & disc).sum() / (result.mask | disc).sum()
    assert iou > 0.9 and result.score > 0


def test_segmenter_without_seeds_inside_returns_empty():
    image = scene([("red", (20, 20, 10, 10))])
    result = BringupSegmenter().segment(image, (20, 20, 29, 29), [(1000, 1000)])
    assert not result.mask.any() and result.mask.shape == (300, 400)


def test_colour_mask_is_boolean_map():
    mask = colour_mask(scene([("yellow", (5, 5, 4, 4))], (20, 20)), "yellow")
    assert mask.dtype == bool and mask.sum() == 16


def shaped_scene():
    from finers_ros.data.synthetic import shape_polygon
    import cv2

    image = scene([])
    for colour, shape, centre, radius in (
        ("red", "triangle", (80, 80), 14),
        ("blue", "circle", (300, 200), 10),
        ("yellow", "circle", (200, 60), 25),
        ("green", "square", (60, 220), 12),
    ):
        points = np.round(shape_polygon(shape, centre, radius, 0.0)).astype(np.int32)
        cv2.fillPoly(image, [points], REFERENCE_RGB[colour])
    return image


def test_open_shape_question_names_the_shape():
    image = shaped_scene()
    for colour, shape in (("red", "triangle"), ("blue", "circle"), ("green", "square")):
        text = (
            BringupModel()
            .generate(image, gse_prompt(f"what shape is the {colour} marker", "open"))
            .text
        )
        assert parse_gse(text).response == f"The object is a {shape}."


def test_option_colour_question_picks_the_letter():
    image = shaped_scene()
    options = ["A. yellow", "B. blue", "C. red"]
    text = (
        BringupModel()
        .generate(image, gse_prompt("what colour is the smallest circle", "option", options))
        .text
    )
    answer = parse_gse(text)
    assert answer.response == "B" and answer.bbox[0] <= 300 <= answer.bbox[2]
    # a colour no option names is not an answer
    text = (
        BringupModel()
        .generate(image, gse_prompt("what colour is the triangle", "option", ["A. blue"]))
        .text
    )
    assert not parse_gse(text).found


def test_referring_with_shape_word():
    image = shaped_scene()
    text = BringupModel().generate(image, lpr_prompt("find the yellow circle")).text
    assert parse_lpr(text).bbox[0] < 200 < parse_lpr(text).bbox[2]


def test_open_colour_question_answers_the_colour():
    image = shaped_scene()
    for shape, colour in (("triangle", "red"), ("square", "green")):
        text = (
            BringupModel().generate(image, gse_prompt(f"what colour is the {shape}", "open")).text
        )
        assert parse_gse(text, "open").response == f"The object is {colour}."
    text = (
        BringupModel()
        .generate(image, lpr_prompt("what color is the smallest circle", "open"))
        .text
    )
    answer = parse_lpr(text, "open")
    assert answer.response == "The object is blue." and answer.bbox[0] < 300 < answer.bbox[2]


def test_lpr_prefers_the_object_nearest_the_gse_focus():
    image = scene([("red", (40, 40, 10, 10)), ("red", (180, 180, 10, 10))], size=(256, 256))
    model = BringupModel()
    prompt = lpr_prompt("find the red screw")
    assert parse_lpr(model.generate(image, prompt).text).bbox == (
        180,
        180,
        189,
        189,
    )  # crop centre
    text = model.generate(image, prompt, focus=(30.0, 60.0)).text
    assert parse_lpr(text).bbox == (40, 40, 49, 49) and "GSE region's centre" in text


def test_gse_region_is_centred_on_the_object_even_at_a_border():
    image = scene([("red", (2, 100, 10, 10))])
    region = parse_gse(BringupModel().generate(image, gse_prompt("find the red screw")).text).bbox
    # a 256 square around the object's centre (6.5, 104.5), reaching past the frame
    assert region == (-122, -24, 134, 232)


def test_leftmost_object_at_the_border_is_the_one_segmented():
    from finers_ros.config import PipelineConfig
    from finers_ros.pipeline import FineRSPipeline

    # Two red screws in one crop; the leftmost touches the frame's left edge, so the crop is
    # shifted and its centre lies nearer the other one.
    image = scene([("red", (4, 500, 12, 12)), ("red", (200, 505, 12, 12))], size=(1920, 1080))
    pipeline = FineRSPipeline(BringupModel(), BringupModel(), BringupSegmenter(), PipelineConfig())
    result = pipeline.run(image, "find the leftmost red screw")
    assert result.found and result.crop.x0 == 0
    assert result.box == (4, 500, 15, 511)
