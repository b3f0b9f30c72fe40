import numpy as np
import pytest

from finers_ros.metrics import (Sample, ciou, giou, intersection_union, open_correct,
                                option_correct, size_bucket, summarize)


def square(size, x0, y0, side):
    mask = np.zeros((size, size), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def test_intersection_union_on_hand_made_masks():
    gt = square(20, 0, 0, 10)  # 100 px
    pred = square(20, 5, 0, 10)  # overlaps 50 px
    assert intersection_union(pred, gt) == (50, 150)
    assert intersection_union(None, gt) == (0, 100)
    with pytest.raises(ValueError):
        intersection_union(np.zeros((3, 3), bool), gt)


def test_giou_and_ciou_differ_as_defined():
    pairs = [(50, 150), (10, 10), (0, 0), (0, 40)]  # 1/3, 1, empty/empty counts 1, a miss 0
    assert giou(pairs) == pytest.approx((1 / 3 + 1 + 1 + 0) / 4)  # 0.58333
    assert ciou(pairs) == pytest.approx(60 / 200)
    assert giou([]) is None and ciou([]) is None


def test_ciou_with_no_union_at_all_is_zero():
    assert ciou([(0, 0), (0, 0)]) == 0.0
    assert ciou([(0, 0)], protocol="reference") == 0.0


def test_reference_protocol_keeps_its_epsilons():
    # The reference divides by U + 1e-5 per sample (and adds 1 when U = 0), and by
    # sum U + 1e-10 overall: values a hair below the exact ratios.
    pairs = [(50, 150), (10, 10), (0, 0), (0, 40)]
    expected = (50 / 150.00001 + 10 / 10.00001 + 1 + 0) / 4
    assert giou(pairs, protocol="reference") == pytest.approx(expected, rel=1e-12)
    assert giou(pairs, protocol="reference") < giou(pairs)
    assert ciou(pairs, protocol="reference") == pytest.approx(60 / (200 + 1e-10), rel=1e-12)
    with pytest.raises(ValueError):
        giou(pairs, protocol="paper")


def test_size_buckets():
    assert size_bucket(0.06) == "S" and size_bucket(0.055) == "XS"
    assert size_bucket(0.017) == "XS" and size_bucket(0.0169) == "XXS"


@pytest.mark.parametrize("response, answer, fixed, reference", [
    ("b", "B", True, True),
    ("(b)", "B", True, True),
    ("The answer is b.", "B", True, True),
    ("[d]", "D", True, True),
    ("Option A", "a", True, True),
    ("The answer is a.", "A", True, True),
    ("A or B", "A", True, True),  # the reference's regex accepts naming two options
    ("A red car, option B", "B", True, True),
    # The reference counts the article "a" as option A: fixed by default only.
    ("A red car, option B", "A", False, True),
    ("a red one", "A", False, True),
    ("C", "B", False, False),
    ("bark", "B", False, False),
    ("", "B", False, False),
])
def test_option_answers_as_the_reference_scores_them(response, answer, fixed, reference):
    assert option_correct(response, answer) is fixed
    assert option_correct(response, answer, protocol="reference") is reference


@pytest.mark.parametrize("response, answer, fixed, reference", [
    ("The object is White.", "white", True, True),  # both sides lower-cased
    ("It is a triangl", "triangle", True, True),
    ("It is a circle", "triangle", False, False),
    ("\u7ea2\u8272", "\u7ea2\u8272", True, True),  # non-ASCII letters are kept
    ("Es ist gr\u00fcn.", "Gr\u00fcn", True, True),
    ("wh ite", "white", False, False),  # word by word, never the whole response
    ("(red)", "red", True, False),  # fixed: punctuation around a word is not part of it
    ("", "red", False, False),
])
def test_open_answers_as_the_reference_scores_them(response, answer, fixed, reference):
    assert open_correct(response, answer) is fixed
    assert open_correct(response, answer, protocol="reference") is reference


def test_summary_buckets_vqa_and_empty_subsets():
    samples = [
        Sample("referring", 0.01, 50, 100, True, None, "colors",
               timings_ms={"gse": 10, "total": 20}, grounding="colour"),
        Sample("referring", 0.03, 0, 80, False, None, "colors", failed=True,
               timings_ms={"total": 5}),
        Sample("option", 0.03, 0, 40, True, True, "colors"),
        Sample("reasoning", 0.01, 0, 40, False, False, "shape"),
    ]
    metrics = summarize(samples)
    seg = metrics["segmentation"]
    assert seg["all"]["count"] == 4 and seg["all"]["gIoU"] == pytest.approx(0.5 / 4)
    assert seg["S"] == {"gIoU": None, "cIoU": None, "count": 0}
    assert seg["XXS"]["count"] == 2 and seg["XS"]["count"] == 2
    assert metrics["region_recall"] == 0.5 and metrics["failed"] == 1
    assert metrics["MVQA"]["accuracy"] == 1.0 and metrics["OVQA"]["accuracy"] == 0.0
    assert metrics["MVQA"]["per_attribute"]["colors"]["count"] == 1
    assert metrics["latency_ms"]["total"]["count"] == 2
    assert metrics["latency_ms"]["gse"]["median"] == 10
    assert metrics["referring_by_grounding"]["colour"]["gIoU"] == 0.5
    empty = summarize([])
    assert empty["segmentation"]["all"]["gIoU"] is None and empty["MVQA"]["accuracy"] is None


def test_summary_buckets_by_hand():
    samples = [
        Sample("referring", 0.10, 30, 60, True),   # S: 0.5
        Sample("referring", 0.06, 10, 40, True),   # S: 0.25
        Sample("referring", 0.03, 0, 50, False),   # XS: 0
        Sample("referring", 0.001, 9, 10, True),   # XXS: 0.9
        Sample("referring", 0.002, 0, 0, False, located=False),  # XXS: empty/empty = 1
    ]
    seg = summarize(samples)["segmentation"]
    assert seg["S"]["gIoU"] == pytest.approx(0.375) and seg["S"]["cIoU"] == pytest.approx(0.4)
    assert seg["XS"]["gIoU"] == 0 and seg["XS"]["cIoU"] == 0
    assert seg["XXS"]["gIoU"] == pytest.approx(0.95) and seg["XXS"]["cIoU"] == pytest.approx(0.9)
    assert seg["all"]["gIoU"] == pytest.approx((0.5 + 0.25 + 0 + 0.9 + 1) / 5)
    assert seg["all"]["cIoU"] == pytest.approx(49 / 160)
    fixed, reference = summarize(samples), summarize(samples, protocol="reference")
    assert fixed["protocol"] == "fixed" and reference["protocol"] == "reference"
    # The reference counts region recall over the samples whose GSE gave a region.
    assert fixed["region_recall"] == pytest.approx(3 / 5)
    assert reference["region_recall"] == pytest.approx(3 / 4)


# --- the reference evaluation's own scoring code, as an oracle ------------------------------
# Copied from JiazuoYu/Fines, inference_scripts/eval_hd_reasoning_seg_zero_cascade_qa_add_dist_
# for_region_prompt_cross_stage.py (main loop and intersectionAndUnionCPU), unchanged in effect.

def _reference_option(final_response, gt_answer):
    import re

    final_response, gt_answer = final_response.lower(), gt_answer.lower()
    pattern = rf"(?:\b|[\(\[\{{'\" ]){gt_answer}(?:\b|[\)\]\}}'\" ,.!?])"
    return bool(re.search(pattern, final_response))


def _reference_open(final_response, gt_answer):
    import difflib

    final_response, gt_answer = final_response.lower(), gt_answer.lower()
    for word in final_response.split():
        if difflib.SequenceMatcher(None, word, gt_answer).ratio() >= 0.8:
            return True
    return False


def _reference_intersection_union(output, target, K=2):
    output, target = output.astype(np.int64).ravel(), target.astype(np.int64).ravel()
    intersection = output[output == target]
    area_intersection = np.bincount(intersection, minlength=K)
    area_union = np.bincount(output, minlength=K) + np.bincount(target, minlength=K) \
        - area_intersection
    return area_intersection, area_union


def _reference_giou_ciou(pred_masks, gt_masks):
    inter_meter, union_meter, acc_iou_meter = [], [], []
    for pred, gt in zip(pred_masks, gt_masks):
        inter, union = _reference_intersection_union(pred, gt)
        acc_iou = inter / (union + 1e-5)
        acc_iou[union == 0] += 1.0
        inter_meter.append(inter)
        union_meter.append(union)
        acc_iou_meter.append(acc_iou)
    ciou_value = (sum(inter_meter) / (sum(union_meter) + 1e-10))[1]
    giou_value = (sum(acc_iou_meter) / len(acc_iou_meter))[1]
    return giou_value, ciou_value


def test_reference_protocol_matches_the_reference_code_on_random_cases():
    rng = np.random.default_rng(9)
    words = ["a", "b", "c", "d", "A", "B", "(b)", "[c]", "'d'", "option", "Option", "is", "the",
             "answer", "red", "Red.", "white,", "car", "bark", "abc", "b.", "c!", "(a)", "grün",
             "\u7ea2\u8272", "whit", "triangle", "triangl", "-", "A.", "or"]
    letters = ["A", "B", "C", "D", "a", "b"]
    truths = ["red", "white", "triangle", "gr\u00fcn", "\u7ea2\u8272", "Red"]
    for _ in range(3000):
        response = " ".join(rng.choice(words, rng.integers(0, 7)))
        letter, truth = str(rng.choice(letters)), str(rng.choice(truths))
        assert option_correct(response, letter, protocol="reference") == \
            _reference_option(response, letter), (response, letter)
        assert open_correct(response, truth, protocol="reference") == \
            _reference_open(response, truth), (response, truth)
        # The fixed protocol departs from it only where the reference notes say it is wrong.
        if letter.lower() != "a":
            assert option_correct(response, letter) == _reference_option(response, letter)
        if not any(ch in response for ch in ".,!()[]'-"):
            assert open_correct(response, truth) == _reference_open(response, truth)
    preds, gts = [], []
    for _ in range(40):
        gts.append(rng.random((12, 12)) < rng.uniform(0, 0.3))
        preds.append(rng.random((12, 12)) < rng.uniform(0, 0.3))
    preds[0][:] = gts[0][:] = False  # U = 0 on one sample
    expected_giou, expected_ciou = _reference_giou_ciou(preds, gts)
    pairs = [intersection_union(p, g) for p, g in zip(preds, gts)]
    assert giou(pairs, protocol="reference") == pytest.approx(expected_giou, rel=1e-12)
    assert ciou(pairs, protocol="reference") == pytest.approx(expected_ciou, rel=1e-12)


def test_token_counts_are_not_latencies():
    # Backends that measure prefill/decode put token counts next to the times in timings_ms.
    timings = [{"gse": 900.0, "gse_prefill_ms": 600.0, "gse_prompt_tokens": 2882.0,
                "gse_generated_tokens": 40.0, "total": 950.0},
               {"gse": 700.0, "gse_prefill_ms": 500.0, "gse_prompt_tokens": 2880.0,
                "gse_generated_tokens": 20.0, "total": 750.0, "lpr_network_ms": float("nan")}]
    metrics = summarize([Sample("referring", 0.01, 1, 2, True, timings_ms=t) for t in timings])
    assert set(metrics["latency_ms"]) == {"gse", "gse_prefill_ms", "total"}
    assert metrics["latency_ms"]["gse"]["median"] == 800.0
    assert metrics["tokens"]["gse_prompt_tokens"] == {"median": 2881.0, "p90": 2881.8, "count": 2}
    assert metrics["tokens"]["gse_generated_tokens"]["median"] == 30.0
