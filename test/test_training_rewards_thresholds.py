"""
Reward terms exactly at their thresholds, on box edges, and through the TRL interface.

Section 4's rules are strict or inclusive per term (mean L1 < 20 / < 10 px, IoU > 0.9 / > 0.5,
mean point distance < 100 px, region sides in [241, 271], at most three LPR answer words); a
completion that lands exactly on a threshold is scored as the rule says.
"""

import pytest

from finers_training import rewards as R

FOUND = "The object is found."


def gse(box, response=FOUND):
    return f"<answer>{{'bbox': {list(box)}, 'response': '{response}'}}</answer>"


def lpr(box, p1, p2, response=FOUND):
    return (
        f"<answer>{{'bbox': {list(box)}, 'points_1': {list(p1)}, 'points_2': {list(p2)}, "
        f"'response': '{response}'}}</answer>"
    )


def said(response):
    return gse((1, 1, 5, 5), response)


REGION = [800, 400, 1055, 655]  # a 256x256 best region (inclusive)


@pytest.mark.parametrize("shift, score", [(39, 1.0), (40, 0.0), (41, 0.0)])
def test_gse_region_l1_is_strictly_below_20_px(shift, score):
    # x1 and x2 move by `shift`: mean L1 over the four coordinates is shift / 2
    box = [REGION[0] + shift, REGION[1], REGION[2] + shift, REGION[3]]
    assert R.gse_region_l1(gse(box), {"best_region": REGION}) == score


@pytest.mark.parametrize("bottom, score", [(89, 0.0), (90, 1.0)])
def test_gse_region_iou_is_strictly_above_0_9(bottom, score):
    # inclusive areas: 100x90 inside 100x100 is IoU 0.9 exactly; 100x91 is 0.91
    region = [0, 0, 99, 99]
    assert R.gse_region_iou(gse([0, 0, 99, bottom]), {"best_region": region}) == score


@pytest.mark.parametrize(
    "width, height, score",
    [(241, 271, 1.0), (271, 241, 1.0), (240, 256, 0.5), (256, 272, 0.5), (240, 272, 0.0)],
)
def test_gse_size_counts_sides_of_241_and_271_px(width, height, score):
    assert R.gse_size(gse([100, 100, 100 + width, 100 + height]), {}) == score


GT = [900, 500, 920, 515]


def test_gse_region_equal_to_the_gt_box_contains_it():
    assert R.gse_contain(gse(GT), {"gt_box": GT}) == 1.0


@pytest.mark.parametrize("edge", range(4))
def test_gse_region_one_pixel_short_on_any_edge_does_not_contain(edge):
    box = list(GT)
    box[edge] += 1 if edge < 2 else -1  # the edge moves one pixel into the GT box
    assert R.gse_contain(gse(box), {"gt_box": GT}) == 0.0


@pytest.mark.parametrize("response", ["", "   "])
def test_gse_format_needs_a_non_empty_response(response):
    assert R.gse_format(gse(GT, response), {}) == 0.0
    assert R.gse_format(gse(GT, "x"), {}) == 1.0


LPR_GT = {"gt_box": [100, 100, 199, 149], "gt_points": [[150, 125], [155, 128]]}


@pytest.mark.parametrize("bottom, score", [(124, 0.0), (125, 1.0)])
def test_lpr_iou_is_strictly_above_0_5(bottom, score):
    # inclusive areas: 100x25 of the 100x50 GT box is IoU 0.5 exactly
    text = lpr([100, 100, 199, bottom], (150, 110), (152, 112))
    assert R.lpr_iou(text, LPR_GT) == score


@pytest.mark.parametrize("shift, score", [(9, 1.0), (10, 0.0)])
def test_lpr_box_l1_is_strictly_below_10_px(shift, score):
    box = [v + shift for v in LPR_GT["gt_box"]]
    assert R.lpr_box_l1(lpr(box, (150, 125), (152, 126)), LPR_GT) == score


WHOLE_CROP = [0, 0, 511, 511]
FAR_GT = {"gt_points": [[100, 100], [400, 400]]}


@pytest.mark.parametrize(
    "p1, p2, score",
    [
        ((100, 199), (400, 499), 1.0),  # 99 px each: mean 99
        ((100, 200), (400, 500), 0.0),  # 100 px each: mean 100 is not below 100
        ((100, 250), (400, 450), 0.0),  # 150 and 50 px: mean 100
        ((100, 249), (400, 449), 1.0),  # 149 and 49 px: mean 99
    ],
)
def test_lpr_points_mean_distance_is_strictly_below_100_px(p1, p2, score):
    assert R.lpr_points(lpr(WHOLE_CROP, p1, p2), FAR_GT) == score
    # the same points given in the other order pair up the other way round
    assert R.lpr_points(lpr(WHOLE_CROP, p2, p1), FAR_GT) == score


def test_lpr_points_far_apart_match_the_gt_in_either_order():
    assert R.lpr_points(lpr(WHOLE_CROP, (400, 400), (100, 100)), FAR_GT) == 1.0
    assert R.lpr_points(lpr(WHOLE_CROP, (100, 100), (400, 400)), FAR_GT) == 1.0
    assert R.lpr_points(lpr(WHOLE_CROP, (300, 100), (100, 300)), FAR_GT) == 0.0


