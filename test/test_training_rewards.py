"""Reward terms on hand-written completions (reference section 4)."""

import math
import pickle

import pytest

from finers_training import rewards as R

LPR_SAMPLE = {
    "gt_box": [100, 100, 199, 149],
    "gt_points": [[150, 125], [155, 128]],
    "q_type": "referring",
    "answer": "The object is found.",
}
GSE_SAMPLE = {
    "gt_box": [900, 500, 920, 515],
    "best_region": [800, 400, 1056, 656],
    "q_type": "referring",
    "answer": "The object is found.",
}

LPR_PERFECT = (
    "<think> the red one </think><answer>{'bbox': [100, 100, 199, 149], "
    "'points_1': [150, 125], 'points_2': [152, 126], 'response': 'The object is found.'}</answer>"
)
GSE_PERFECT = (
    '<think>left side</think>\n<answer>{"bbox": [800, 400, 1056, 656], '
    '"response": "The object is found."}</answer>'
)


def test_perfect_lpr_answer_scores_every_term():
    scores = R.score_all("lpr", LPR_PERFECT, LPR_SAMPLE)
    assert scores == {name: 1.0 for name in R.term_names("lpr")}
    assert R.weighted_total(scores, {}) == 6.0


def test_perfect_gse_answer_scores_every_term():
    scores = R.score_all("gse", GSE_PERFECT, GSE_SAMPLE)
    assert scores == {name: 1.0 for name in R.term_names("gse")}
    assert R.weighted_total(scores, {"gse_size": 2.0}) == 8.0


def test_braces_inside_think_do_not_replace_the_answer():
    text = (
        "<think> maybe {'bbox': [0, 0, 5, 5]} first </think>"
        "<answer>{'bbox': [100, 100, 199, 149], 'points_1': [150, 125], 'points_2': [152, 126], "
        "'response': 'The object is found.'}</answer>"
    )
    scores = R.score_all("lpr", text, LPR_SAMPLE)
    assert scores["lpr_iou"] == 1.0 and scores["lpr_box_l1"] == 1.0 and scores["lpr_think"] == 1.0


def test_double_and_single_quotes_score_alike():
    double = LPR_PERFECT.replace("'", '"')
    assert R.score_all("lpr", double, LPR_SAMPLE) == R.score_all("lpr", LPR_PERFECT, LPR_SAMPLE)


def test_not_found_answer_keeps_format_but_no_box_terms():
    text = (
        "<think>nothing</think><answer>{'bbox': [0, 0, 0, 0], 'points_1': [0, 0], "
        "'points_2': [0, 0], 'response': 'No object founded'}</answer>"
    )
    scores = R.score_all("lpr", text, LPR_SAMPLE)
    assert scores["lpr_think"] == 1.0 and scores["lpr_format"] == 1.0
    assert (
        scores["lpr_iou"]
        == scores["lpr_box_l1"]
        == scores["lpr_points"]
        == scores["lpr_text"]
        == 0.0
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "<think>",
        "<answer>{'bbox': [1, 2]}</answer>",
        "<answer>{not json at all}</answer>",
        "{" * 5000,
        "<answer>[1, 2, 3, 4]</answer>",
    ],
)
def test_empty_and_garbage_score_zero_everywhere(text):
    for stage in ("lpr", "gse"):
        scores = R.score_all(stage, text, LPR_SAMPLE if stage == "lpr" else GSE_SAMPLE)
        assert all(v == 0.0 for v in scores.values()), (stage, scores)


def test_nan_and_infinite_numbers_never_score():
    nan_box = LPR_PERFECT.replace("[100, 100, 199, 149]", "[NaN, 100, 199, 149]")
    scores = R.score_all("lpr", nan_box, LPR_SAMPLE)
    assert scores["lpr_format"] == 0.0 and scores["lpr_iou"] == 0.0 and scores["lpr_points"] == 0.0
    inf_point = LPR_PERFECT.replace("[152, 126]", "[Infinity, 126]")
    assert R.score_all("lpr", inf_point, LPR_SAMPLE)["lpr_points"] == 0.0
    gse_nan = GSE_PERFECT.replace("[800, 400, 1056, 656]", "[800, 400, NaN, 656]")
    assert all(
        v == 0.0
        for k, v in R.score_all("gse", gse_nan, GSE_SAMPLE).items()
        if k not in ("gse_think", "gse_text")
    )


def test_well_formed_tags_around_garbage_score_only_the_think_term():
    scores = R.score_all("lpr", "<think>x</think><answer>{not json at all}</answer>", LPR_SAMPLE)
    assert scores.pop("lpr_think") == 1.0 and set(scores.values()) == {0.0}


def test_think_format_needs_answer_right_after_think():
    assert R.think_format("<think>a</think> <answer>b</answer>", {}) == 1.0
    assert R.think_format("<answer>b</answer><think>a</think>", {}) == 0.0
    assert R.think_format("<think>a</think><answer>b</answer> trailing", {}) == 0.0


