"""
``reference_rewards: true`` against the reference's own reward code, on random completions.

The fixture below is the reference's reward logic, unchanged in effect: JiazuoYu/Fines
``verl/utils/reward_score/seg_restrict_qa.py`` (LPR, ``seg_strict_compute_score_qa``) and
``seg_restrict8_regions_and_qa.py`` (GSE, ``seg_strict_compute_score8_region_qa``), with
the ground truth written as its data converters write it (``<box>(x1,y1),(x2,y2)</box>``,
``<points>``, ``<response>``, ``<best_region>``, integers). Completions are drawn where the
two ways of finding the answer JSON agree (one double-quoted object inside ``<answer>``,
no braces elsewhere); every field, type, length, number and text varies.
"""

import difflib
import json
import math
import re

import numpy as np
import pytest

from finers_training import rewards as R


# --- the reference's reward code, as an oracle --------------------------------------------
def _ref_think(predict_str):
    pattern = r"<think>.*?</think>\s*<answer>.*?</answer>"
    return 1.0 if re.fullmatch(pattern, predict_str, re.DOTALL) else 0.0


def _ref_json(predict_str):
    json_match = re.search(r"{[^}]+}", predict_str)
    return json.loads(json_match.group(0)) if json_match else None


def _ref_format(predict_str, keys):
    try:
        data = _ref_json(predict_str)
        if data is None or any(key not in data for key in keys):
            return 0.0
        bbox = data["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            return 0.0
        for name in ("points_1", "points_2"):
            if name in keys and (not isinstance(data[name], list) or len(data[name]) != 2):
                return 0.0
        response = data["response"]
        if not isinstance(response, str) or response.strip() == "":
            return 0.0
        return 1.0
    except Exception:
        return 0.0


def _ref_iou(box1, box2):
    inter_x1, inter_y1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    inter_x2, inter_y2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    if inter_x1 < inter_x2 and inter_y1 < inter_y2:
        inter = (inter_x2 - inter_x1 + 1) * (inter_y2 - inter_y1 + 1)
    else:
        inter = 0
    area1 = (box1[2] - box1[0] + 1) * (box1[3] - box1[1] + 1)
    area2 = (box2[2] - box2[0] + 1) * (box2[3] - box2[1] + 1)
    union = area1 + area2 - inter
    return float(inter) / union


def _ref_l1(box1, box2):
    return (abs(box1[0] - box2[0]) + abs(box1[1] - box2[1]) + abs(box1[2] - box2[2])
            + abs(box1[3] - box2[3])) / 4


def _ref_gt(pattern, ground_truth):
    match = re.search(pattern, ground_truth)
    return [int(g) for g in match.groups()] if match else None


_BOX = r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>"
_REGION = r"<best_region>\((\d+),(\d+)\),\((\d+),(\d+)\)</best_region>"
_POINTS = r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>"


def _ref_box_reward(predict_str, ground_truth, pattern, test):
    try:
        gt = _ref_gt(pattern, ground_truth.strip())
        data = _ref_json(predict_str)
        if data and len(data["bbox"]) == 4:
            if test(data["bbox"], gt):
                return 1.0
    except Exception:
        pass
    return 0.0


def _ref_contain(predict_str, ground_truth):
    def inside(box, gt):
        return box[0] <= gt[0] and box[1] <= gt[1] and box[2] >= gt[2] and box[3] >= gt[3]

    if _ref_gt(_BOX, ground_truth.strip()) is None:
        return 0.0
    return _ref_box_reward(predict_str, ground_truth, _BOX, inside)


def _ref_size(predict_str):
    try:
        data = _ref_json(predict_str)
        if data and len(data["bbox"]) == 4:
            box = data["bbox"]
            width_ok = 256 - 15 <= box[2] - box[0] + 1 <= 256 + 15
            height_ok = 256 - 15 <= box[3] - box[1] + 1 <= 256 + 15
            return 1.0 if width_ok and height_ok else 0.5 if width_ok or height_ok else 0.0
    except Exception:
        pass
    return 0.0


def _ref_points(predict_str, ground_truth):
    def in_box(point, bbox):
        return bbox[0] <= point[0] <= bbox[2] and bbox[1] <= point[1] <= bbox[3]

    def distance(points1, points2):
        dist1 = math.sqrt((points1[0][0] - points2[0][0]) ** 2
                          + (points1[0][1] - points2[0][1]) ** 2) + \
            math.sqrt((points1[1][0] - points2[1][0]) ** 2 + (points1[1][1] - points2[1][1]) ** 2)
        dist2 = math.sqrt((points1[0][0] - points2[1][0]) ** 2
                          + (points1[0][1] - points2[1][1]) ** 2) + \
            math.sqrt((points1[1][0] - points2[0][0]) ** 2 + (points1[1][1] - points2[0][1]) ** 2)
        return min(dist1, dist2) / 2

    try:
        flat = _ref_gt(_POINTS, ground_truth)
        gt_points = [flat[:2], flat[2:]]
        data = _ref_json(predict_str)
        if data:
            if len(data["bbox"]) == 4:
                content_bbox = data["bbox"]
            point1 = [int(data["points_1"][0]), int(data["points_1"][1])]
            point2 = [int(data["points_2"][0]), int(data["points_2"][1])]
            if in_box(point1, content_bbox) and in_box(point2, content_bbox):
                if distance([point1, point2], gt_points) < 100:
                    return 1.0
    except Exception:
        pass
    return 0.0


def _ref_text(predict_str, ground_truth, word_limit):
    try:
        data = _ref_json(predict_str)
        if data:
            output_text = data["response"]
            match = re.search(r"<response>(.*?)</response>", ground_truth)
            gt_response = (match.group(1).strip() if match else "").lower()
            assert gt_response, "gt_response should not be empty!"
            if gt_response == "The object is found.".lower():
                keywords = ["is found", "is detected"]
                return 1.0 if any(k in output_text.lower() for k in keywords) else 0.0
            elif gt_response.lower() in ["a", "b", "c", "d", "A", "B", "C", "D"]:
                output_text = output_text.lower()
                option = gt_response.lower()
                pattern = rf"(?:\b|[\(\[\{{'\" ]){option}(?:\b|[\)\]\}}'\" ,.!?])"
                return 1.0 if re.search(pattern, output_text) else 0.0
            else:
                gt = gt_response.lower()
                output_words = output_text.split()
                if word_limit and len(output_words) > 3:
                    return 0.0
                for word in output_words:
                    if difflib.SequenceMatcher(None, word, gt).ratio() >= 0.8:
                        return 1.0
                return 0.0
    except Exception:
        pass
    return 0.0


def reference_lpr(predict_str, ground_truth):
    """Return the reference's LPR terms by our names (seg_strict_compute_score_qa)."""
    return {
        "lpr_iou": _ref_box_reward(predict_str, ground_truth, _BOX,
                                   lambda b, g: _ref_iou(b, g) > 0.5),
        "lpr_think": _ref_think(predict_str),
        "lpr_format": _ref_format(predict_str, ["bbox", "response", "points_1", "points_2"]),
        "lpr_points": _ref_points(predict_str, ground_truth),
        "lpr_box_l1": _ref_box_reward(predict_str, ground_truth, _BOX,
                                      lambda b, g: _ref_l1(b, g) < 10),
        "lpr_text": _ref_text(predict_str, ground_truth, word_limit=True),
    }


def reference_gse(predict_str, ground_truth):
    """Return the reference's GSE terms by our names (seg_strict_compute_score8_region_qa)."""
    return {
        "gse_think": _ref_think(predict_str),
        "gse_text": _ref_text(predict_str, ground_truth, word_limit=False),
        "gse_format": _ref_format(predict_str, ["bbox", "response"]),
        "gse_region_l1": _ref_box_reward(predict_str, ground_truth, _REGION,
                                         lambda b, g: _ref_l1(b, g) < 20),
        "gse_region_iou": _ref_box_reward(predict_str, ground_truth, _REGION,
                                          lambda b, g: _ref_iou(b, g) > 0.9),
        "gse_contain": _ref_contain(predict_str, ground_truth),
        "gse_size": _ref_size(predict_str),
    }


# --- random samples and completions -------------------------------------------------------
QUESTIONS = [("referring", "The object is found."), ("option", "A"), ("option", "c"),
             ("option", "D"), ("reasoning", "white"), ("reasoning", "Red"),
             ("reasoning", "triangle"), ("reasoning", "dark blue")]
WORDS = ["The", "object", "is", "found.", "is found", "detected", "a", "A", "(b)", "[c]", "'d'",
         "b.", "C!", "option", "white", "White", "whit", "red", "Red", "red.", "triangle",
         "triangl", "dark", "blue", "it's", "No", "object", "founded", "bark", "abc", "-",
         "  ", "\u7ea2\u8272"]


def _number(rng, around):
    kind = rng.integers(0, 10)
    if kind < 6:
        return int(around + rng.integers(-30, 31))
    if kind < 9:
        return round(float(around + rng.normal(0, 15)), int(rng.integers(0, 3)))
    return str(int(around)) if rng.random() < 0.5 else None


def _coords(rng, around, count):
    length = count if rng.random() < 0.9 else int(rng.choice([count - 1, count + 1, 0]))
    return [_number(rng, around[i % len(around)]) for i in range(length)]


def _response(rng):
    if rng.random() < 0.08:
        return [None, "", " ", 5, ["a"]][int(rng.integers(0, 5))]
    return " ".join(rng.choice(WORDS, int(rng.integers(1, 6))))


def _completion(rng, target, points):
    data = {}
    if rng.random() < 0.93:
        data["bbox"] = _coords(rng, target, 4)
    for i, name in enumerate(("points_1", "points_2")):
        if points and rng.random() < 0.93:
            data[name] = _coords(rng, points[i], 2)
    if rng.random() < 0.95:
        data["response"] = _response(rng)
    keys = list(data)
    rng.shuffle(keys)
    body = json.dumps({k: data[k] for k in keys}, ensure_ascii=bool(rng.random() < 0.5))
    think = "<think>" + " ".join(rng.choice(WORDS, int(rng.integers(0, 4)))) + "</think>"
    layout = rng.integers(0, 8)
    if layout == 0:
        return f"{think}<answer>{body}"  # not closed
    if layout == 1:
        return f" {think}\n<answer>{body}</answer>\n"  # spaces around
    if layout == 2:
        return f"<answer>{body}</answer>"  # no thinking
    if layout == 3:
        return f"{think}<answer>The answer is {body} here.</answer>"
    if layout == 4:
        return f"{think}<answer>{body}</answer> and more"
    return f"{think}\n<answer>{body}</answer>"


def _boxes(rng, side):
    x1, y1 = (int(v) for v in rng.integers(0, side - 60, 2))
    w, h = (int(v) for v in rng.integers(3, 60, 2))
    return [x1, y1, x1 + w, y1 + h]


@pytest.mark.parametrize("stage", ["lpr", "gse"])
def test_reference_mode_equals_the_reference_code_on_random_completions(stage):
    rng = np.random.default_rng(17 if stage == "lpr" else 18)
    terms = R.make_reward_terms(stage, reference=True)
    mismatches, scored = [], {name: 0.0 for name in R.term_names(stage)}
    for _ in range(3000):
        q_type, answer = QUESTIONS[int(rng.integers(0, len(QUESTIONS)))]
        gt = _boxes(rng, 512 if stage == "lpr" else 1080)
        cx, cy = (gt[0] + gt[2]) // 2, (gt[1] + gt[3]) // 2
        if stage == "lpr":
            points = [[cx, cy], [cx + int(rng.integers(-3, 4)), cy + int(rng.integers(-3, 4))]]
            sample = {"gt_box": gt, "gt_points": points, "q_type": q_type, "answer": answer}
            truth = (f"<box>({gt[0]},{gt[1]}),({gt[2]},{gt[3]})</box><points>({points[0][0]},"
                     f"{points[0][1]}),({points[1][0]},{points[1][1]})</points>"
                     f"<response>{answer}</response>")
            target = gt if rng.random() < 0.5 else [cx - 5, cy - 5, cx + 5, cy + 5]
            completion = _completion(rng, target, points)
            expected = reference_lpr(completion, truth)
        else:
            x, y = max(0, cx - 128), max(0, cy - 128)
            region = [x, y, x + 256, y + 256]
            sample = {"gt_box": gt, "best_region": region, "q_type": q_type, "answer": answer}
            truth = (f"<box>({gt[0]},{gt[1]}),({gt[2]},{gt[3]})</box><response>{answer}"
                     f"</response><best_region>({region[0]},{region[1]}),({region[2]},"
                     f"{region[3]})</best_region>")
            target = region if rng.random() < 0.6 else gt
            completion = _completion(rng, target, None)
            expected = reference_gse(completion, truth)
        got = {t.__name__: t.score(completion, sample) for t in terms}
        if got != expected:
            mismatches.append((completion, sample, got, expected))
        for name, value in expected.items():
            scored[name] += value
    assert not mismatches, f"{len(mismatches)} differ, first: {mismatches[0]}"
    # the draw reaches both outcomes of every term
    assert all(0 < total < 3000 for total in scored.values()), scored


def test_the_reference_rules_that_differ_from_ours():
    def said(response, bbox="[1, 1, 5, 5]"):
        return ('<think>x</think><answer>{"bbox": %s, "points_1": [2, 2], "points_2": [3, 3], '
                '"response": %s}</answer>' % (bbox, json.dumps(response)))

    open_q = {"q_type": "reasoning", "answer": "Red"}
    option = {"q_type": "option", "answer": "A"}
    ref = {name: t for t in R.make_reward_terms("lpr", reference=True)
           for name in [t.__name__]}
    ours = {name: t for t in R.make_reward_terms("lpr") for name in [t.__name__]}
    # the ground truth is lower-cased: "red" is the word it wants
    assert ref["lpr_text"].score(said("red"), open_q) == 1.0
    # three words at most for open answers only
    assert ref["lpr_text"].score(said("I think it is A"), option) == 1.0
    assert ours["lpr_text"].score(said("I think it is A"), option) == 0.0
    assert ref["lpr_text"].score(said("I think it is red"), open_q) == 0.0
    # an empty response fails the format term, in both modes
    for terms in (ref, ours):
        assert terms["lpr_format"].score(said(""), open_q) == 0.0
        assert terms["lpr_format"].score(said("  "), open_q) == 0.0
        assert terms["lpr_format"].score(said("red"), open_q) == 1.0
    # sides measured x2 - x1 + 1: a 240-wide box written [0, 0, 240, 240] is 241
    gse = {t.__name__: t for t in R.make_reward_terms("gse", reference=True)}
    assert gse["gse_size"].score(said("x", "[0, 0, 240, 240]"), {}) == 1.0
    assert R.score_all("gse", said("x", "[0, 0, 240, 240]"), {})["gse_size"] == 0.0
