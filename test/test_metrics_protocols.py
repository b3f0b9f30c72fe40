"""
The evaluation summary as finers-eval writes it, under both protocols, and answer scoring edges.

Keys and rounding of ``metrics.json`` are what dashboards read; the reference protocol must keep
the reference's epsilons and its unescaped, unstripped option letter; masks may arrive as
0/255 images rather than bools.
"""

import numpy as np
import pytest

from finers_ros.metrics import (
    Sample,
    ciou,
    giou,
    intersection_union,
    open_correct,
    option_correct,
    summarize,
)


def test_masks_as_0_255_images_count_pixels_not_values():
    gt = np.zeros((4, 5), np.uint8)
    gt[1:3, 1:4] = 255
    assert intersection_union(None, gt) == (0, 6)
    assert intersection_union(gt, gt) == (6, 6)


def test_masks_of_different_shapes_are_refused_with_both_shapes():
    with pytest.raises(ValueError) as caught:
        intersection_union(np.zeros((4, 5), bool), np.zeros((5, 4), bool))
    assert str(caught.value) == ("mask shapes differ: prediction (4, 5), "
                                 "ground truth (5, 4)")


def test_an_unknown_protocol_names_the_known_ones():
    with pytest.raises(ValueError) as caught:
        giou([(1, 1)], "strict")
    assert str(caught.value) == ("unknown protocol 'strict'; "
                                 "expected one of ('fixed', 'reference')")


def test_the_reference_ciou_of_a_perfect_match_is_just_below_one():
    assert ciou([(1, 1)], "reference") == 1 / (1 + 1e-10) < 1.0
    assert ciou([(1, 1)]) == 1.0


def samples():
    return [
        Sample("referring", 0.01, 9, 10, True, grounding="colour", timings_ms={"gse": 10.123}),
        Sample("referring", 0.01, 3, 4, True, timings_ms={"gse": 10.124}),
        Sample("referring", 0.01, 0, 0, False, located=False, timings_ms={"gse": 10.126}),
        Sample("option", 0.03, 0, 40, True, True, "colors"),
        Sample("option", 0.03, 0, 40, True, False, "colors"),
        Sample("option", 0.03, 0, 40, True, True, "shape"),
        Sample("reasoning", 0.01, 0, 40, False, True, "shape"),
    ]


def test_the_summary_scores_every_part_with_the_chosen_protocol():
    pairs = [(s.intersection, s.union) for s in samples()]
    for protocol in ("fixed", "reference"):
        metrics = summarize(samples(), protocol)
        assert metrics["segmentation"]["all"] == {
            "gIoU": giou(pairs, protocol), "cIoU": ciou(pairs, protocol), "count": 7}
        grounding = metrics["referring_by_grounding"]
        assert set(grounding) == {"colour", "referring"}  # no grounding given: "referring"
        assert grounding["referring"] == {
            "gIoU": giou([(3, 4), (0, 0)], protocol), "cIoU": ciou([(3, 4), (0, 0)], protocol),
            "count": 2}
    reference = summarize(samples(), "reference")["segmentation"]["all"]
    assert reference["gIoU"] != summarize(samples())["segmentation"]["all"]["gIoU"]


def test_the_summary_keys_and_vqa_accuracy_per_attribute():
    metrics = summarize(samples())
    assert metrics["samples"] == 7 and metrics["failed"] == 0
    assert metrics["MVQA"] == {
        "accuracy": pytest.approx(2 / 3), "count": 3,
        "per_attribute": {"colors": {"accuracy": 0.5, "count": 2},
                          "shape": {"accuracy": 1.0, "count": 1}}}
    assert metrics["OVQA"] == {"accuracy": 1.0, "count": 1,
                               "per_attribute": {"shape": {"accuracy": 1.0, "count": 1}}}


def test_latency_percentiles_are_rounded_to_two_decimals():
    gse = summarize(samples())["latency_ms"]["gse"]
    assert gse == {"median": 10.12, "p90": 10.13, "count": 3}


def test_no_samples_at_all_give_no_region_recall():
    assert summarize([])["region_recall"] is None
    assert summarize([], "reference")["region_recall"] is None


@pytest.mark.parametrize(
    "response, answer, fixed, reference",
    [
        ("(B)", " B ", True, False),  # the reference inserts the letter unstripped
        ("(+)", "+", True, False),  # ... and unescaped: "+" is no pattern for it
        ("It is (B).", "", False, False),
        ("It is (B).", None, False, False),
        ("it is a red car", "A", False, True),  # the article, mid-sentence
        ("it is a, the red one", "A", True, True),
    ],
)
def test_option_letters_padded_or_special_and_the_article(response, answer, fixed, reference):
    assert option_correct(response, answer) is fixed
    assert option_correct(response, answer, "reference") is reference


@pytest.mark.parametrize(
    "response, answer, fixed",
    [
        ("red", "(red).", True),  # punctuation around the answer is not part of it
        ("whice", "white", True),  # difflib ratio 0.8 exactly is close enough
        ("whi", "white", False),  # 0.75
    ],
)
def test_open_answers_at_the_closeness_threshold(response, answer, fixed):
    assert open_correct(response, answer) is fixed