def test_lpr_thresholds():
    def lpr(box, p1=(150, 125), p2=(152, 126)):
        return (
            f"<answer>{{'bbox': {list(box)}, 'points_1': {list(p1)}, 'points_2': {list(p2)}, "
            f"'response': 'The object is found.'}}</answer>"
        )

    # mean L1 9 px passes, 11 fails; IoU stays above 0.5 in both
    assert R.lpr_box_l1(lpr((109, 109, 208, 158)), LPR_SAMPLE) == 1.0
    assert R.lpr_box_l1(lpr((111, 111, 210, 160)), LPR_SAMPLE) == 0.0
    assert R.lpr_iou(lpr((111, 111, 210, 160)), LPR_SAMPLE) == 1.0
    assert R.lpr_iou(lpr((160, 100, 259, 149)), LPR_SAMPLE) == 0.0  # IoU 40/160 < 0.5
    # a point outside the predicted box fails, however close to the GT
    assert R.lpr_points(lpr((100, 100, 199, 149), p2=(99, 126)), LPR_SAMPLE) == 0.0
    # swapped points match the GT as well
    assert R.lpr_points(lpr((100, 100, 199, 149), (155, 128), (150, 125)), LPR_SAMPLE) == 1.0


def test_gse_size_and_contain():
    def gse(box):
        return f"<answer>{{'bbox': {list(box)}, 'response': 'The object is found.'}}</answer>"

    assert R.gse_size(gse((0, 0, 256, 256)), GSE_SAMPLE) == 1.0
    assert R.gse_size(gse((0, 0, 256, 300)), GSE_SAMPLE) == 0.5
    assert R.gse_size(gse((0, 0, 100, 300)), GSE_SAMPLE) == 0.0
    assert R.gse_contain(gse((890, 490, 1146, 746)), GSE_SAMPLE) == 1.0
    assert R.gse_contain(gse((905, 490, 1161, 746)), GSE_SAMPLE) == 0.0


def test_region_terms_need_a_best_region():
    sample = dict(GSE_SAMPLE, best_region=None)
    assert R.gse_region_l1(GSE_PERFECT, sample) is None
    assert R.gse_region_iou(GSE_PERFECT, sample) is None
    near = GSE_PERFECT.replace("[800, 400, 1056, 656]", "[830, 400, 1086, 656]")
    assert R.gse_region_l1(near, GSE_SAMPLE) == 1.0  # mean L1 (30 + 30) / 4 = 15 < 20
    assert R.gse_region_iou(near, GSE_SAMPLE) == 0.0  # IoU 227/287 = 0.79
    far = GSE_PERFECT.replace("[800, 400, 1056, 656]", "[850, 400, 1106, 656]")
    assert R.gse_region_l1(far, GSE_SAMPLE) == 0.0  # mean L1 25


def test_text_reward_per_question_type_and_reference_switch():
    def said(response):
        return f"<answer>{{'bbox': [1, 1, 5, 5], 'response': '{response}'}}</answer>"

    option = {"q_type": "option", "answer": "A"}
    assert R.gse_text(said("A"), option) == 1.0
    assert R.gse_text(said("B"), option) == 0.0
    # the article "a" is no answer; the reference counted it as option A
    assert R.gse_text(said("it is a red one"), option) == 0.0
    assert R.gse_text(said("it is a red one"), option, reference=True) == 1.0
    open_q = {"q_type": "reasoning", "answer": "red"}
    assert R.gse_text(said("Red"), open_q) == 1.0
    assert R.gse_text(said("Red"), open_q, reference=True) == 0.0  # reference: case-sensitive
    assert R.gse_text(said("it is a bright red one"), open_q) == 1.0
    assert R.lpr_text(said("it is a bright red one"), open_q) == 0.0  # LPR: at most 3 words
    assert R.lpr_text(said("bright red"), open_q) == 1.0
    referring = {"q_type": "referring", "answer": ""}
    assert R.gse_text(said("The object is detected."), referring) == 1.0
    assert R.gse_text(said("No object founded"), referring) == 0.0


def test_trl_wrapper_reads_columns_and_chat_completions():
    term = R.make_reward_terms("lpr")[0]
    assert term.__name__ == "lpr_iou"
    completions = [
        [{"role": "assistant", "content": LPR_PERFECT}],
        [{"role": "assistant", "content": "x"}],
    ]
    columns = {k: [v, v] for k, v in LPR_SAMPLE.items()}
    assert term(prompts=["p", "p"], completions=completions, trainer_state=None, **columns) == [
        1.0,
        0.0,
    ]
    clone = pickle.loads(pickle.dumps(term))
    assert clone.__name__ == "lpr_iou" and clone(
        completions=[LPR_PERFECT], **{k: [v] for k, v in LPR_SAMPLE.items()}
    ) == [1.0]


def test_term_names_are_stable():
    assert R.term_names("lpr") == [
        "lpr_iou",
        "lpr_think",
        "lpr_format",
        "lpr_points",
        "lpr_box_l1",
        "lpr_text",
    ]
    assert R.term_names("gse") == [
        "gse_think",
        "gse_text",
        "gse_format",
        "gse_region_l1",
        "gse_region_iou",
        "gse_contain",
        "gse_size",
    ]
    assert not math.isnan(R.weighted_total({"a": 1.0, "b": None}, {"a": 0.5}))


def test_malformed_sample_columns_score_zero_or_not_applicable():
    assert R.gse_contain(GSE_PERFECT, {"gt_box": 5}) == 0.0
    assert R.gse_region_iou(GSE_PERFECT, {"best_region": [1, 2]}) is None
    assert R.lpr_points(LPR_PERFECT, {"gt_points": 5}) == 0.0
    assert R.lpr_iou(LPR_PERFECT, {"gt_box": [float("nan")] * 4}) == 0.0
    assert R.answer_text(LPR_PERFECT, {"q_type": "unknown"}) == 0.0