def test_lpr_points_on_the_box_edges_are_inside_it():
    box = [100, 100, 200, 200]
    gt = {"gt_points": [[100, 100], [200, 200]]}
    assert R.lpr_points(lpr(box, (100, 100), (200, 200)), gt) == 1.0
    other_corners = {"gt_points": [[100, 200], [200, 100]]}
    assert R.lpr_points(lpr(box, (100, 200), (200, 100)), other_corners) == 1.0
    assert R.lpr_points(lpr(box, (99, 100), (200, 200)), gt) == 0.0
    assert R.lpr_points(lpr(box, (100, 100), (200, 201)), gt) == 0.0


@pytest.mark.parametrize(
    "gt_points", [[[100, 100], [400, 400], [0, 0]], [[100, 100], "x"], [[100, 100]]]
)
def test_lpr_points_of_a_malformed_sample_score_zero(gt_points):
    text = lpr(WHOLE_CROP, (100, 100), (400, 400))
    assert R.lpr_points(text, {"gt_points": gt_points}) == 0.0


def test_lpr_answer_of_exactly_three_words_is_allowed():
    open_q = {"q_type": "reasoning", "answer": "red"}
    assert R.lpr_text(said("a red screw"), open_q) == 1.0
    assert R.lpr_text(said("a red screw here"), open_q) == 0.0


def test_answer_text_defaults_to_the_gse_rules_and_a_referring_question():
    open_q = {"q_type": "open", "answer": "red"}
    assert R.answer_text(said("it is a bright red one"), open_q) == 1.0
    assert R.answer_text(said("THE OBJECT IS FOUND"), {}) == 1.0
    assert R.answer_text(said("nothing here"), {}) == 0.0


@pytest.mark.parametrize("response", ["None", "nothing", "anything at all"])
def test_an_open_sample_without_its_answer_never_rewards_text(response):
    assert R.gse_text(said(response), {"q_type": "open"}) == 0.0


@pytest.mark.parametrize("response", ["5", "['found']", "{'is found': 1}"])
def test_a_response_that_is_not_text_scores_zero(response):
    text = f"<answer>{{'bbox': [1, 1, 5, 5], 'response': {response}}}</answer>"
    assert R.gse_text(text, {"q_type": "referring"}) == 0.0
    assert R.lpr_text(text, {"q_type": "open", "answer": "5"}) == 0.0


def test_reference_rules_for_option_and_open_answers():
    option = {"q_type": "option", "answer": "A"}
    assert R.gse_text(said("B"), option, reference=True) == 0.0
    assert R.gse_text(said("(A)"), option, reference=True) == 1.0
    open_q = {"q_type": "reasoning", "answer": "white"}
    assert R.gse_text(said("it is white"), open_q, reference=True) == 1.0
    # difflib ratio of "whice" and "white" is 0.8 exactly: close enough in both protocols
    assert R.gse_text(said("whice"), open_q, reference=True) == 1.0
    assert R.gse_text(said("whice"), open_q) == 1.0
    assert R.gse_text(said("whi"), open_q, reference=True) == 0.0  # 0.75


def test_text_terms_use_our_rules_unless_the_reference_is_asked_for():
    option = {"q_type": "option", "answer": "A"}
    article = said("a red one")  # the article, not option A
    for term in (R.gse_text, R.lpr_text):
        assert term(article, option) == 0.0
        assert term(article, option, reference=True) == 1.0
    assert R.answer_text(article, option) == 0.0
    assert R.score_all("gse", article, option)["gse_text"] == 0.0
    assert R.score_all("gse", article, option, reference=True)["gse_text"] == 1.0
    assert R.RewardTerm("gse_text", R.gse_text).score(article, option) == 0.0


@pytest.mark.parametrize("stage", ["gse", "lpr"])
def test_trl_reward_functions_follow_the_reference_switch(stage):
    article = said("a red one")
    columns = {"q_type": ["option"], "answer": ["A"]}

    def text_reward(reference):
        terms = {t.__name__: t for t in R.make_reward_terms(stage, reference=reference)}
        return terms[f"{stage}_text"](prompts=["p"], completions=[article], **columns)

    assert text_reward(False) == [0.0]
    assert text_reward(True) == [1.0]
    default = {t.__name__: t for t in R.make_reward_terms(stage)}[f"{stage}_text"]
    assert default(completions=[article], **columns) == [0.0]


def test_unknown_stage_names_the_known_ones():
    expected = r"^unknown stage 'sam'; expected one of \['gse', 'lpr'\]$"
    with pytest.raises(ValueError, match=expected):
        R.make_reward_terms("sam")


def test_weighted_total_multiplies_each_score_by_its_weight():
    assert R.weighted_total({"a": 0.5, "b": 1.0, "c": None}, {"a": 4.0}) == 3.0


@pytest.mark.parametrize(
    "completion, text",
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "chat"}], "chat"),
        ([{"role": "assistant", "content": [
            {"type": "text", "text": "a"}, "x", {"type": "text", "text": "b"}, {"type": "image"},
        ]}], "ab"),
        ([{"role": "assistant"}], ""),
        ([{"role": "assistant", "content": None}], ""),
        (["not a message"], ""),
        ([], ""),
        (None, ""),
    ],
)
def test_completion_text_of_every_trl_completion_shape(completion, text):
    assert R.completion_text(completion) == text
